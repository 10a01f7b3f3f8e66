"""The cluster coordinator follows its collections' logs instead of appending to them.

In cluster mode (``EngineConfig.cluster`` with the logs in PostgreSQL) each collection's log
has one owner: the process holding the lease ``log/<collection_id>``
(engine/write/log_ownership.py), the only one that appends Insert, Upsert and Delete. The
coordinator (the holder of the ``writer`` lease: DDL, seals, compaction, index builds, loads)
appends no such record itself:

- its insert, upsert and delete are the attached ``LogWriter``'s (the ShardWriter of its own
  process), which appends as the log owner, or refuses with NotLogOwner when another member
  owns the log (the proxy routes there);
- its growing rows come from the log: ``catch_up`` reads the records past the collection's
  last applied lsn (a LogTail, storage/log.py) and applies them in lsn order with recovery's
  rules (recovery.RecordRules), under the collection's write gate held shared, so a seal's
  capture sees whole records. It runs before every seal (Sealer's ``before_capture``), row
  count and compaction the facade makes, and in a background thread that also seals a
  collection whose growing data passed ``seal_bytes``, as the write path does after its own
  writes;
- its own records (a truncate, a bulk import, the deletes of rows a dropped TTL expired) go
  through ``LogWriter.append``, which takes the log lease over, and are then caught up with,
  never applied directly: a record the previous owner appended may precede them;
- dropping a collection takes its log lease first, in the coordinator's name (fencing the
  owner, so no record lands after the log is removed; the owner's renewal then finds it
  lost), and deletes the lease once the log is gone.

Embedded (and a cluster on the file log, which only tests build): none of this; writes log
and apply themselves (collection.py), at no extra cost.

Locks: ``_lock`` guards ``_followed`` and ``_writer``; ``_Followed.lock`` serialises one
collection's catch-up (its tail reads on, and records apply in lsn order). Neither is held
across a seal. Thread ``sheafdb-log-following``: the periodic catch-up and seals (its
pacing is its own); stopped (and joined) by ``close`` within one collection's turn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from sheafdb.engine.collection import TRUNCATE_KIND, Cleared, Collection
from sheafdb.engine.config import EngineConfig
from sheafdb.engine.models import MutationResult
from sheafdb.engine.write.recovery import RecordRules
from sheafdb.engine.write.write_ids import WriteTag
from sheafdb.errors import ServiceUnavailable, UnexpectedError
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.lease_rows import log_lease_name
from sheafdb.storage.log import LogGap, LogStore, LogTail

log = logging.getLogger(__name__)

# How long a dropping collection's log lease is held: past any drop (it is deleted after).
DROP_LEASE_TTL_S = 600.0

# How often the background thread catches every collection up (and seals what passed
# seal_bytes): the coordinator's growing rows lag the log owners' acknowledged writes by
# about this much at most (reads go to the query workers, which follow the log themselves).
FOLLOW_INTERVAL_S = 0.2
# A log found with nothing new is looked at half as often, down to once in this many passes
# (2 s): an idle coordinator sends few statements. A flush, a seal and a row count catch up
# themselves, so only the background seal of a log waking up waits that long at most.
IDLE_PASSES = 10


class LogWriter(Protocol):
    """The log owner's DML path the coordinator's Engine delegates to (the ShardWriter of
    its process, engine/write/shard_writer.py); same arguments and errors as Engine's."""

    def insert(
        self, db: str, name: str, data: pa.Table, partition: str, /, *, tag: WriteTag | None
    ) -> MutationResult: ...

    def upsert(
        self,
        db: str,
        name: str,
        data: pa.Table,
        partition: str,
        /,
        *,
        partial_update: bool,
        tag: WriteTag | None,
    ) -> MutationResult: ...

    def delete(
        self, db: str, name: str, filter_text: str, params: Mapping[str, object] | None, partition: str, /
    ) -> MutationResult: ...

    def append(
        self,
        collection_id: int,
        kind: str,
        partition_id: int,
        ts: int,
        batch: pa.Table,
        write_id: str | None = None,
        /,
    ) -> int:
        """Append one record as the collection's log owner (taking the log lease over when
        another process holds it); returns its lsn once committed."""
        ...


def log_following_for(
    config: EngineConfig, logs: LogStore, catalog: Catalog, collections: Callable[[], list[Collection]]
) -> LogFollowing | None:
    """The cluster's coordinator follows its log owners when its logs are in PostgreSQL
    (only there do log leases fence appends); None otherwise. It takes log leases in the
    name of its writer lease's holder (its advertised address, which a proxy can reach)."""
    if not (config.cluster and config.catalog_url is not None):
        return None
    holder = config.writer_lease.holder if config.writer_lease is not None else "coordinator"
    return LogFollowing(logs, catalog, collections, holder=holder)


@dataclass(eq=False)
class _Followed:
    """One collection's tail (kept until the collection is dropped: two tails at once could
    both apply a record)."""

    collection: Collection
    tail: LogTail
    rules: RecordRules = field(default_factory=RecordRules)
    lock: threading.Lock = field(default_factory=threading.Lock)


class LogFollowing:
    def __init__(
        self,
        logs: LogStore,
        catalog: Catalog,
        collections: Callable[[], list[Collection]],
        *,
        holder: str,
        interval_s: float = FOLLOW_INTERVAL_S,
    ) -> None:
        """``holder``: the name the coordinator takes log leases in (its writer lease's)."""
        self._logs = logs
        self._catalog = catalog
        self._holder = holder
        self._collections = collections
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._followed: dict[int, _Followed] = {}
        self._writer: LogWriter | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, seal: Callable[[Collection], object], seal_bytes: int) -> None:
        """Start the background catch-up (and seals past ``seal_bytes``)."""
        self._thread = threading.Thread(
            target=self._run, args=(seal, seal_bytes), name="sheafdb-log-following", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    # -- the log writer ----------------------------------------------------------------------
    def attach(self, writer: LogWriter) -> None:
        with self._lock:
            self._writer = writer

    @property
    def writer(self) -> LogWriter:
        with self._lock:
            writer = self._writer
        if writer is None:
            raise ServiceUnavailable("the coordinator's log writer is not running yet; retry")
        return writer

    # -- catching up -------------------------------------------------------------------------
    def catch_up(self, coll: Collection) -> int:
        """Apply every record appended to ``coll``'s log past what it holds; returns how
        many records it read."""
        followed = self._state(coll)
        with followed.lock:
            try:
                records = followed.tail.read_new()
            except LogGap as exc:  # only the coordinator trims, and only what it applied
                raise UnexpectedError(f"collection {coll.name} cannot follow its log: {exc}") from exc
            if records:
                with coll.applying():
                    for record in records:
                        # The first read starts at the oldest record kept: recovery applied some.
                        if record.lsn > coll.last_lsn():
                            followed.rules.apply(coll, record)
        return len(records)

    def _state(self, coll: Collection) -> _Followed:
        with self._lock:
            followed = self._followed.get(coll.collection_id)
            if followed is None:
                tail = self._logs.tail(coll.collection_id)
                followed = self._followed[coll.collection_id] = _Followed(coll, tail)
            return followed

    # -- the coordinator's own records -------------------------------------------------------
    def write(
        self,
        coll: Collection,
        kind: str,
        partition_id: int,
        timestamp: int,
        batch: pa.Table,
        write_id: str | None,
    ) -> int:
        """A record of the coordinator's (writes.RecordWrite): appended by the log owner's
        path, then applied by catching up; returns its lsn."""
        lsn = self.writer.append(coll.collection_id, kind, partition_id, timestamp, batch, write_id)
        self.catch_up(coll)
        if coll.last_lsn() < lsn:
            raise UnexpectedError(f"record {lsn} of collection {coll.name} is not in its log")
        return lsn

    def clear_data(self, coll: Collection, timestamp: int) -> Cleared:
        """Truncate (data_removal.py; the caller holds ``seal_lock``, so the sealed data is
        what it was until the record applies): the truncate record, appended and caught up."""
        gone, gone_deletes = coll.snapshot().sealed, coll.delete_files
        lsn = self.write(coll, TRUNCATE_KIND, 0, timestamp, pa.table({}), None)
        return gone, gone_deletes, lsn

    @contextmanager
    def dropping(self, coll: Collection) -> Iterator[None]:
        """Around a drop's removal: the log lease taken first (its owner appends no more),
        deleted once the log is gone, and also when the drop failed part way (the members
        adopt the log again if the collection is still there)."""
        name = log_lease_name(coll.collection_id)
        self._catalog.take_lease(name, self._holder, DROP_LEASE_TTL_S)
        try:
            yield
        finally:
            self._catalog.drop_lease(name)

    # -- the background thread ---------------------------------------------------------------
    def _run(self, seal: Callable[[Collection], object], seal_bytes: int) -> None:
        pacing: dict[int, _Pacing] = {}  # the thread's own
        passes = 0
        while not self._stop.wait(self._interval_s):
            passes += 1
            collections = self._collections()
            with self._lock:  # forget the dropped ones (one state per collection until then)
                for cid in [cid for cid, f in self._followed.items() if f.collection.dropped]:
                    del self._followed[cid]
            open_ids = {c.collection_id for c in collections}
            for cid in [cid for cid in pacing if cid not in open_ids]:
                del pacing[cid]
            for coll in collections:
                if self._stop.is_set():
                    return
                pace = pacing.setdefault(coll.collection_id, _Pacing())
                if coll.dropped or passes < pace.due:
                    continue
                try:
                    found = self.catch_up(coll)
                    # A seal already running (a flush) is left to finish alone.
                    if coll.growing_bytes() >= seal_bytes and not coll.seal_lock.locked():
                        seal(coll)
                except Exception as exc:  # noqa: BLE001 - the next pass tries again
                    if pace.failure != str(exc):
                        log.warning("following the log of collection %s failed: %s", coll.name, exc)
                    pace.failure, found = str(exc), 1
                else:
                    pace.failure = None
                pace.period = 1 if found else min(pace.period * 2, IDLE_PASSES)
                pace.due = passes + pace.period


@dataclass
class _Pacing:
    """How often the background thread looks at one collection's log."""

    period: int = 1  # passes between looks: doubles while the log has nothing new
    due: int = 0  # the pass of the next look
    failure: str | None = None  # the last failure, warned about once
