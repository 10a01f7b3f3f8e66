"""The collections' logs in PostgreSQL: an append-only table, acknowledged after commit.

``log_records(collection_id, lsn, kind, partition_id, ts, payload)``: one row per record, the
batch as Arrow IPC stream bytes (as in the file log), stored uncompressed (EXTERNAL: vectors
do not compress, and trying cost most of a large append). ``log_heads(collection_id, trimmed_to)``
remembers how far a collection's log was trimmed, so lsns never restart after the log was
emptied, and so a follower that needed a trimmed record can tell (``LogGap``).

Appends are fenced: the INSERT reads the lease's row ``FOR SHARE`` in the same statement
and inserts nothing unless it still carries the holder's token. A takeover's UPDATE of that
row therefore waits for an append in flight to commit (and the new holder, which recovers
after its takeover committed, sees it), and an append after the takeover finds another
token: ``WriterFenced``, and no log under that fence takes more appends. The fence is the
store's (the coordinator's ``writer`` lease) or, for a log opened with one (``open(cid,
fence=...)``), that collection's log owner lease (``log/<cid>``): a log owner that lost one
collection's lease keeps appending to its other collections' logs.

Group commit: appenders queue their record under ``_cond``; the first one to find no commit
running becomes the leader and inserts every queued record (of every collection, under every
fence) in one statement (pg_log_group.py), outside the lock, then wakes everyone it covered:
records under a fence that no longer held fail with ``WriterFenced``, the others are
committed. One commit at a time, so records commit in lsn order and a follower reading
``lsn > last`` never skips one.

A lost connection is replaced (pg_connection.py). When the server ended it with an error
(PostgreSQL restarting) the INSERT did not run and goes out again on a new connection; when it
went silent (the network cut, the server killed), the group's appends fail with
``MetaStoreUnavailable`` and whether its INSERT committed is unknown, so it is settled at once,
by a thread of its own (``sheafdb-log-settle``, retrying while the database is away), and by
the next group's leader first if that comes sooner: it ends the lost connection's server
process if that still runs (its statement can then commit no more) and looks for the group's
first record under each fence (a fence held for all its records or none). Absent: appends
go on (the lost lsns stay a gap, which no reader minds). Present: records nobody
acknowledged and this writer's memory lacks (its own reads miss them) are in the log:
``CommitOutcomeUnknown``, told to ``on_commit_unknown`` (the writer steps down; its
successor recovers them), and this store takes no more appends, whatever their fence. Any
other failure stops appends too.

Locks: ``_cond`` guards the queue, the failure, the lost fences, the collections' fences
and every collection log's next lsn;
``_write_lock`` the write connection, the group of unknown outcome and ``_closed`` (the commit
leader, the settling thread, trims, removals); ``_read_lock`` the read connection (replays,
tails). Needs psycopg 3; imported only with a PostgreSQL catalog.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
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
from sheafdb.storage.pg_log_group import FENCE, FenceKey, PendingRecord, fence_key, insert_group
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
_RECORD_COLUMNS = "lsn, kind, partition_id, ts, payload"
# Ends the lost connection's server process, if it still runs, and waits (ms) until it is gone.
_END_BACKEND = (
    "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
    "WHERE pid = %s AND backend_start::text = %s"
)
# How long the settling thread waits between tries while the database cannot tell.
_SETTLE_RETRY_S = 0.5


@dataclass(frozen=True)
class _LostGroup:
    """A group whose INSERT went out on a connection that was lost before it answered."""

    records: tuple[tuple[int, int], ...]  # (collection id, lsn): the first under each fence
    backend: tuple[int, str]  # the lost connection's server process (pid, start)


def _record(row: Any) -> LogRecord:
    return LogRecord(int(row[0]), row[1], int(row[2]), int(row[3]), decode_batch(memoryview(row[4])))


class PgLogs:
    """A LogStore in the PostgreSQL database ``url`` names (the catalog's, whose schema made
    the tables). ``fence``: the writer lease every write checks unless its log was opened
    with a fence of its own (None: unfenced, tests and tools); ``read_only``: a follower's,
    which only tails; ``on_commit_unknown``: told of a write that may have committed (or
    did) without its answer reaching this process."""

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
        self._queue: list[PendingRecord] = []
        # Fences found taken over: no log under one appends again (its lsns would skip).
        self._lost_fences: dict[FenceKey, WriterFenced] = {}
        # The fence a collection's log was last opened with (``open(cid, fence=...)``), which
        # its removal checks instead of the store's.
        self._log_fences: dict[int, Lease] = {}
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
    def open(self, collection_id: int, *, fence: Lease | None = None) -> PgCollectionLog:
        """``fence``: the collection's log owner lease its appends, trims and removal check
        instead of the store's (None: the store's)."""
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
        if fence is not None:
            with self._cond:
                self._log_fences[collection_id] = fence
        return PgCollectionLog(self, collection_id, last, fence)

    def create(self, collection_id: int) -> PgCollectionLog:
        self.remove(collection_id)
        return self.open(collection_id)

    def remove(self, collection_id: int) -> None:
        with self._cond:
            fence = self._log_fences.get(collection_id, self._fence)
        with self._writing() as pg, pg.transaction():
            self._check_fence(pg, fence)
            pg.execute("DELETE FROM log_records WHERE collection_id = %s", (collection_id,))
            pg.execute("DELETE FROM log_heads WHERE collection_id = %s", (collection_id,))
        with self._cond:
            self._log_fences.pop(collection_id, None)

    def remove_orphans(self, known: set[int]) -> list[str]:
        ids = sorted(known)
        with self._writing() as pg, pg.transaction():
            self._check_fence(pg, self._fence)
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

    def _check_fence(self, pg: PgConnection, fence: Lease | None) -> None:
        """Inside a transaction: ``fence`` still carries our token, and keeps it until commit.
        A fence found lost takes no more appends either."""
        if fence is not None and pg.execute(FENCE, fence_key(fence)).fetchone() is None:
            lost = WriterFenced.lost(fence.name, fence.token)
            with self._cond:
                self._lost_fences.setdefault(fence_key(fence), lost)
            raise lost

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
        fence = log.fence or self._fence
        with self._cond:
            self._check_usable(log, fence)
            lsn = log.next_lsn
            log.next_lsn = lsn + 1
            entry = PendingRecord(
                log.collection_id, lsn, kind, partition_id, timestamp, payload, write_id, fence
            )
            self._queue.append(entry)
            while not entry.done:
                if self._committing:
                    self._cond.wait()
                    continue
                self._lead()
            if entry.error is not None:
                raise self._append_error(entry.error)
            return lsn

    def _check_usable(self, log: PgCollectionLog, fence: Lease | None) -> None:
        if log.closed:
            raise UnexpectedError(f"the log of collection {log.collection_id} is closed")
        if self._failure is not None:
            raise self._append_error(self._failure)
        lost = None if fence is None else self._lost_fences.get(fence_key(fence))
        if lost is not None:
            raise lost

    @staticmethod
    def _append_error(error: BaseException) -> Exception:
        if isinstance(error, (ServiceUnavailable, UnexpectedError)):
            return error
        return UnexpectedError(f"log append failed: {error}")

    def _lead(self) -> None:
        """Under ``_cond``: commit everything queued in one statement, outside the lock."""
        group, self._queue = self._queue, []
        error = self._failure  # after a failure nothing more is written (lsns would skip)
        # Records under a fence lost while they queued fail without going out (lsns would skip).
        failed = {id(e): self._lost_fences[k] for e in group if (k := self._key(e)) in self._lost_fences}
        sent = [e for e in group if id(e) not in failed]
        if error is None and sent:
            self._committing = True
            self._cond.release()
            lost: list[Lease] = []
            try:
                lost = self._commit(sent)
            except BaseException as exc:  # noqa: BLE001 - handed to every appender of the group
                error = exc
            finally:
                self._cond.acquire()
                self._committing = False
            for fence in lost:
                key = fence_key(fence)
                fenced = self._lost_fences.setdefault(key, WriterFenced.lost(fence.name, fence.token))
                failed.update((id(e), fenced) for e in sent if self._key(e) == key)
            # A lost connection is not the end: the next group settles this one's fate first.
            # A group found committed unacknowledged is the end too.
            unknown = isinstance(error, CommitOutcomeUnknown)
            if error is not None and (unknown or not isinstance(error, MetaStoreUnavailable)):
                self._failure = error
        for entry in group:
            entry.done = True
            entry.error = failed.get(id(entry), error)
        self._cond.notify_all()

    @staticmethod
    def _key(entry: PendingRecord) -> FenceKey | None:
        return None if entry.fence is None else fence_key(entry.fence)

    def _commit(self, group: Sequence[PendingRecord]) -> list[Lease]:
        """Insert ``group``; returns the fences that no longer held (their records were not
        inserted)."""
        with self._writing() as pg:
            with self._cond:
                failure = self._failure  # found while this group waited (the settling thread)
            if failure is not None:
                raise failure
            if self._lost_group is not None:
                self._settle(pg, self._lost_group)
                self._lost_group = None
            retried = False
            while True:
                pg.reconnect_if_lost()  # nothing of this group went out yet
                backend = pg.backend
                try:
                    return insert_group(pg, group)
                except MetaStoreUnavailable as exc:
                    if not refused(exc):  # silence: the INSERT may or may not have committed
                        self._lost_group = _LostGroup(self._first_records(group), backend)
                        threading.Thread(
                            target=self._settle_soon, name="sheafdb-log-settle", daemon=True
                        ).start()
                        raise
                    if retried:
                        raise
                    retried = True
                    # The server said no (it ended the session, as a restart does): nothing
                    # committed, so once more on a new connection.

    def _first_records(self, group: Sequence[PendingRecord]) -> tuple[tuple[int, int], ...]:
        """(collection id, lsn) of each fence's first record: if the statement committed,
        the records of every fence that held are in, so one of these is."""
        first: dict[FenceKey | None, tuple[int, int]] = {}
        for entry in group:
            first.setdefault(self._key(entry), (entry.collection_id, entry.lsn))
        return tuple(first.values())

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
            "SELECT 1 FROM log_records WHERE (collection_id, lsn) IN "
            "(SELECT * FROM unnest(%s::bigint[], %s::bigint[])) LIMIT 1",
            ([cid for cid, _ in lost.records], [lsn for _, lsn in lost.records]),
        ).fetchone()
        if found is not None:
            raise pg.commit_unknown(
                CommitOutcomeUnknown(
                    "log records committed while the database connection was lost were never "
                    "acknowledged; this writer takes no more writes and steps down "
                    "(its successor recovers them)"
                )
            )

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

    def trim(self, collection_id: int, up_to_lsn: int, fence: Lease | None = None) -> None:
        """``fence``: the collection's log owner lease the trim checks (None: the store's)."""
        with self._writing() as pg, pg.transaction():
            self._check_fence(pg, fence or self._fence)
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

    def __init__(self, store: PgLogs, collection_id: int, last_lsn: int, fence: Lease | None) -> None:
        self._store = store
        self.collection_id = collection_id
        self.fence = fence  # the lease its appends and trims check; None: the store's
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
        self._store.trim(self.collection_id, up_to_lsn, self.fence)

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
