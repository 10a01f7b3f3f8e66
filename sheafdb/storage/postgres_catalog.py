"""PostgresCatalog: the catalog in a PostgreSQL database, for a SheafDB whose state outlives a machine.

The same tables and the same logic as the embedded catalog (``SqlCatalog``): PostgreSQL is
only another connection. Every change is one transaction, committed before the call returns.

One server owns a catalog at a time, as one server owns a data dir: the catalog holds a
session-level advisory lock on its connection for as long as it is open, and a second server
is refused at start. The lock lives and dies with the connection, so a server whose connection
was lost can no longer commit anything through it (no reconnect: the server must restart,
and then takes the lock again only if no other server has it).

Needs psycopg 3 (``pip install sheafdb[cluster]``); only this module imports it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg

from sheafdb.errors import UnexpectedError
from sheafdb.storage.catalog_tables import POSTGRES_TABLES
from sheafdb.storage.sql_catalog import SqlCatalog, SqlCursor

# pg_try_advisory_lock's key for "this database's SheafDB catalog" (any fixed bigint).
CATALOG_LOCK_KEY = 0x5EAFDB0C


class _QmarkCursor:
    """A psycopg cursor that takes the catalog's ``?`` placeholders (psycopg's are ``%s``)."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _QmarkCursor:
        self._cursor.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
        return self

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        self._cursor.executemany(sql.replace("?", "%s"), params)  # type: ignore[arg-type]

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


class PostgresCatalog(SqlCatalog):
    """A Catalog in the PostgreSQL database ``url`` names (``postgresql://user@host:port/db``)."""

    integrity_error = psycopg.IntegrityError

    def __init__(self, url: str, *, lock_wait_s: float = 5.0) -> None:
        try:
            # autocommit: we issue BEGIN/COMMIT ourselves, one transaction per method.
            self._conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise UnexpectedError(f"cannot connect to the catalog database: {exc}") from exc
        self.url = url
        self._take_lock(lock_wait_s)
        super().__init__(POSTGRES_TABLES)

    def _take_lock(self, wait_s: float) -> None:
        # A while: the session of a server killed a moment ago ends when its backend notices.
        deadline = time.monotonic() + wait_s
        while True:
            (locked,) = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (CATALOG_LOCK_KEY,)).fetchone()
            if locked:
                return
            if time.monotonic() >= deadline:
                self._conn.close()
                raise UnexpectedError("the catalog database is in use by another SheafDB server")
            time.sleep(0.1)

    def _cursor(self) -> SqlCursor:
        return _QmarkCursor(self._conn.cursor())

    def _close_connection(self) -> None:
        # Unlocked before the connection goes: the next server need not wait for this session to end.
        try:
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (CATALOG_LOCK_KEY,))
        except psycopg.Error:
            pass  # the connection is gone, and its lock with it
        self._conn.close()
