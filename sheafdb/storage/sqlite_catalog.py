"""SqliteCatalog: the embedded catalog, the tables of ``catalog_tables.py`` in one SQLite file.

WAL journal, ``synchronous=FULL``: a committed change survives a crash. The logic is
``SqlCatalog``'s (sql_catalog.py); this module only opens the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sheafdb.storage.catalog_tables import TABLES
from sheafdb.storage.sql_catalog import SqlCatalog, SqlCursor


class SqliteCatalog(SqlCatalog):
    """A Catalog in one SQLite file; SQLite takes its write lock at BEGIN with IMMEDIATE."""

    begin_statement = "BEGIN IMMEDIATE"
    integrity_error = sqlite3.IntegrityError
    # Told after each committed transaction (the query workers' change counter,
    # change_counter.py's publish_data_changes); a rolled-back one tells nothing.
    on_commit: Callable[[], None] | None = None

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per method.
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        super().__init__(TABLES)

    def _cursor(self) -> SqlCursor:
        return self._conn.cursor()

    def _close_connection(self) -> None:
        self._conn.close()

    @contextmanager
    def _tx(self, *, bookkeeping: bool = False) -> Iterator[SqlCursor]:
        with super()._tx(bookkeeping=bookkeeping) as cur:
            yield cur
        if self.on_commit is not None:  # after COMMIT: other processes see the change
            self.on_commit()

    def change_counter(self) -> int:
        """A number that differs after any other connection (another process) committed a
        change: SQLite's ``PRAGMA data_version``. A query worker reads it before each read
        to know when to take the catalog again (``serve --workers N``)."""
        with self._lock:
            row = self._conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])
