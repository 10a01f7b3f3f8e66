"""The collections' logs in PostgreSQL: an append-only table, acknowledged after commit.

``log_records(collection_id, lsn, kind, partition_id, ts, payload)``: one row per record, the
batch as Arrow IPC stream bytes (as in the file log), stored uncompressed (EXTERNAL: vectors
do not compress, and trying cost most of a large append). ``log_heads(collection_id, trimmed_to)``
remembers how far a collection's log was trimmed, so lsns never restart after the log was
emptied, and so a follower that needed a trimmed record can tell (``LogGap``).

Appends are fenced: the INSERT reads the writer lease's row ``FOR SHARE`` in the same
statement and inserts nothing unless it still carries the writer's token. A takeover's UPDATE
of that row therefore waits for an append in flight to commit (and the new writer, which
recovers after its takeover committed, sees it), and an append after the takeover finds
another token: ``WriterFenced``, and this log takes no more appends.

Group commit: appenders queue their record under ``_cond``; the first one to find no commit
running becomes the leader and inserts every queued record (of every collection) in one
statement, outside the lock, then wakes everyone it covered. One commit at a time, so
records commit in lsn order and a follower reading ``lsn > last`` never skips one.

A lost connection is replaced (pg_connection.py). When the server ended it with an error
(PostgreSQL restarting) the INSERT did not run and goes out again on a new connection; when it
went silent (the network cut, the server killed), the group's appends fail with
``MetaStoreUnavailable`` and whether its INSERT committed is unknown, so it is settled at once,
by a thread of its own (``sheafdb-log-settle``, retrying while the database is away), and by
the next group's leader first if that comes sooner: it ends the lost connection's server
process if that still runs (its statement can then commit no more) and looks for the group's
first record. Absent: appends go on (the lost lsns stay a gap, which no reader minds). Present:
records nobody acknowledged and this writer's memory lacks (its own reads miss them) are in
the log: ``CommitOutcomeUnknown``, told to ``on_commit_unknown`` (the writer steps down; its
successor recovers them), and this log takes no more appends. Any other failure stops appends
too.

Locks: ``_cond`` guards the queue, the failure and every collection log's next lsn;
``_write_lock`` the write connection, the group of unknown outcome and ``_closed`` (the commit
leader, the settling thread, trims, removals); ``_read_lock`` the read connection (replays,
tails). Needs psycopg 3; imported only with a PostgreSQL catalog.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pyarrow as pa

from sheafdb.errors import (
    CommitOutcomeUnknown,
    MetaStoreUnavailable,
    ServiceUnavailable,
    UnexpectedError,
    WriterFenced,
)
from sheafdb.storage.lease_rows import CommitListener, Lease
from sheafdb.storage.log import LogGap, LogRecord
from sheafdb.storage.pg_connection import PgConnection, refused
from sheafdb.storage.wal import decode_batch, serialize_batch

PG_LOG_TABLES = """
CREATE TABLE IF NOT EXISTS log_records (
    collection_id BIGINT NOT NULL, lsn BIGINT NOT NULL, kind TEXT NOT NULL,
    partition_id BIGINT NOT NULL, ts BIGINT NOT NULL, payload BYTEA NOT NULL,
    PRIMARY KEY (collection_id, lsn));
ALTER TABLE log_records ALTER COLUMN payload SET STORAGE EXTERNAL;
ALTER TABLE log_records ADD COLUMN IF NOT EXISTS write_id TEXT;
CREATE TABLE IF NOT EXISTS log_heads (
    collection_id BIGINT PRIMARY KEY, trimmed_to BIGINT NOT NULL);
"""

log = logging.getLogger(__name__)

# Records a replay fetches per round trip (a record is up to a whole insert batch).
_REPLAY_PAGE = 64
_FENCE = "SELECT 1 FROM leases WHERE name = %s AND token = %s FOR SHARE"
_INSERT = (
    "INSERT INTO log_records (collection_id, lsn, kind, partition_id, ts, payload, write_id) "
    "SELECT r.* FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::bigint[], %s::bigint[], "
    "%b::bytea[], %s::text[]) AS r"
)
_RECORD_COLUMNS = "lsn, kind, partition_id, ts, payload"
# Ends the lost connection's server process, if it still runs, and waits (ms) until it is gone.
_END_BACKEND = (
    "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
    "WHERE pid = %s AND backend_start::text = %s"
)
# How long the settling thread waits between tries while the database cannot tell.
_SETTLE_RETRY_S = 0.5


@dataclass(eq=False)
class _Pending:
    collection_id: int
    lsn: int
    kind: str
    partition_id: int
    timestamp: int
    payload: bytes
    write_id: str | None
    done: bool = False
    error: BaseException | None = None


@dataclass(frozen=True)
class _LostGroup:
    """A group whose INSERT went out on a connection that was lost before it answered."""

    collection_id: int  # its first record's
    lsn: int
    backend: tuple[int, str]  # the lost connection's server process (pid, start)


def _record(row: Any) -> LogRecord:
    return LogRecord(int(row[0]), row[1], int(row[2]), int(row[3]), decode_batch(memoryview(row[4])))


class PgLogs:
    """A LogStore in the PostgreSQL database ``url`` names (the catalog's, whose schema made
    the tables). ``fence``: the writer lease every write checks (None: unfenced, tests and
    tools); ``read_only``: a follower's, which only tails; ``on_commit_unknown``: told of a
    write that may have committed (or did) without its answer reaching this process."""

    def __init__(
        self,
        url: str,
        *,
        fence: Lease | None = None,
        read_only: bool = False,
        on_commit_unknown: CommitListener | None = None,
    ) -> None:
        try:
            self._read_pg = PgConnection(url, read_only=read_only)
            self._write_pg = None if read_only else PgConnection(url)
        except psycopg.Error as exc:
            raise UnexpectedError(f"cannot connect to the log database: {exc}") from exc
        if self._write_pg is not None:
            self._write_pg.on_commit_unknown = on_commit_unknown
        self._fence = fence
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Pending] = []
        self._committing = False
        self._failure: BaseException | None = None
        self._lost_group: _LostGroup | None = None
        self._closed = False
        self._closing = threading.Event()
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        # What ``read_after`` reads of the credential store's counter: set at its first call
        # (under _read_lock), once it knows whether a writer made the credential tables.
        self._credentials_column: str | None = None

    # -- the LogStore ------------------------------------------------------------------------
    def open(self, collection_id: int) -> PgCollectionLog:
        with self._writing() as pg:
            pg.first(
                "INSERT INTO log_heads VALUES (%s, 0) ON CONFLICT (collection_id) DO NOTHING",
                (collection_id,),
            )
            row = pg.execute(
                "SELECT GREATEST((SELECT max(lsn) FROM log_records WHERE collection_id = %s), "
                "(SELECT trimmed_to FROM log_heads WHERE collection_id = %s))",
                (collection_id, collection_id),
            ).fetchone()
        last = int(row[0]) if row is not None and row[0] is not None else 0
        return PgCollectionLog(self, collection_id, last)

    def create(self, collection_id: int) -> PgCollectionLog:
        self.remove(collection_id)
        return self.open(collection_id)

    def remove(self, collection_id: int) -> None:
        with self._writing() as pg, pg.transaction():
            self._check_fence(pg)
            pg.execute("DELETE FROM log_records WHERE collection_id = %s", (collection_id,))
            pg.execute("DELETE FROM log_heads WHERE collection_id = %s", (collection_id,))

    def remove_orphans(self, known: set[int]) -> list[str]:
        ids = sorted(known)
        with self._writing() as pg, pg.transaction():
            self._check_fence(pg)
            rows = pg.execute(
                "SELECT collection_id FROM log_heads WHERE collection_id <> ALL(%s) UNION "
                "SELECT DISTINCT collection_id FROM log_records WHERE collection_id <> ALL(%s)",
                (ids, ids),
            ).fetchall()
            gone = sorted(int(r[0]) for r in rows)
            pg.execute("DELETE FROM log_records WHERE collection_id = ANY(%s)", (gone,))
            pg.execute("DELETE FROM log_heads WHERE collection_id = ANY(%s)", (gone,))
        return [f"log of collection {cid}" for cid in gone]

    def tail(self, collection_id: int) -> PgLogTail:
        return PgLogTail(self, collection_id)

    def close(self) -> None:
        with self._cond:
            self._failure = self._failure or UnexpectedError("the log is closed")
        self._closing.set()
        with self._write_lock:
            self._closed = True
            if self._write_pg is not None:
                self._write_pg.close()
        with self._read_lock:
            self._read_pg.close()

    # -- connections -------------------------------------------------------------------------
    def _writing(self) -> _Using:
        if self._write_pg is None:
            raise UnexpectedError("the log is read-only here (a follower)")
        return _Using(self._write_lock, self._write_pg)

    def _reading(self) -> _Using:
        return _Using(self._read_lock, self._read_pg)

    def _check_fence(self, pg: PgConnection) -> None:
        """Inside a transaction: the lease still carries our token, and keeps it until commit."""
        if self._fence is not None:
            row = pg.execute(_FENCE, (self._fence.name, self._fence.token)).fetchone()
            if row is None:
                raise WriterFenced.lost(self._fence.name, self._fence.token)

    # -- appends: group commit ---------------------------------------------------------------
    def append(
        self,
        log: PgCollectionLog,
        kind: str,
        partition_id: int,
        timestamp: int,
        batch: pa.Table,
        write_id: str | None = None,
    ) -> int:
        payload = serialize_batch(batch).to_pybytes()
        with self._cond:
            self._check_usable(log)
            lsn = log.next_lsn
            log.next_lsn = lsn + 1
            entry = _Pending(log.collection_id, lsn, kind, partition_id, timestamp, payload, write_id)
            self._queue.append(entry)
            while not entry.done:
                if self._committing:
                    self._cond.wait()
                    continue
                self._lead()
            if entry.error is not None:
                raise self._append_error(entry.error)
            return lsn

    def _check_usable(self, log: PgCollectionLog) -> None:
        if log.closed:
            raise UnexpectedError(f"the log of collection {log.collection_id} is closed")
        if self._failure is not None:
            raise self._append_error(self._failure)

    @staticmethod
    def _append_error(error: BaseException) -> Exception:
        if isinstance(error, (ServiceUnavailable, UnexpectedError)):
            return error
        return UnexpectedError(f"log append failed: {error}")

    def _lead(self) -> None:
        """Under ``_cond``: commit everything queued in one statement, outside the lock."""
        group, self._queue = self._queue, []
        error = self._failure  # after a failure nothing more is written (lsns would skip)
        if error is None:
            self._committing = True
            self._cond.release()
            try:
                self._commit(group)
            except BaseException as exc:  # noqa: BLE001 - handed to every appender of the group
                error = exc
            finally:
                self._cond.acquire()
                self._committing = False
            # A lost connection is not the end: the next group settles this one's fate first.
            # A group found committed unacknowledged is the end too.
            unknown = isinstance(error, CommitOutcomeUnknown)
            if error is not None and (unknown or not isinstance(error, MetaStoreUnavailable)):
                self._failure = error
        for entry in group:
            entry.done = True
            entry.error = error
        self._cond.notify_all()

    def _commit(self, group: list[_Pending]) -> None:
        with self._writing() as pg:
            with self._cond:
                failure = self._failure  # found while this group waited (the settling thread)
            if failure is not None:
                raise failure
            if self._lost_group is not None:
                self._settle(pg, self._lost_group)
                self._lost_group = None
            for attempt in range(2):
                pg.reconnect_if_lost()  # nothing of this group went out yet
                backend = pg.backend
                try:
                    self._insert(pg, group)
                    return
                except MetaStoreUnavailable as exc:
                    if not refused(exc):  # silence: the INSERT may or may not have committed
                        self._lost_group = _LostGroup(group[0].collection_id, group[0].lsn, backend)
                        threading.Thread(
                            target=self._settle_soon, name="sheafdb-log-settle", daemon=True
                        ).start()
                        raise
                    if attempt == 1:
                        raise
                    # The server said no (it ended the session, as a restart does): nothing
                    # committed, so once more on a new connection.

    def _settle_soon(self) -> None:
        """Settle the lost group now rather than at the next append, which may be long in
        coming: if it committed, the writer must step down at once (its reads lack its rows)."""
        while not self._closing.is_set():
            with self._write_lock:
                lost, pg = self._lost_group, self._write_pg
                if lost is None or pg is None or self._closed:
                    return  # settled by an append meanwhile
                try:
                    self._settle(pg, lost)
                except CommitOutcomeUnknown as exc:
                    with self._cond:
                        self._failure = self._failure or exc
                    return
                except Exception as exc:  # noqa: BLE001 - the database cannot tell yet: again soon
                    log.warning("the fate of a lost log append is not known yet: %s", exc)
                else:
                    self._lost_group = None
                    return
            self._closing.wait(_SETTLE_RETRY_S)

    def _settle(self, pg: PgConnection, lost: _LostGroup) -> None:
        """Learn whether ``lost`` committed; raises unless it surely did not."""
        ended = pg.first(_END_BACKEND, lost.backend).fetchone()
        if ended is not None and not ended[0]:
            raise MetaStoreUnavailable(
                "the log's lost connection still runs in the database; retry once it ended"
            )
        found = pg.execute(
            "SELECT 1 FROM log_records WHERE collection_id = %s AND lsn = %s", (lost.collection_id, lost.lsn)
        ).fetchone()
        if found is not None:
            raise pg.commit_unknown(
                CommitOutcomeUnknown(
                    "log records committed while the database connection was lost were never "
                    "acknowledged; this writer takes no more writes and steps down "
                    "(its successor recovers them)"
                )
            )

    def _insert(self, pg: PgConnection, group: list[_Pending]) -> None:
        columns = (
            [e.collection_id for e in group],
            [e.lsn for e in group],
            [e.kind for e in group],
            [e.partition_id for e in group],
            [e.timestamp for e in group],
            [e.payload for e in group],
            [e.write_id for e in group],
        )
        if self._fence is None:
            pg.execute(_INSERT, columns)
            return
        # One statement (one round trip, its own transaction): the fence and the rows.
        cur = pg.execute(
            f"WITH fence AS ({_FENCE}) {_INSERT} CROSS JOIN fence",
            (self._fence.name, self._fence.token, *columns),
        )
        if cur.rowcount != len(group):
            raise WriterFenced.lost(self._fence.name, self._fence.token)

    # -- reads and trims ---------------------------------------------------------------------
    def replay(self, collection_id: int, after_lsn: int, last_lsn: int) -> Iterator[LogRecord]:
        while after_lsn < last_lsn:
            with self._reading() as pg:
                rows = pg.first(
                    f"SELECT {_RECORD_COLUMNS} FROM log_records WHERE collection_id = %s "
                    "AND lsn > %s AND lsn <= %s ORDER BY lsn LIMIT %s",
                    (collection_id, after_lsn, last_lsn, _REPLAY_PAGE),
                    binary=True,
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _record(row)
            after_lsn = int(rows[-1][0])

    def find_write(self, collection_id: int, write_id: str) -> LogRecord | None:
        with self._reading() as pg:
            row = pg.first(
                f"SELECT {_RECORD_COLUMNS} FROM log_records WHERE collection_id = %s AND write_id = %s "
                "ORDER BY lsn LIMIT 1",
                (collection_id, write_id),
                binary=True,
            ).fetchone()
        return None if row is None else _record(row)

    def trim(self, collection_id: int, up_to_lsn: int) -> None:
        with self._writing() as pg, pg.transaction():
            self._check_fence(pg)
            pg.execute(
                "DELETE FROM log_records WHERE collection_id = %s AND lsn <= %s", (collection_id, up_to_lsn)
            )
            pg.execute(
                "INSERT INTO log_heads VALUES (%s, %s) ON CONFLICT (collection_id) DO UPDATE SET "
                "trimmed_to = GREATEST(log_heads.trimmed_to, excluded.trimmed_to)",
                (collection_id, up_to_lsn),
            )

    def read_after(self, collection_id: int, after_lsn: int) -> tuple[int, int, list[LogRecord], int | None]:
        """(the catalog's change counter, how far the log was trimmed, the records past
        ``after_lsn``, the credential store's change counter), in one statement: one snapshot
        and one round trip. The counters are the catalog's (``SqlCatalog.change_counter``) and
        the credentials' (pg_credentials.py; None when no writer made that table), in the
        same database, so a follower learns in the same look whether the catalog it resolved
        the read with, and the users and grants it checked the call with, are still current."""
        with self._reading() as pg:
            if self._credentials_column is None:
                made = pg.first("SELECT to_regclass('credential_version') IS NOT NULL").fetchone()
                self._credentials_column = (
                    "COALESCE((SELECT version::text FROM credential_version), '')"
                    if made is not None and made[0]
                    else "''"
                )
            rows = pg.first(
                f"SELECT 0, {self._credentials_column}, (SELECT value FROM meta WHERE key = 'version'), "
                "COALESCE((SELECT trimmed_to FROM log_heads WHERE collection_id = %s), 0), NULL "
                f"UNION ALL SELECT {_RECORD_COLUMNS} FROM log_records "
                "WHERE collection_id = %s AND lsn > %s ORDER BY 1",
                (collection_id, collection_id, after_lsn),
                binary=True,
            ).fetchall()
        head = rows[0]  # lsns start at 1: the head row sorts first; its kind: the credentials'
        credentials = int(head[1]) if head[1] else None
        return int(head[2]), int(head[3]), [_record(row) for row in rows[1:]], credentials


class _Using:
    """Holds a connection's lock for a ``with`` block and gives the connection."""

    def __init__(self, lock: threading.Lock, pg: PgConnection) -> None:
        self._lock = lock
        self._pg = pg

    def __enter__(self) -> PgConnection:
        self._lock.acquire()
        return self._pg

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class PgCollectionLog:
    """A CollectionLog: one collection's records in the store's table (``PgLogs``)."""

    def __init__(self, store: PgLogs, collection_id: int, last_lsn: int) -> None:
        self._store = store
        self.collection_id = collection_id
        self.next_lsn = last_lsn + 1  # guarded by the store's _cond
        self.closed = False

    def append(
        self, kind: str, partition_id: int, timestamp: int, batch: pa.Table, write_id: str | None = None
    ) -> int:
        return self._store.append(self, kind, partition_id, timestamp, batch, write_id)

    def find_write(self, write_id: str) -> LogRecord | None:
        return self._store.find_write(self.collection_id, write_id)

    def replay(self, after_lsn: int = 0) -> Iterator[LogRecord]:
        return self._store.replay(self.collection_id, after_lsn, self.last_lsn)

    def trim(self, up_to_lsn: int) -> None:
        self._store.trim(self.collection_id, up_to_lsn)

    @property
    def last_lsn(self) -> int:
        with self._store._cond:
            return self.next_lsn - 1

    def close(self) -> None:
        """Appends return only once committed: nothing is left to make durable."""
        self.closed = True


class PgLogTail:
    """A LogTail of one collection's records in PostgreSQL: one statement per read, which
    also reads the catalog's and the credentials' change counters."""

    def __init__(self, store: PgLogs, collection_id: int) -> None:
        self._store = store
        self.collection_id = collection_id
        self.last_lsn: int | None = None  # None: nothing read yet
        self.catalog_counter: int | None = None
        self.credential_counter: int | None = None

    def read_new(self) -> list[LogRecord]:
        counter, trimmed_to, records, credentials = self._store.read_after(
            self.collection_id, self.last_lsn or 0
        )
        self.catalog_counter = counter
        self.credential_counter = credentials
        if self.last_lsn is not None and trimmed_to > self.last_lsn:
            raise LogGap(
                f"log of collection {self.collection_id} trimmed to {trimmed_to}, past {self.last_lsn}"
            )
        if records:
            self.last_lsn = records[-1].lsn
        elif self.last_lsn is None:
            self.last_lsn = trimmed_to
        return records
