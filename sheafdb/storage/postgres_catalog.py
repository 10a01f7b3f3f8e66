"""PostgresCatalog: the catalog in a PostgreSQL database, for a SheafDB whose state outlives a machine.

The same tables and the same logic as the embedded catalog (``SqlCatalog``): PostgreSQL is
only another connection. Every change is one transaction, committed before the call returns.

Many processes share one catalog: the cluster's writer (and its standbys) open it writable,
followers, proxies and query workers ``read_only`` (every transaction of theirs is READ ONLY,
so PostgreSQL itself refuses a write from them). Which writable process may write is decided
by the writer lease (lease_rows.py, engine/write/writer_lease.py), not by the connection: a
writer that lost its lease is fenced by its token and stops.

Needs psycopg 3 (``pip install sheafdb[cluster]``); only this module imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg

from sheafdb.errors import UnexpectedError
from sheafdb.storage.catalog_tables import POSTGRES_TABLES
from sheafdb.storage.lease_rows import CommitListener, Lease
from sheafdb.storage.pg_connection import PgConnection
from sheafdb.storage.pg_log import PG_LOG_TABLES
from sheafdb.storage.sql_catalog import SqlCatalog, SqlCursor

# Processes starting together would race on CREATE TABLE IF NOT EXISTS (it is not atomic in
# PostgreSQL): the schema's transaction first takes this lock (any fixed bigint).
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(1592770316);"


class _QmarkCursor:
    """One use of the catalog's connection (a read, or a transaction from its BEGIN) with the
    catalog's ``?`` placeholders (psycopg's are ``%s``). Its first statement may go out on a
    new connection if the old one died (pg_connection.py); a later one never does."""

    def __init__(self, pg: PgConnection) -> None:
        self._pg = pg
        self._cursor: psycopg.Cursor[Any] | None = None

    @property
    def rowcount(self) -> int:
        assert self._cursor is not None
        return self._cursor.rowcount

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _QmarkCursor:
        if sql == "ROLLBACK" and not self._pg.alive:
            return self  # the server rolled back the lost connection's transaction itself
        if sql == "COMMIT":
            self._pg.commit()  # its answer lost: CommitOutcomeUnknown (pg_connection.py)
            return self
        send = self._pg.first if self._cursor is None else self._pg.execute
        self._cursor = send(sql.replace("?", "%s"), params)
        return self

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        assert self._cursor is not None, "executemany only inside a transaction, after its BEGIN"
        self._cursor = self._pg.executemany(sql.replace("?", "%s"), params)

    def fetchone(self) -> Any:
        assert self._cursor is not None
        return self._cursor.fetchone()

    def __iter__(self) -> Iterator[Any]:
        assert self._cursor is not None
        return iter(self._cursor)


class PostgresCatalog(SqlCatalog):
    """A Catalog in the PostgreSQL database ``url`` names (``postgresql://user@host:port/db``)."""

    integrity_error = psycopg.IntegrityError
    fence_lock_clause = " FOR SHARE"

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        try:
            # autocommit: we issue BEGIN/COMMIT ourselves, one transaction per method.
            self._pg = PgConnection(url, read_only=read_only)
        except psycopg.Error as exc:
            raise UnexpectedError(f"cannot connect to the catalog database: {exc}") from exc
        self.url = url
        self.read_only = read_only
        # A reader finds the tables the first writer made (it may not create them).
        super().__init__(None if read_only else SCHEMA_LOCK + POSTGRES_TABLES + PG_LOG_TABLES)

    def set_fence(self, lease: Lease, on_commit_unknown: CommitListener | None = None) -> None:
        super().set_fence(lease, on_commit_unknown)
        self._pg.on_commit_unknown = on_commit_unknown

    def _cursor(self) -> SqlCursor:
        return _QmarkCursor(self._pg)

    def _close_connection(self) -> None:
        self._pg.close()
