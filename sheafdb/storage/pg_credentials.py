"""PostgresCredentialStore: users, roles and grants in the cluster's PostgreSQL database.

The same tables as the embedded file (credentials.py) beside the catalog's, so every process of
a cluster (the writer, a standby that takes over, followers, query workers, on any machine)
authenticates against one set of users. The writer opens it writable; the others ``read_only``
(their transactions are READ ONLY: PostgreSQL refuses a write from them). The writer's changes
are fenced by its lease, as its catalog writes are: a writer that lost the lease to a standby
cannot change a user behind the new writer's back.

Other processes learn of a change by polling ``change_counter``: the one row of
``credential_version``, bumped in the transaction of every change (SQLite's ``data_version``
has no PostgreSQL counterpart).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from sheafdb.errors import UnexpectedError, WriterFenced
from sheafdb.storage.credentials import CredentialStore, Cursor
from sheafdb.storage.lease_rows import CommitListener, Lease
from sheafdb.storage.pg_connection import PgConnection
from sheafdb.storage.postgres_catalog import SCHEMA_LOCK

_TABLES = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, salt BYTEA NOT NULL, hash BYTEA NOT NULL, created_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS roles (name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS user_roles (
    "user" TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    PRIMARY KEY ("user", role));
CREATE TABLE IF NOT EXISTS grants (
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    object_type TEXT NOT NULL, object_name TEXT NOT NULL, db_name TEXT NOT NULL,
    privilege TEXT NOT NULL, grantor TEXT NOT NULL,
    PRIMARY KEY (role, object_type, object_name, db_name, privilege));
CREATE TABLE IF NOT EXISTS privilege_groups (
    name TEXT NOT NULL, privilege TEXT NOT NULL, PRIMARY KEY (name, privilege));
CREATE TABLE IF NOT EXISTS privilege_group_names (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS credential_version (
    one INTEGER PRIMARY KEY CHECK (one = 1), version BIGINT NOT NULL);
INSERT INTO credential_version VALUES (1, 0) ON CONFLICT DO NOTHING;
"""


class PostgresCredentialStore(CredentialStore):
    """A CredentialStore in the PostgreSQL database ``url`` names."""

    def __init__(
        self,
        url: str,
        *,
        read_only: bool = False,
        fence: Lease | None = None,
        on_commit_unknown: CommitListener | None = None,
    ) -> None:
        super().__init__()
        self._fence = fence
        try:
            # autocommit: a read is its own transaction; a change opens one (``_changing``).
            # A connection lost with PostgreSQL is replaced on the next use (pg_connection.py).
            self._pg = PgConnection(url, read_only=read_only)
            if not read_only:
                with self._pg.transaction():
                    self._pg.execute(SCHEMA_LOCK)
                    self._pg.execute(_TABLES)
            self._pg.on_commit_unknown = on_commit_unknown  # after the schema: not a change of ours
        except psycopg.Error as exc:
            raise UnexpectedError(f"cannot open the credential store in the catalog database: {exc}") from exc
        self.read_only = read_only

    def close(self) -> None:
        with self._lock:
            self._pg.close()

    def change_counter(self) -> int:
        (version,) = self._rows("SELECT version FROM credential_version")[0]
        assert isinstance(version, int)
        return version

    @contextmanager
    def _changing(self) -> Iterator[Cursor]:
        with self._pg.transaction():
            cursor = _Cursor(self._pg)
            fence = self._fence
            if fence is not None:  # as the catalog's: the lease row, kept as read until commit
                held = cursor.execute("SELECT token FROM leases WHERE name = ? FOR SHARE", (fence.name,))
                row = held.fetchall()
                if not row or int(row[0][0]) != fence.token:
                    raise WriterFenced.lost(fence.name, fence.token)
            yield cursor
            cursor.execute("UPDATE credential_version SET version = version + 1")

    def _query(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        return self._pg.first(sql.replace("?", "%s"), args).fetchall()


class _Cursor:
    """The statements of a change, inside its transaction, with the store's ``?``
    placeholders (psycopg's are ``%s``); a lost connection fails the change."""

    def __init__(self, pg: PgConnection) -> None:
        self._pg = pg
        self._cursor: psycopg.Cursor[Any] | None = None

    @property
    def rowcount(self) -> int:
        assert self._cursor is not None
        return self._cursor.rowcount

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        self._cursor = self._pg.execute(sql.replace("?", "%s"), params)
        return self

    def fetchall(self) -> list[Any]:
        assert self._cursor is not None
        return self._cursor.fetchall()
