"""Segments, compaction jobs, flush-all and the memory figures, behind the facade
(``Engine.maintenance``): what Milvus's data and query coordinators answer about a collection's
segments, told truthfully for one node.

- persistent segments: the sealed segments on disk (state Flushed, level L1, sorted by key no);
- loaded segments: the sealed segments the load holds in memory, with the bytes the memory
  accountant counts for each and the vector index they were loaded with;
- flush-all: every collection's growing rows sealed; its state is "flushed" once no growing
  row is older than the flush timestamp. A row stamped before a flush-all but applied after
  its seal (a write in flight then; in a cluster, a log owner's timestamp from a block it
  reserved a moment earlier) is sealed when the state of that flush-all is asked, so the
  state gets there without another seal.

Lock: ``_lock`` guards the last flush-all timestamps issued (``_flush_alls``); the rest is
its collaborators' (each thread-safe).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pyarrow.compute as pc

from sheafdb.engine.collection import Collection
from sheafdb.engine.load.memory import MemoryAccountant
from sheafdb.engine.models import LoadState
from sheafdb.engine.replicas import dml_channel
from sheafdb.engine.resource_groups import NODE_ID
from sheafdb.engine.write.compaction_jobs import CompactionJob, CompactionJobs
from sheafdb.engine.write.scalar_index_builds import builds_files, has_file


class SegmentState:
    """``common.SegmentState`` numbers used here."""

    GROWING = 2
    SEALED = 3
    FLUSHED = 4


# The flush-all timestamps remembered, whose state check may seal (older ones only look).
FLUSH_ALLS_KEPT = 64

SEGMENT_LEVEL_L1 = 2  # common.SegmentLevel.L1: a sealed segment of one partition


@dataclass(frozen=True)
class SegmentInfo:
    segment_id: int
    collection_id: int
    partition_id: int
    num_rows: int
    state: int
    level: int
    channel: str


@dataclass(frozen=True)
class LoadedSegmentInfo:
    segment_id: int
    collection_id: int
    partition_id: int
    num_rows: int
    mem_size: int
    index_name: str
    index_id: int
    node_ids: tuple[int, ...]
    level: int


@dataclass(frozen=True)
class CollectionMemory:
    db_name: str
    name: str
    collection_id: int
    resident_bytes: int
    fields: Mapping[str, int]
    indexes: Mapping[str, int]
    mapped_bytes: int = 0  # memory-mapped field files: apart from the resident bytes


@dataclass(frozen=True)
class MemoryFigures:
    budget_bytes: int
    used_bytes: int
    reserved_bytes: int
    free_bytes: int
    collections: tuple[CollectionMemory, ...]
    mapped_bytes: int = 0
    # ``serve --workers N``: used bytes by process ("primary", "query worker I"); {} otherwise.
    processes: Mapping[str, int] = field(default_factory=dict)


class Maintenance:
    def __init__(
        self,
        *,
        accountant: MemoryAccountant,
        resolve: Callable[[str, str], Collection],
        collections: Callable[[], list[Collection]],
        load_state: Callable[[Collection, tuple[str, ...]], LoadState],
        seal: Callable[[Collection], object],
        next_timestamp: Callable[[], int],
        compactions: CompactionJobs,
    ) -> None:
        self._accountant = accountant
        self._resolve = resolve
        self._collections = collections
        self._load_state = load_state
        self._seal = seal
        self._next_timestamp = next_timestamp
        self._compactions = compactions
        self._lock = threading.Lock()
        self._flush_alls: deque[int] = deque(maxlen=FLUSH_ALLS_KEPT)

    # -- compaction --------------------------------------------------------------------------
    def start_compaction(self, db: str, collection: str) -> CompactionJob:
        return self._compactions.start(self._resolve(db, collection))

    def compaction(self, job_id: int) -> CompactionJob:
        return self._compactions.get(job_id)

    def compactions_of(self, db: str, collection: str) -> list[CompactionJob]:
        return self._compactions.of_collection(self._resolve(db, collection).collection_id)

    # -- segments ----------------------------------------------------------------------------
    def persistent_segments(self, db: str, collection: str) -> list[SegmentInfo]:
        coll = self._resolve(db, collection)
        return [
            SegmentInfo(
                s.segment_id,
                coll.collection_id,
                s.partition_id,
                s.num_rows,
                SegmentState.FLUSHED,
                SEGMENT_LEVEL_L1,
                dml_channel(coll.collection_id, 0),
            )
            for s in coll.snapshot().sealed
        ]

    def loaded_segments(self, db: str, collection: str) -> list[LoadedSegmentInfo]:
        coll = self._resolve(db, collection)
        if self._load_state(coll, ()) is LoadState.NOT_LOAD:
            return []
        resident = self._accountant.segment_bytes(coll.collection_id)
        index_ids = {i.index_name: i.index_id for i in coll.indexes}
        out = []
        for seg in coll.snapshot().sealed:
            if seg.segment_id not in resident:
                continue
            index = next(iter(seg.index_files.values()), None)
            index_name = index.index_name if index is not None else ""
            out.append(
                LoadedSegmentInfo(
                    seg.segment_id,
                    coll.collection_id,
                    seg.partition_id,
                    seg.num_rows,
                    resident[seg.segment_id],
                    index_name,
                    index_ids.get(index_name, 0),
                    (NODE_ID,),
                    SEGMENT_LEVEL_L1,
                )
            )
        return out

    def indexed_segments(self, db: str, collection: str, index_name: str) -> list[int]:
        """Sealed segments whose build of ``index_name`` is done (every one for an index that
        builds no files)."""
        coll = self._resolve(db, collection)
        matching = [i for i in coll.indexes if i.index_name == index_name]
        if not matching:
            return []
        field = coll.schema.field(matching[0].field_name)
        if not builds_files(field, matching[0]):
            return [s.segment_id for s in coll.snapshot().sealed]
        assert field is not None
        return [s.segment_id for s in coll.snapshot().sealed if has_file(s, field, matching[0])]

    # -- flush-all ---------------------------------------------------------------------------
    def flush_all(self, db: str | None) -> int:
        """Seal every collection's growing rows (of ``db``, or of every database); returns the
        flush-all timestamp."""
        for coll in self._collections():
            if db is None or coll.db_name == db:
                self._seal(coll)
        flush_ts = self._next_timestamp()
        with self._lock:
            self._flush_alls.append(flush_ts)
        return flush_ts

    def flushed(self, flush_ts: int, db: str | None) -> bool:
        """True once no growing row of ``db`` (or any database) was written at or before
        ``flush_ts``. For a flush-all's own timestamp, a collection still holding one is
        sealed now (the module docstring); any other timestamp is only looked at."""
        with self._lock:
            ours = flush_ts in self._flush_alls
        for coll in self._collections():
            if db is not None and coll.db_name != db:
                continue
            if _holds_rows_to(coll, flush_ts):
                if not ours:
                    return False
                self._seal(coll)
                if _holds_rows_to(coll, flush_ts):
                    return False
        return True

    # -- memory ------------------------------------------------------------------------------
    def memory(self) -> MemoryFigures:
        """The accountant's figures, with collections named (GetMetrics, the REST extension)."""
        report = self._accountant.report()
        by_id = {c.collection_id: c for c in self._collections()}
        entries = report["collections"]
        assert isinstance(entries, Mapping)
        collections = []
        for cid, entry in entries.items():
            coll = by_id.get(cid)
            if coll is None:
                continue
            collections.append(
                CollectionMemory(
                    coll.db_name,
                    coll.name,
                    cid,
                    entry["bytes"],
                    dict(entry["fields"]),
                    dict(entry["indexes"]),
                    entry["mapped_bytes"],
                )
            )
        budget = int(report["budget_bytes"])  # type: ignore[call-overload]
        used = int(report["used_bytes"])  # type: ignore[call-overload]
        reserved = int(report["reserved_bytes"])  # type: ignore[call-overload]
        mapped = int(report["mapped_bytes"])  # type: ignore[call-overload]
        return MemoryFigures(
            budget,
            used,
            reserved,
            max(budget - used - reserved, 0),
            tuple(collections),
            mapped,
            self._accountant.process_bytes(),
        )


def _holds_rows_to(coll: Collection, timestamp: int) -> bool:
    """Whether ``coll`` has a growing row written at or before ``timestamp``."""
    for table in coll.snapshot().growing.values():
        if table.num_rows and pc.min(table.column("__ts")).as_py() <= timestamp:
            return True
    return False
