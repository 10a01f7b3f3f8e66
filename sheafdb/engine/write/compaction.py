"""Compaction: merge a partition's sealed segments into larger ones, dropping deleted rows.

Which segments merge (``plan_merges``; every group is one partition's, oldest segment first,
never more than ``target_bytes`` together):
- tiny: ``min_segments`` segments under half of ``seal_bytes`` (flushes of a few rows) merge
  at once -- cheap, and it keeps the segment count down while writes go on;
- large: segments under half the target are gathered, oldest first, until together they reach
  half the target, and only then merged. The result (>= half the target) is never a large
  candidate again, so a row is rewritten by at most one large merge: the write amplification
  stays bounded however long writes go on (merging each new seal into a growing segment would
  rewrite the old rows again and again);
- packed: once a partition is idle (no seal nor write for a while, auto_compaction.py), its
  segments under half the target are packed next-fit into groups of up to the target: the tail
  the large rule leaves behind is merged when nobody is writing (a segment past half the target
  is done: rewriting it for a small tail would double its cost). A manual Compact packs every
  segment under the target: the user asked for it.

A merge, step by step, holding the collection's ``seal_lock`` only for the swap (a big merge
may take minutes; seals must go on meanwhile):
1. read the group, drop the rows the collection's deletes hide, write the merged segment;
2. build its indexes on the index builder's worker (low priority), files beside the segment's;
3. under ``seal_lock``: if the collection was dropped or any old segment is gone (truncate,
   partition drop), discard everything; else swap in the catalog (``replace_segments``),
   register the index files whose index still exists, then swap the runtime segments so
   readers never meet the merged segment without its indexes. An index created during the
   build is built after the swap, as for any new segment; one dropped has its file discarded.
Deletes that arrive during 1-3 stay in the collection's delete set, which hides rows wherever
they are, so they hide the merged copies too (an upsert is a delete plus a newer row).
Readers holding an older snapshot keep working: the old segments' files are deleted only when
the last object naming them is gone (``delete_files_when_unused``). The deletes files the old
segments carried are merged into the new segment's, with the largest ``wal_lsn`` of the old
ones, so recovery's thresholds (recovery.py) hold unchanged. Deletes segments (``DeleteFile``)
are merged the same way: one file instead of many, same deletes, largest lsn.

A crash before the catalog swap leaves an orphan directory (merged files and index files,
removed at the next start); after the swap, the old directories (same).

Locks: ``_one_at_a_time`` serializes compactions (the background thread and a manual Compact
must not merge the same segments); it is taken before any collection's ``seal_lock``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Container
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass

import pyarrow as pa

from sheafdb.engine.collection import Collection
from sheafdb.engine.read.expiry import expiry_of
from sheafdb.engine.read.visibility import latest_deletes, visible_rows
from sheafdb.engine.snapshot import DeleteFile, SealedSegment, SegmentColumns, SegmentIndexFile
from sheafdb.engine.write import crash_points
from sheafdb.engine.write.added_fields import backfilled_table
from sheafdb.engine.write.index_builds import IndexBuilder
from sheafdb.engine.write.sealing import (
    DELETES_FILE,
    delete_files_when_unused,
    read_delete_records,
    segment_directory,
    write_delete_records,
    write_deletes_segment,
)
from sheafdb.errors import SheafError
from sheafdb.schema import CollectionSchema
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.records import IndexRecord, SegmentIndexRecord, SegmentRecord
from sheafdb.storage.segment_files import read_column, write_segment

log = logging.getLogger(__name__)

# A segment smaller than this share of seal_bytes is tiny: worth merging at once.
SMALL_SHARE = 0.5


@dataclass(frozen=True)
class CompactionPolicy:
    seal_bytes: int
    # Merged segments grow up to this size (Milvus: dataCoord.segment.maxSize).
    target_bytes: int
    # This many tiny segments (or deletes segments) are worth a merge.
    min_segments: int


def plan_merges(
    coll: Collection, policy: CompactionPolicy, idle: Container[int], *, manual: bool = False
) -> list[tuple[SealedSegment, ...]]:
    """The groups to merge now; ``idle`` holds the ids of the partitions nobody writes to."""
    by_partition: dict[int, list[SealedSegment]] = {}
    for seg in sorted(coll.snapshot().sealed, key=lambda s: s.segment_id):
        by_partition.setdefault(seg.partition_id, []).append(seg)
    target = policy.target_bytes
    groups: list[tuple[SealedSegment, ...]] = []
    for partition_id, segments in by_partition.items():
        if manual:
            groups.extend(_pack(segments, target, below=target))
        elif partition_id in idle:
            groups.extend(_pack(segments, target, below=target // 2))
        else:
            groups.extend(_groups_while_writing(segments, policy))
    return groups


def _pack(segments: list[SealedSegment], target_bytes: int, *, below: int) -> list[tuple[SealedSegment, ...]]:
    """Next-fit packing of the segments under ``below`` into groups of up to the target."""
    groups: list[tuple[SealedSegment, ...]] = []
    current: list[SealedSegment] = []
    size = 0
    for seg in segments:
        if seg.nbytes >= below:
            continue
        if current and size + seg.nbytes > target_bytes:
            groups.append(tuple(current))
            current, size = [], 0
        current.append(seg)
        size += seg.nbytes
    groups.append(tuple(current))
    return [g for g in groups if len(g) >= 2]


def _groups_while_writing(
    segments: list[SealedSegment], policy: CompactionPolicy
) -> list[tuple[SealedSegment, ...]]:
    tiny = [s for s in segments if s.nbytes < policy.seal_bytes * SMALL_SHARE]
    target = policy.target_bytes
    groups = _pack(tiny, target, below=target) if len(tiny) >= policy.min_segments else []
    merged = {s.segment_id for g in groups for s in g}
    half_target = policy.target_bytes // 2
    current: list[SealedSegment] = []
    size = 0
    for seg in segments:
        if seg.segment_id in merged or seg.nbytes >= half_target:
            continue
        current.append(seg)
        size += seg.nbytes
        if size >= half_target:  # below the target: each part is under half of it
            groups.append(tuple(current))
            current, size = [], 0
    return groups


def worth_compacting(coll: Collection, policy: CompactionPolicy, idle: Container[int]) -> bool:
    """The background trigger: a group to merge, or ``min_segments`` deletes segments (each
    flush of deletes adds one)."""
    return len(coll.delete_files) >= policy.min_segments or bool(plan_merges(coll, policy, idle))


class Compactor:
    def __init__(self, store: ObjectStore, catalog: Catalog, builder: IndexBuilder) -> None:
        self._store = store
        self._catalog = catalog
        self._builder = builder
        self._one_at_a_time = threading.Lock()
        self._stopping = threading.Event()

    def stop(self) -> None:
        """No merge starts from now on; one in progress is abandoned at its next step (the
        engine is closing: a merge of a big group must not hold the shutdown)."""
        self._stopping.set()

    def compact(
        self, coll: Collection, policy: CompactionPolicy, idle: Container[int], *, manual: bool = False
    ) -> int:
        """Merge what ``plan_merges`` picks, then the deletes segments; returns segments replaced."""
        replaced = 0
        with self._one_at_a_time:
            for group in plan_merges(coll, policy, idle, manual=manual):
                if coll.dropped or self._stopping.is_set():
                    return replaced
                replaced += self._merge(coll, group)
            with coll.seal_lock:
                delete_files = coll.delete_files
                if not coll.dropped and len(delete_files) >= 2:
                    self._merge_delete_files(coll, delete_files)
                    replaced += len(delete_files)
        return replaced

    def _merge_delete_files(self, coll: Collection, old: tuple[DeleteFile, ...]) -> None:
        records = {r.segment_id: r for r in self._catalog.list_segments(coll.collection_id)}
        deletes = pa.concat_tables([read_delete_records(self._store, d.path) for d in old]).combine_chunks()
        new = write_deletes_segment(
            self._store,
            self._catalog,
            coll,
            deletes,
            wal_lsn=max(records[d.segment_id].wal_lsn for d in old),
            max_ts=max(records[d.segment_id].max_ts for d in old),
            replaces=tuple(d.segment_id for d in old),
        )
        coll.replace_delete_files(old, new)
        for d in old:
            # Nothing reads a deletes file after recovery: the tables live in memory.
            self._store.delete_prefix(d.directory)

    def _merge(self, coll: Collection, group: tuple[SealedSegment, ...]) -> int:
        """Merge one group; returns how many segments it replaced (0: abandoned)."""
        staged = self._write_merged(coll, group)
        if self._stopping.is_set():
            self._store.delete_prefix(staged.directory)
            return 0
        try:
            built = self._build_indexes(coll, staged)
            crash_points.crash_point(crash_points.COMPACT_AFTER_INDEX_FILES)
            swapped = self._swap(coll, group, staged, built)
        except BaseException:
            self._store.delete_prefix(staged.directory)
            raise
        if swapped is None:
            self._store.delete_prefix(staged.directory)
            return 0
        crash_points.crash_point(crash_points.COMPACT_AFTER_SWAP)
        for seg in group:
            delete_files_when_unused(self._store, seg)
        # Indexes created during the build (and failed builds) are built as for a new seal.
        self._builder.submit(coll, (swapped,), coll.indexes)
        return len(group)

    def _write_merged(self, coll: Collection, group: tuple[SealedSegment, ...]) -> SealedSegment:
        """Step 1: the merged segment's files (not in the catalog yet)."""
        partition_id = group[0].partition_id
        # Only the deletes reaching this partition drop its rows (partition-scoped deletes).
        latest = latest_deletes(coll.snapshot().deletes, partition_id)
        schema = coll.schema
        layout = schema.arrow_schema()
        tables = [self._read_segment(seg, schema, layout) for seg in group]
        merged = visible_rows(pa.concat_tables(tables).combine_chunks(), schema.primary_field.name, latest)
        expiry = expiry_of(coll.record.properties)
        expired = expiry.expired(merged) if expiry is not None else None
        if expired is not None:
            merged = merged.filter(pa.array(~expired))  # expired rows are reclaimed here
        del tables
        segment_id = self._catalog.allocate_id()
        directory = segment_directory(coll.collection_id, segment_id)
        columns = write_segment(self._store, directory, merged)
        try:
            deletes_path = self._merge_deletes(group, f"{directory}/{DELETES_FILE}")
        except BaseException:
            self._store.delete_prefix(directory)
            raise
        crash_points.crash_point(crash_points.COMPACT_AFTER_WRITE)
        return SealedSegment(
            segment_id=segment_id,
            partition_id=partition_id,
            num_rows=merged.num_rows,
            columns=SegmentColumns(columns),
            directory=directory,
            deletes_path=deletes_path,
        )

    def _build_indexes(
        self, coll: Collection, staged: SealedSegment
    ) -> list[tuple[IndexRecord, SegmentIndexFile]]:
        """Step 2: every index of the collection, built on the builder's worker."""
        pending: list[tuple[IndexRecord, Future[SegmentIndexFile | None]]] = [
            (index, self._builder.build_detached(coll, staged, index)) for index in coll.indexes
        ]
        built = []
        for index, future in pending:
            try:
                index_file = future.result()
            except CancelledError:
                raise  # the engine is closing: abandon the merge (_merge deletes its files)
            except Exception:  # noqa: BLE001 - the build after the swap retries and reports it
                log.exception("index build for merged segment %s failed", staged.segment_id)
                continue
            if index_file is not None:
                built.append((index, index_file))
        return built

    def _swap(
        self,
        coll: Collection,
        group: tuple[SealedSegment, ...],
        staged: SealedSegment,
        built: list[tuple[IndexRecord, SegmentIndexFile]],
    ) -> SealedSegment | None:
        """Step 3: the catalog, then the runtime; None if the group is no longer there."""
        with coll.seal_lock:
            live = {s.segment_id for s in coll.snapshot().sealed}
            if coll.dropped or any(s.segment_id not in live for s in group):
                return None  # truncated, partition dropped or collection dropped meanwhile
            records = {r.segment_id: r for r in self._catalog.list_segments(coll.collection_id)}
            self._catalog.replace_segments(
                [s.segment_id for s in group],
                SegmentRecord(
                    segment_id=staged.segment_id,
                    collection_id=coll.collection_id,
                    partition_id=staged.partition_id,
                    num_rows=staged.num_rows,
                    directory=staged.directory,
                    columns=staged.columns,
                    wal_lsn=max(records[s.segment_id].wal_lsn for s in group),
                    max_ts=max(records[s.segment_id].max_ts for s in group),
                    deletes_path=staged.deletes_path,
                ),
            )
            swapped = staged.with_index_files(self._register_indexes(coll, staged, built))
            coll.replace_sealed(group, (swapped,), "compacted")
        return swapped

    def _register_indexes(
        self, coll: Collection, staged: SealedSegment, built: list[tuple[IndexRecord, SegmentIndexFile]]
    ) -> list[SegmentIndexFile]:
        """Catalog records for the built files whose index still exists; the others go."""
        current = coll.indexes
        registered: list[SegmentIndexFile] = []
        for index, index_file in built:
            if index not in current:  # dropped (or replaced) during the build
                self._store.delete(index_file.path)
                continue
            try:
                self._catalog.add_segment_index(
                    SegmentIndexRecord(
                        staged.segment_id,
                        index.index_id,
                        index.field_name,
                        index_file.path,
                        index_file.nbytes,
                    )
                )
            except SheafError:  # dropped between the check and now
                self._store.delete(index_file.path)
                continue
            registered.append(index_file)
        return registered

    def _read_segment(self, seg: SealedSegment, schema: CollectionSchema, layout: pa.Schema) -> pa.Table:
        """All columns of a segment in the current layout (a field added later holds its
        default or null)."""
        present = {
            f.name: read_column(self._store, seg.columns[f.name].path, mmap=False)
            for f in layout
            if f.name in seg.columns
        }
        return backfilled_table(schema, layout, pa.table(present))

    def _merge_deletes(self, group: tuple[SealedSegment, ...], path: str) -> str | None:
        parts = [read_delete_records(self._store, s.deletes_path) for s in group if s.deletes_path]
        if not parts:
            return None
        deletes = pa.concat_tables(parts).combine_chunks()
        write_delete_records(self._store, path, deletes)
        return path
