"""The runtime of one collection: its metadata, its sealed segments, its growing rows, its log.

Locks (acquire in this order; never hold one across a callback into the engine):
- ``seal_lock``: one seal / compaction swap / truncate at a time, so two of them never capture
  or replace the same data (held across their file I/O; writes do not take it).
- ``_gate`` (a shared/exclusive gate): every write holds it shared from its log append to its
  apply; a seal takes it exclusive for the instant it captures the growing data. So a capture
  always sees every record the log holds up to the captured lsn, never a record logged but not
  applied yet (which trimming the log would then lose).
- ``_lock``: guards all in-memory state (metadata, sealed list, growing data, deletes). Held
  only for in-memory work, never across I/O, so ``snapshot()`` is always quick.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.engine.read.read_plans import ReadPlans
from sheafdb.engine.read.visibility import delete_records, delete_records_schema, scoped_deletes
from sheafdb.engine.snapshot import (
    DataEvent,
    DataSnapshot,
    DeleteFile,
    Handoff,
    SealedSegment,
    SegmentIndexFile,
)
from sheafdb.engine.write import crash_points
from sheafdb.engine.write.growing import GrowingCapture, GrowingData
from sheafdb.errors import UnexpectedError
from sheafdb.schema import CollectionSchema, FieldSchema
from sheafdb.storage.log import CollectionLog
from sheafdb.storage.records import CollectionRecord, IndexRecord

Listener = Callable[[DataEvent], None]


class WriteGate:
    """Many writers at once, or one sealer alone (writers wait while a seal captures)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._writers = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._writers += 1
        try:
            yield
        finally:
            with self._cond:
                self._writers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._writers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


# The log record of a truncate (no rows): everything logged or sealed before it is gone.
TRUNCATE_KIND = "truncate"

# An upsert on an auto_id collection stores new ids in the rows and the keys it replaces here
# (Milvus: the given keys are deleted, the rows get generated ones). Absent: the rows' own keys.
REPLACED_PK_COLUMN = "__replaced_pk"


# A partition-key batch spans partitions but is logged as ONE record, so after a crash it is
# applied whole or not at all: its rows carry their partition id in this column, and the
# record's partition id is ROUTED_PARTITION.
PARTITION_COLUMN = "__partition_id"
ROUTED_PARTITION = -1


def routed_parts(partition_id: int, rows: pa.Table) -> list[tuple[int, pa.Table]]:
    """A record's rows per partition (one part unless the record is ROUTED_PARTITION)."""
    if partition_id != ROUTED_PARTITION:
        return [(partition_id, rows)]
    ids = rows.column(PARTITION_COLUMN)
    plain = rows.drop_columns([PARTITION_COLUMN])
    return [(pid, plain.filter(pc.equal(ids, pid))) for pid in sorted(pc.unique(ids).to_pylist())]


def split_upsert(schema: CollectionSchema, batch: pa.Table) -> tuple[pa.ChunkedArray, pa.Table]:
    """An upsert record's two halves: the primary keys it deletes, and the rows it inserts."""
    if REPLACED_PK_COLUMN in batch.column_names:
        return batch.column(REPLACED_PK_COLUMN), batch.drop_columns([REPLACED_PK_COLUMN])
    return batch.column(schema.primary_field.name), batch


def delete_schema(schema: CollectionSchema) -> pa.Schema:
    return delete_records_schema(schema.primary_field.arrow_type())


# What a truncate took away: the sealed segments, the deletes files, its record's lsn.
Cleared = tuple[tuple[SealedSegment, ...], tuple[DeleteFile, ...], int]


class Collection:
    """Thread-safe runtime of one collection (see the module docstring for its locks)."""

    def __init__(
        self,
        record: CollectionRecord,
        partitions: Mapping[str, int],
        indexes: tuple[IndexRecord, ...],
        wal: CollectionLog | None,
        sealed: tuple[SealedSegment, ...] = (),
        sealed_deletes: tuple[pa.Table, ...] = (),
        delete_files: tuple[DeleteFile, ...] = (),
    ) -> None:
        self.collection_id = record.collection_id
        self.db_name = record.db_name
        self.name = record.name
        self.record = record
        # Milvus's update_timestamp: creation, then each schema / property change made since
        # this process opened the collection (the catalog keeps no such stamp: a restart
        # reports the creation again).
        self.updated_ts = record.created_ts
        self._wal = wal
        self.seal_lock = threading.Lock()
        self._gate = WriteGate()
        self._lock = threading.RLock()
        self._partitions = dict(partitions)
        self._indexes = tuple(indexes)
        self._sealed = tuple(sealed)
        self._sealed_deletes = list(sealed_deletes)
        # The catalog's deletes segments (their tables are in _sealed_deletes).
        self._delete_files = tuple(delete_files)
        self._growing = GrowingData(
            record.schema.arrow_schema(), delete_schema(record.schema), schema=record.schema
        )
        self._deletes_cache: pa.Table | None = None
        self._read_plans = ReadPlans(record.schema)
        self._listeners: list[Listener] = []
        # Sealed segment id -> its rows until the loader installs it (snapshot.Handoff). The
        # load manager turns them on while anything is loaded (``hand_off``) and ends each one
        # at install.
        self._handoff: dict[int, Handoff] = {}
        self._handing_off = False
        self._max_ts = 0
        # Set (under seal_lock) when the collection is dropped: a seal or compaction that gets
        # the lock afterwards must not write files nobody will ever name.
        self.dropped = False

    @property
    def wal(self) -> CollectionLog:
        """The log writes go to (a query worker's copy has none: it follows the primary's)."""
        if self._wal is None:
            raise UnexpectedError(f"collection {self.name} is read-only in a query worker")
        return self._wal

    # -- metadata ---------------------------------------------------------------------------
    @property
    def schema(self) -> CollectionSchema:
        return self.record.schema

    @property
    def read_plans(self) -> ReadPlans:
        """What reads derive from the current schema and keep; a schema change starts anew."""
        plans = self._read_plans
        schema = self.record.schema
        if plans.schema is not schema:
            plans = self._read_plans = ReadPlans(schema)
        return plans

    @property
    def partitions(self) -> Mapping[str, int]:
        with self._lock:
            return dict(self._partitions)

    @property
    def indexes(self) -> tuple[IndexRecord, ...]:
        return self._indexes

    def set_record(self, record: CollectionRecord) -> None:
        """Name, properties or schema changed in the catalog."""
        with self._lock:
            self.record = record
            self.name = record.name
            self.db_name = record.db_name

    def set_indexes(self, indexes: tuple[IndexRecord, ...]) -> None:
        with self._lock:
            self._indexes = tuple(indexes)

    def add_partition(self, name: str, partition_id: int) -> None:
        with self._lock:
            self._partitions[name] = partition_id

    def add_field(self, record: CollectionRecord, new_field: FieldSchema) -> None:
        """A nullable field was added: growing rows get a column for it holding its default or
        null (sealed segments have no file for it; readers fill it, see added_fields)."""
        with self._gate.exclusive(), self._lock:
            self._growing.add_null_column(new_field, record.schema)
            self.record = record

    # -- writes -----------------------------------------------------------------------------
    def write(
        self, kind: str, partition_id: int, timestamp: int, batch: pa.Table, write_id: str | None = None
    ) -> int:
        """Log ``batch`` durably, then apply it; returns its lsn. ``kind`` as in WalRecord;
        ``partition_id`` may be ROUTED_PARTITION (rows then carry PARTITION_COLUMN);
        ``write_id``: a relayed call's id, logged with it (storage/log.py)."""
        with self._gate.shared():
            lsn = self.wal.append(kind, partition_id, timestamp, batch, write_id)
            crash_points.crash_point(crash_points.WRITE_AFTER_LOG)
            self.apply(kind, partition_id, lsn, timestamp, batch)
        return lsn

    def apply(self, kind: str, partition_id: int, lsn: int, timestamp: int, batch: pa.Table) -> None:
        """Apply a logged record to the growing data (also used by recovery)."""
        with self._lock:
            if kind == "upsert":
                # An upsert replaces its keys in every partition (its delete half is unscoped).
                pks, batch = split_upsert(self.schema, batch)
                deletes = delete_records(pks.cast(self._growing.delete_schema.field("pk").type), timestamp)
            elif kind == "delete":
                deletes = scoped_deletes(batch, timestamp).cast(self._growing.delete_schema)
            if kind in ("delete", "upsert"):
                self._growing.add_deletes(lsn, deletes, timestamp)
                self._deletes_cache = None
            if kind in ("insert", "upsert"):
                for part_id, rows in routed_parts(partition_id, batch):
                    self._growing.add_rows(part_id, lsn, rows, timestamp)
            self._max_ts = max(self._max_ts, timestamp)

    def applying(self) -> AbstractContextManager[None]:
        """Held while applying records another process appended (log_following.py): the
        gate shared, as a write holds it, so a seal's capture sees whole records."""
        return self._gate.shared()

    def growing_bytes(self) -> int:
        with self._lock:
            return self._growing.nbytes

    # -- seal / compaction swaps --------------------------------------------------------------
    def capture_growing(self) -> GrowingCapture:
        """Everything acknowledged so far; the caller holds ``seal_lock``."""
        with self._gate.exclusive(), self._lock:
            return self._growing.capture()

    def install_sealed(
        self,
        segments: tuple[SealedSegment, ...],
        capture: GrowingCapture,
        deletes_file: DeleteFile | None,
    ) -> None:
        """Swap captured growing data for the segments written from it, in one step."""
        with self._lock:
            self._sealed = (*self._sealed, *segments)
            for segment in segments if self._handing_off else ():
                self._handoff[segment.segment_id] = Handoff(rows=(capture.rows[segment.partition_id],))
            self._growing.remove_up_to(capture.lsn)
            if capture.deletes is not None:
                self._sealed_deletes.append(capture.deletes)
            if deletes_file is not None:
                self._delete_files = (*self._delete_files, deletes_file)
            self._deletes_cache = None
        if segments:
            self._notify(DataEvent("sealed", self.collection_id, added=segments))

    @property
    def delete_files(self) -> tuple[DeleteFile, ...]:
        with self._lock:
            return self._delete_files

    def replace_delete_files(self, old: tuple[DeleteFile, ...], new: DeleteFile) -> None:
        """Compaction merged deletes segments (same deletes, fewer files): bookkeeping only."""
        old_ids = {d.segment_id for d in old}
        with self._lock:
            self._delete_files = (*(d for d in self._delete_files if d.segment_id not in old_ids), new)

    def install_index(self, segment_id: int, index_file: SegmentIndexFile) -> bool:
        """Record a built index on a sealed segment; False if the segment is gone (compacted)."""
        with self._lock:
            for i, seg in enumerate(self._sealed):
                if seg.segment_id == segment_id:
                    updated = seg.with_index_files((index_file,))
                    self._sealed = (*self._sealed[:i], updated, *self._sealed[i + 1 :])
                    break
            else:
                return False
        self._notify(DataEvent("index_built", self.collection_id, added=(updated,), removed=(seg,)))
        return True

    def forget_index(self, field_name: str, index_name: str) -> None:
        """An index was dropped: sealed segments no longer list its files."""
        with self._lock:
            self._sealed = tuple(s.without_index(field_name, index_name) for s in self._sealed)

    def replace_sealed(
        self, old: tuple[SealedSegment, ...], new: tuple[SealedSegment, ...], kind: str
    ) -> None:
        """Compaction (or a partition drop): ``old`` segments leave, ``new`` ones arrive."""
        old_ids = {s.segment_id for s in old}
        with self._lock:
            self._sealed = (*(s for s in self._sealed if s.segment_id not in old_ids), *new)
            replaced = [self._handoff.pop(s.segment_id, Handoff(predecessors=(s,))) for s in old]
            if len(new) == 1 and self._handing_off:
                # The merged segment is served by what it replaced until it is installed.
                self._handoff[new[0].segment_id] = Handoff(
                    rows=tuple(t for h in replaced for t in h.rows),
                    predecessors=tuple(p for h in replaced for p in h.predecessors),
                )
        self._notify(DataEvent(kind, self.collection_id, added=new, removed=old))

    def sealed_state(self) -> tuple[tuple[SealedSegment, ...], pa.Table]:
        """The flushed data alone: sealed segments and the deletes sealed with them (what a
        snapshot captures; the caller holds ``seal_lock`` so no swap is half-way)."""
        with self._lock:
            parts = list(self._sealed_deletes)
            empty = self._growing.delete_schema.empty_table()
            return self._sealed, pa.concat_tables(parts).combine_chunks() if parts else empty

    def add_restored(
        self,
        segments: tuple[SealedSegment, ...],
        deletes: pa.Table | None,
        deletes_file: DeleteFile | None,
        max_ts: int,
    ) -> None:
        """A snapshot restore registered these segments (and deletes) in the catalog."""
        with self._lock:
            self._sealed = (*self._sealed, *segments)
            if deletes is not None:
                self._sealed_deletes.append(deletes)
            if deletes_file is not None:
                self._delete_files = (*self._delete_files, deletes_file)
            self._deletes_cache = None
            self._max_ts = max(self._max_ts, max_ts)
        if segments:
            self._notify(DataEvent("sealed", self.collection_id, added=segments))

    def hand_off(self, on: bool) -> None:
        """Whether seals and merges keep their rows served until installed (while loaded)."""
        with self._lock:
            self._handing_off = on
            if not on:
                self._handoff.clear()

    def end_handoff(self, segment_ids: Iterable[int]) -> None:
        """The loader installed these segments (or their partition is not loaded)."""
        with self._lock:
            for segment_id in segment_ids:
                self._handoff.pop(segment_id, None)

    def drop_partition(self, partition_id: int) -> tuple[SealedSegment, ...]:
        with self._lock:
            self._partitions = {n: p for n, p in self._partitions.items() if p != partition_id}
            gone = tuple(s for s in self._sealed if s.partition_id == partition_id)
            self._sealed = tuple(s for s in self._sealed if s.partition_id != partition_id)
            for segment in gone:
                self._handoff.pop(segment.segment_id, None)
            self._growing.drop_partition(partition_id)
        return gone

    def clear_data(self, timestamp: int) -> Cleared:
        """Truncate: log a "truncate" record (so a crash before the catalog forgets the
        segments still truncates: recovery.py), then drop every row and delete. Returns the
        segments and deletes files that left, and the record's lsn (trim up to it, no further)."""
        with self._gate.exclusive():
            lsn = self.wal.append(TRUNCATE_KIND, 0, timestamp, pa.table({}))
            gone, gone_deletes = self.forget_all()
            with self._lock:
                self._growing.note_lsn(lsn)
        return gone, gone_deletes, lsn

    def forget_all(self) -> tuple[tuple[SealedSegment, ...], tuple[DeleteFile, ...]]:
        """Every row and delete goes from memory (a truncate, or its replay at recovery)."""
        with self._lock:
            gone, gone_deletes = self._sealed, self._delete_files
            self._sealed, self._delete_files = (), ()
            self._handoff.clear()
            self._sealed_deletes.clear()
            self._growing.clear()
            self._deletes_cache = None
        return gone, gone_deletes

    def note_lsn(self, lsn: int) -> None:
        """Recovery: a log record was read (applied or skipped); a seal may trim up to it."""
        with self._lock:
            self._growing.note_lsn(lsn)

    def last_lsn(self) -> int:
        with self._lock:
            return self._growing.last_lsn

    # -- reads ------------------------------------------------------------------------------
    def snapshot(self) -> DataSnapshot:
        with self._lock:
            if self._deletes_cache is None:
                parts = [*self._sealed_deletes, *self._growing.deletes()]
                self._deletes_cache = (
                    pa.concat_tables(parts).combine_chunks()
                    if parts
                    else self._growing.delete_schema.empty_table()
                )
            return DataSnapshot(
                sealed=self._sealed,
                growing=dict(self._growing.tables()),
                deletes=self._deletes_cache,
                timestamp=self._max_ts,
                handoff=dict(self._handoff),
            )

    def note_timestamp(self, timestamp: int) -> None:
        """Recovery: the newest timestamp seen in sealed data."""
        with self._lock:
            self._max_ts = max(self._max_ts, timestamp)

    # -- listeners --------------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        with self._lock:
            self._listeners.append(fn)

    def _notify(self, event: DataEvent) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            fn(event)
