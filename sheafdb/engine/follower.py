"""The read path of a query worker (``serve --workers N``): the primary's data, followed.

A worker process serves search, hybrid search and query over the same backends as the
primary process (the writer), which keeps every write, the logs, the catalog, seals,
compaction, index builds and the load state: the data dir's SQLite catalog, file logs and
segment files (embedded), or the PostgreSQL catalog and log and the S3 objects (cached in
this worker's data dir). ``FollowerConfig`` names them. The worker writes nothing; it follows:

- **The catalog.** Every read asks the catalog whether anyone committed since it last
  looked (``change_counter``: SQLite's ``PRAGMA data_version``, a counter every write
  transaction bumps in PostgreSQL, read there in the log tail's own statement: one round
  trip per read). If so it takes the catalog again and the read starts over: names,
  and per collection a fingerprint (record, partitions, indexes, segments and their built
  indexes, the persisted load config). A collection whose fingerprint changed (a seal, a
  compaction swap, an index build, a DDL, a load or release) is opened afresh from the
  catalog and its log, its old runtime released and the new one loaded as the load config
  says; a dropped one is released and forgotten.
- **The log.** A read then reads the collection's log past what it has applied
  (a LogTail, storage/log.py: wal_tail.py or pg_log.py) and applies the new records to its
  growing rows with recovery's rules (write/recovery.LogReplay). The primary acknowledges a
  write only after its record is in the file (committed, in PostgreSQL), so a read that
  starts after an acknowledgement sees the write (Strong).
  Records trimmed before the tail read them (a seal in between) show as a gap: the worker
  takes the catalog again, which holds them as a segment.
- **The change counter** (``FollowerConfig.shared_changes``: embedded, ``serve --workers N``).
  The primary bumps a shared counter after every catalog commit and log append
  (storage/change_counter.py). A read loads it first; where it was before this collection's
  last successful look (with the catalog version unchanged), nothing was announced since
  and the read skips the catalog's counter and the log's tail: no syscall. Else it looks as
  above.
- **Memory.** Loads map every column file and faiss index (``share_pages``), as the primary
  does with workers, so N processes hold one copy in the page cache; what a worker builds
  for itself (growing rows, primary-key lookups, filter masks) is its own, in its accountant.

Locks: ``_gate`` (collection.WriteGate): reads hold it shared while they catch up and read;
taking the catalog again holds it exclusive, so no read runs on a runtime being released.
``_refresh_lock`` makes one thread take the catalog while the others wait for it.
``_Followed.lock`` serialises catching one collection up with its log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path

from sheafdb.engine.collection import Collection, WriteGate
from sheafdb.engine.load.load_manager import LoadManager
from sheafdb.engine.load.memory import MemoryAccountant
from sheafdb.engine.load.target import LoadRequest
from sheafdb.engine.models import (
    HybridSearchRequest,
    LoadState,
    QueryRequest,
    QueryResult,
    SearchRequest,
    SearchResult,
)
from sheafdb.engine.names import CollectionNames
from sheafdb.engine.read.search_by_keys import with_key_vectors
from sheafdb.engine.write.recovery import LogReplay
from sheafdb.errors import SheafError, UnexpectedError, invalid
from sheafdb.schema import CollectionSchema
from sheafdb.storage.catalog import Catalog, open_catalog
from sheafdb.storage.change_counter import ChangeCounter, Slot
from sheafdb.storage.log import LogGap, LogTail, open_log_store
from sheafdb.storage.object_store import open_object_store
from sheafdb.storage.records import CollectionRecord
from sheafdb.storage.timestamps import TimestampOracle
from sheafdb.timestamptz import TIMEZONE_PROPERTY, zone

log = logging.getLogger(__name__)

# A read that keeps meeting gaps (seals racing its catch-up) gives up after this many tries.
CATCH_UP_ATTEMPTS = 20
# How long a read waits for this worker's own load of a collection the primary loaded.
LOAD_WAIT_S = 600.0


@dataclass(frozen=True)
class FollowerConfig:
    """Where the followed deployment keeps its state (the writer's EngineConfig's backends)."""

    # The writer's data dir (embedded), or this process's own cache dir (remote backends).
    data_dir: Path
    # The catalog and with it the logs: None is the SQLite file and the logs in data_dir; a
    # postgresql:// URL the catalog and the log tables in PostgreSQL (opened read-only).
    catalog_url: str | None = None
    # Segment files: None is data_dir; an s3:// URL, fetched into a cache in data_dir.
    objects_url: str | None = None
    object_cache_bytes: int | None = None
    # The primary announces its changes on the data dir's shared change counter
    # (storage/change_counter.py; ``serve --workers N``, embedded catalog): a read that finds
    # it where it was at the last look skips the catalog's and the log's own checks.
    shared_changes: bool = False


@dataclass(frozen=True)
class _Fingerprint:
    """Everything of a collection in the catalog whose change means opening it afresh."""

    record: CollectionRecord
    rest: tuple[object, ...]


@dataclass(eq=False)
class _Followed:
    fingerprint: _Fingerprint
    replay: LogReplay
    tail: LogTail
    request: LoadRequest | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # (the shared change counter, the catalog version) as read before the last look that
    # found this collection caught up and the catalog current (None: no look yet).
    checked: tuple[int, int | None] | None = None

    @property
    def collection(self) -> Collection:
        return self.replay.collection

    def catch_up(self, catalog: Catalog) -> tuple[int, int | None]:
        """Apply what the primary logged since the last read (LogGap: records were trimmed);
        returns the catalog's change counter read after the call came in: with the records
        when the log lives with the catalog (one PostgreSQL round trip), else just after; and
        the credential store's, when the same statement read it (else None)."""
        with self.lock:
            for record in self.tail.read_new():
                self.replay.apply(record)
            counter, credentials = self.tail.catalog_counter, self.tail.credential_counter
        return (catalog.change_counter() if counter is None else counter), credentials


class Follower:
    # How long a read waits for this process's own load of the collection.
    load_wait_s = LOAD_WAIT_S
    # This process's memory budget (None: the accountant's default share of the machine); a
    # cluster worker sets the budget it registered with before the first load.
    budget_bytes: int | None = None
    # Told, in the reading thread, of the credential store's change counter when a read's
    # own statement carried it (a cluster worker's AccessControl.saw_store_version: its
    # authorization then asks PostgreSQL nothing more).
    on_credential_counter: Callable[[int], None] | None = None

    def __init__(self, config: FollowerConfig, *, memory_budget_bytes: int | None = None) -> None:
        """``memory_budget_bytes``: the whole server's, with ``--workers`` (None: ``budget_bytes``)."""
        self.config = config
        data_dir = Path(config.data_dir)
        self._catalog = open_catalog(config.catalog_url, data_dir, read_only=True)
        self._logs = open_log_store(config.catalog_url, data_dir, read_only=True)
        self._store = open_object_store(config.objects_url, data_dir, config.object_cache_bytes)
        self._accountant = MemoryAccountant(
            self.budget_bytes if memory_budget_bytes is None else memory_budget_bytes
        )
        self._loads = LoadManager(self._accountant, self._store, share_pages=True)
        self._oracle = TimestampOracle(self._catalog.max_timestamp())
        self._gate = WriteGate()
        self._refresh_lock = threading.Lock()
        self._version: int | None = None
        self._changes = (
            ChangeCounter.follow(data_dir, Slot.DATA)
            if config.shared_changes and config.catalog_url is None
            else None
        )
        # The shared counter as read before the last look that found the catalog current.
        self._synced_at: int | None = None
        self._followed: dict[int, _Followed] = {}
        self._names = CollectionNames((), (), ())
        self._sync_catalog()

    def close(self) -> None:
        with self._gate.exclusive():
            self._loads.close()
            self._logs.close()
            self._catalog.close()
            if self._changes is not None:
                self._changes.close()

    # -- following the catalog -------------------------------------------------------------
    def _follow_catalog(self) -> None:
        """``_sync_catalog``, skipped when nothing was announced since a look found the
        catalog current (a read does not use this: it checks its collection too)."""
        seen = self._changes_seen()
        if seen is None or seen != self._synced_at:
            self._sync_catalog()

    def _sync_catalog(self, *, force: bool = False) -> None:
        seen = self._changes_seen()
        if not force and self._catalog.change_counter() == self._version:
            self._synced_at = seen
            return
        with self._refresh_lock:
            version = self._catalog.change_counter()
            if not force and version == self._version:
                self._synced_at = seen
                return  # another thread took it meanwhile
            with self._gate.exclusive():
                # Noted first: a commit while we read shows as a change next time.
                self._version = version
                self._take_catalog()
            self._synced_at = seen

    def _changes_seen(self) -> int | None:
        """The shared change counter, read before the look it vouches for (None: none)."""
        return None if self._changes is None else self._changes.value()

    def _take_catalog(self) -> None:
        records = {r.collection_id: r for r in self._catalog.list_collections()}
        for cid in [cid for cid in self._followed if cid not in records]:
            self._loads.forget(self._followed.pop(cid).collection)
        for cid, record in records.items():
            current = self._followed.get(cid)
            fingerprint = self._fingerprint(record)
            if current is not None and current.fingerprint == fingerprint:
                continue
            if current is not None:
                self._loads.forget(current.collection)
            self._followed[cid] = followed = self._open(record, fingerprint)
            if followed.request is not None:
                try:
                    self._loads.load(followed.collection, followed.request, wait_s=0)
                except Exception:  # noqa: BLE001 - reads then answer "not loaded" with the reason
                    log.exception("worker could not load collection %s", record.name)
        self._names = CollectionNames.from_catalog(
            self._catalog, {cid: f.collection for cid, f in self._followed.items()}
        )

    def _fingerprint(self, record: CollectionRecord) -> _Fingerprint:
        cid = record.collection_id
        catalog = self._catalog
        return _Fingerprint(
            record,
            (
                tuple(catalog.list_partitions(cid)),
                tuple(catalog.list_indexes(cid)),
                tuple(catalog.list_segments(cid)),
                tuple(catalog.list_segment_indexes(cid)),
                catalog.get_load_config(cid),
            ),
        )

    def _open(self, record: CollectionRecord, fingerprint: _Fingerprint) -> _Followed:
        """The collection from the catalog and its whole log. A seal that trims the log while
        it is read changes the segments: then it is read again."""
        for _ in range(CATCH_UP_ATTEMPTS):
            segments = self._catalog.list_segments(record.collection_id)
            replay = LogReplay(record, self._catalog, self._store, None)
            tail = self._logs.tail(record.collection_id)
            try:
                for rec in tail.read_new():
                    replay.apply(rec)
            except LogGap:
                continue
            if self._catalog.list_segments(record.collection_id) != segments:
                continue
            return _Followed(fingerprint, replay, tail, self._load_request(record))
        raise UnexpectedError(f"collection {record.name} changed too often to be followed")

    def _load_request(self, record: CollectionRecord) -> LoadRequest | None:
        """What this process loads of a collection: the primary's load, as persisted (a
        cluster worker narrows it to the segments placed on it, distribution/worker_view.py)."""
        config = self._catalog.get_load_config(record.collection_id)
        return None if config is None else LoadRequest.from_record(config)

    # -- reads -------------------------------------------------------------------------------
    @contextmanager
    def _reading(
        self, db: str, name: str, partitions: Sequence[str] = (), *, check: Callable[[], object] | None = None
    ) -> Iterator[Collection]:
        """The collection, caught up with every write acknowledged before the call, and held
        (the catalog is not taken again) while the caller reads it.

        When nothing changed, one look at the backends: the name resolves in the catalog as
        last taken, the log's tail is read, and with it (``catch_up``) the catalog's change
        counter, after the call came in. The counter where it was when the names were taken
        means they were current: the read goes on. A counter that moved (a DDL, a seal, a
        load) means they may not be: the catalog is taken again and the read starts over, as
        it does when the name does not resolve in the catalog as it was. ``check``: run first
        in each attempt, outside the gate, on the catalog as last taken (a cluster worker's
        replica check); its refusal, too, is only believed once the catalog is current."""
        synced = False
        for _ in range(CATCH_UP_ATTEMPTS):
            version = self._version
            seen = self._changes_seen()
            current = gap = False
            with ExitStack() as held:
                try:
                    if check is not None:
                        check()
                    held.enter_context(self._gate.shared())
                    coll = self._names.resolve_checked(db, name, partitions, reading=True)
                    followed = self._followed[coll.collection_id]
                    if seen is not None and followed.checked == (seen, version):
                        current = True  # nothing announced since the last look: no syscall
                    else:
                        catalog_counter, credentials = followed.catch_up(self._catalog)
                        current = catalog_counter == version
                        if current and seen is not None:
                            followed.checked = (seen, version)
                        if credentials is not None and self.on_credential_counter is not None:
                            self.on_credential_counter(credentials)
                except LogGap:
                    gap = True
                except SheafError:
                    if synced:
                        raise  # the catalog was taken after the call came in: a true refusal
                if current:
                    if followed.request is not None:
                        self._loads.wait(coll, (), self.load_wait_s)
                    yield coll
                    return
            self._sync_catalog(force=gap)
            synced = True
        raise UnexpectedError(f"collection {name} changed too often to be read")

    def search(
        self, db: str, request: SearchRequest, *, check: Callable[[], object] | None = None
    ) -> SearchResult:
        with self._reading(db, request.collection, request.partition_names, check=check) as coll:
            if request.ids is not None:
                request = with_key_vectors(coll.schema, request, lambda get: self._loads.query(coll, get))
            return self._loads.search(coll, request)

    def hybrid_search(
        self, db: str, request: HybridSearchRequest, *, check: Callable[[], object] | None = None
    ) -> SearchResult:
        with self._reading(db, request.collection, request.partition_names, check=check) as coll:
            return self._loads.hybrid_search(coll, request)

    def query(
        self, db: str, request: QueryRequest, *, check: Callable[[], object] | None = None
    ) -> QueryResult:
        with self._reading(db, request.collection, request.partition_names, check=check) as coll:
            return self._loads.query(coll, request)

    # -- what the handlers ask besides the reads (answered from the followed catalog) ---------
    def collection_schema(self, db: str, name: str) -> CollectionSchema:
        """The schema as followed: the handlers type a reply with it right after the read,
        which has just caught the catalog up (a second check per call cost ~5% of a search)."""
        return self._names.resolve_checked(db, name).schema

    def output_zone(self, db: str, name: str, asked: str = "") -> tzinfo:
        properties = self._names.resolve_checked(db, name).record.properties
        try:
            return zone(asked or properties.get(TIMEZONE_PROPERTY))
        except ValueError as e:
            raise invalid(str(e)) from None

    def memory_used_bytes(self) -> int:
        """The bytes this process's ledger holds (reported to the primary, which charges them
        against the server's budget), the catalog followed first: loads and releases made
        since the last read are taken here too, not only at this worker's next read."""
        self._follow_catalog()
        return self._accountant.used_bytes

    def allocate_timestamp(self) -> int:
        """A reply's session timestamp (this process's clock; writes are stamped by the primary)."""
        return self._oracle.next()

    def load_state(self, db: str, name: str) -> LoadState:
        """This worker's own load of the collection (tests see it follow the primary)."""
        self._follow_catalog()
        return self._loads.state(self._names.resolve_checked(db, name))
