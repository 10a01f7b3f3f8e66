"""PgConnection: one psycopg connection to the catalog's database, replaced once it broke.

Why: every PostgreSQL store (the catalog, the log, the credentials) keeps long-lived
connections, and a restart of PostgreSQL (or a cut network) kills them. A dead connection is
dropped when a statement finds it dead, and a new one is opened on the next use, so the
process serves again as soon as the database is back, without a restart of its own.

What is never repeated: a statement whose outcome is unknown. Only the *first* statement of a
use, one harmless to run twice (a read, the BEGIN of a transaction), is sent once more on a new
connection when the old one turns out dead. A failure after it, in the middle of a
transaction, fails the call with ``MetaStoreUnavailable`` (the server rolls that back). A
connection lost at the COMMIT leaves the write's outcome unknown: ``CommitOutcomeUnknown``,
which is first handed to ``on_commit_unknown`` (a writer steps down on it, whatever thread
made the write).

Not thread-safe: each owner guards its PgConnection with the lock that guarded its connection.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from sheafdb.errors import CommitOutcomeUnknown, MetaStoreUnavailable
from sheafdb.storage.lease_rows import CommitListener

log = logging.getLogger("sheafdb.postgres")

# How long a connection may go without an answer from the database's machine before libpq
# calls it lost, so a silent network (no reset) fails calls instead of hanging them: a connect
# waits 10 s; TCP keepalives probe an idle or waiting connection after 5 s, 3 times, 2 s apart;
# data sent and unacknowledged for 15 s ends it. A URL that sets any of these keeps its own.
_NETWORK_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "15000",
}


class PgConnection:
    """A connection to ``url`` (autocommit: transactions are explicit); every transaction of
    a ``read_only`` one is READ ONLY. The first connection is opened here: a store that cannot
    reach its database at startup fails to open (psycopg's error, the caller words it)."""

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self._conninfo = psycopg.conninfo.make_conninfo(
            url,
            **{k: v for k, v in _NETWORK_DEFAULTS.items() if k not in psycopg.conninfo.conninfo_to_dict(url)},
        )
        self._read_only = read_only
        # (pid, start) of the server process behind the connection: where a lost commit ran.
        self.backend: tuple[int, str] = (0, "")
        self.on_commit_unknown: CommitListener | None = None
        self._conn: psycopg.Connection[Any] | None = self._open()

    def _open(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._conninfo, autocommit=True)
        try:
            if self._read_only:
                conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            row = conn.execute(
                "SELECT pid, backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        self.backend = (int(row[0]), str(row[1])) if row is not None else (conn.info.backend_pid, "")
        return conn

    def first(self, sql: str, params: Sequence[Any] = (), *, binary: bool = False) -> psycopg.Cursor[Any]:
        """The first statement of a use, one that is harmless to repeat (a read, a BEGIN, an
        idempotent write): on a connection found dead, sent once more on a new one."""
        conn = self._conn
        if conn is not None:
            try:
                return conn.cursor(binary=binary).execute(sql, params)
            except psycopg.Error:
                if not _lost(conn):
                    raise
                self.drop()
        self.reconnect_if_lost()
        return self.execute(sql, params, binary=binary)

    def reconnect_if_lost(self) -> None:
        """A new connection if the last one was lost (before a use that nothing sent yet)."""
        if self._conn is not None:
            return
        try:
            self._conn = self._open()
        except psycopg.Error as exc:
            raise _unavailable(exc) from exc

    def execute(self, sql: str, params: Sequence[Any] = (), *, binary: bool = False) -> psycopg.Cursor[Any]:
        """A later statement of the same use: a lost connection fails it (and the use)."""
        conn = self._live()
        try:
            return conn.cursor(binary=binary).execute(sql, params)
        except psycopg.Error as exc:
            self._check_lost(conn, exc)
            raise

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> psycopg.Cursor[Any]:
        """As ``execute``, for many parameter rows (psycopg pipelines them)."""
        conn = self._live()
        cursor = conn.cursor()
        try:
            cursor.executemany(sql, params)
        except psycopg.Error as exc:
            self._check_lost(conn, exc)
            raise
        return cursor

    def _live(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise MetaStoreUnavailable()
        return self._conn

    def _check_lost(self, conn: psycopg.Connection[Any], exc: psycopg.Error) -> None:
        """After ``exc``: if it took the connection with it, drop that and say so."""
        if _lost(conn):
            self.drop()
            raise _unavailable(exc) from exc

    @property
    def alive(self) -> bool:
        return self._conn is not None

    def commit(self) -> None:
        """COMMIT the open transaction; a connection lost before its answer fails it with
        ``CommitOutcomeUnknown`` (told to ``on_commit_unknown`` first)."""
        conn = self._live()
        try:
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            if not _lost(conn):
                raise
            self.drop()
            # Even a server that answered with an error (shutting down) may have committed first.
            _unavailable(exc)
            raise self.commit_unknown(CommitOutcomeUnknown()) from exc

    def commit_unknown(self, error: CommitOutcomeUnknown) -> CommitOutcomeUnknown:
        """Tell the listener of ``error`` and give it back, to raise."""
        if self.on_commit_unknown is not None:
            self.on_commit_unknown(error)
        return error

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT around the block; an exception rolls back (a lost connection's
        transaction the server already rolled back)."""
        self.first("BEGIN")
        try:
            yield
        except BaseException:
            if self._conn is not None:
                self.execute("ROLLBACK")
            raise
        self.commit()

    def drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    close = drop


def refused(error: MetaStoreUnavailable) -> bool:
    """Whether the server answered the lost statement with an error of its own (it was shutting
    down, or ended this session) rather than going silent: then it did not run, or rolled back."""
    cause = error.__cause__
    return isinstance(cause, psycopg.Error) and cause.sqlstate is not None


def _lost(conn: psycopg.Connection[Any]) -> bool:
    return conn.closed or conn.broken


def _unavailable(exc: psycopg.Error) -> MetaStoreUnavailable:
    # psycopg's reason goes to the log only: it names the database's host and port.
    log.warning("the catalog database is unreachable: %s", str(exc).strip() or type(exc).__name__)
    return MetaStoreUnavailable()
