"""Compaction: merge a partition's small sealed segments into one, dropping deleted rows.

The merged segment is written first, then the catalog swaps it in for the old ones in one
transaction (``replace_segments``), then the runtime swaps them under the collection lock and
listeners hear "compacted". Readers holding an older snapshot keep working: the old segments'
files are deleted only when the last object naming them is gone (``delete_files_when_unused``).
Deletes stay in the collection's delete set (they may hide rows elsewhere); the deletes files
the old segments carried are merged into the new segment's, with the largest ``wal_lsn`` of
the old ones, so recovery's thresholds (recovery.py) hold unchanged. Deletes segments
(``DeleteFile``) are merged the same way: one file instead of many, same deletes, largest lsn.

A crash after the merged files are written but before the catalog swap leaves an orphan
directory (removed at the next start); after the swap, the old directories (same).
"""

from __future__ import annotations

import pyarrow as pa

from sheafdb.engine import crash_points
from sheafdb.engine.collection import Collection
from sheafdb.engine.index_builds import IndexBuilder
from sheafdb.engine.sealing import (
    DELETES_FILE,
    delete_files_when_unused,
    read_delete_records,
    segment_directory,
    segment_from_record,
    write_delete_records,
    write_deletes_segment,
)
from sheafdb.engine.snapshot import DeleteFile, SealedSegment
from sheafdb.engine.visibility import latest_deletes, visible_rows
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.records import SegmentRecord
from sheafdb.storage.segment_files import read_column, write_segment

# A segment smaller than this share of seal_bytes is worth merging.
SMALL_SHARE = 0.5


def compaction_candidates(coll: Collection, seal_bytes: int) -> dict[int, list[SealedSegment]]:
    """Partition id -> its small sealed segments (only partitions with two or more)."""
    by_partition: dict[int, list[SealedSegment]] = {}
    for seg in coll.snapshot().sealed:
        if seg.nbytes < seal_bytes * SMALL_SHARE:
            by_partition.setdefault(seg.partition_id, []).append(seg)
    return {pid: group for pid, group in by_partition.items() if len(group) >= 2}


def worth_compacting(coll: Collection, seal_bytes: int, min_segments: int) -> bool:
    """The background trigger: a partition with ``min_segments`` small segments, or as many
    deletes segments (each flush of deletes adds one)."""
    if len(coll.delete_files) >= min_segments:
        return True
    return any(len(g) >= min_segments for g in compaction_candidates(coll, seal_bytes).values())


class Compactor:
    """Stateless apart from its collaborators; one compaction per collection at a time
    (it holds the collection's ``seal_lock``)."""

    def __init__(self, store: ObjectStore, catalog: Catalog, builder: IndexBuilder) -> None:
        self._store = store
        self._catalog = catalog
        self._builder = builder

    def compact(self, coll: Collection, seal_bytes: int) -> int:
        """Compact every partition with at least two small segments; returns segments replaced."""
        replaced = 0
        with coll.seal_lock:
            if coll.dropped:
                return 0
            deletes = coll.snapshot().deletes
            for partition_id, group in compaction_candidates(coll, seal_bytes).items():
                # Only the deletes reaching this partition drop its rows (partition-scoped deletes).
                self._merge(coll, partition_id, tuple(group), latest_deletes(deletes, partition_id))
                replaced += len(group)
            delete_files = coll.delete_files
            if len(delete_files) >= 2:
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

    def _merge(
        self, coll: Collection, partition_id: int, group: tuple[SealedSegment, ...], latest: pa.Table
    ) -> None:
        schema = coll.schema
        layout = schema.arrow_schema()
        tables = [self._read_segment(seg, layout) for seg in group]
        merged = visible_rows(pa.concat_tables(tables).combine_chunks(), schema.primary_field.name, latest)
        segment_id = self._catalog.allocate_id()
        directory = segment_directory(coll.collection_id, segment_id)
        columns = write_segment(self._store, directory, merged)
        try:
            deletes_path = self._merge_deletes(group, f"{directory}/{DELETES_FILE}")
            records = {r.segment_id: r for r in self._catalog.list_segments(coll.collection_id, partition_id)}
            record = SegmentRecord(
                segment_id=segment_id,
                collection_id=coll.collection_id,
                partition_id=partition_id,
                num_rows=merged.num_rows,
                directory=directory,
                columns=columns,
                wal_lsn=max(records[s.segment_id].wal_lsn for s in group),
                max_ts=max(records[s.segment_id].max_ts for s in group),
                deletes_path=deletes_path,
            )
            crash_points.crash_point(crash_points.COMPACT_AFTER_WRITE)
            self._catalog.replace_segments([s.segment_id for s in group], record)
        except BaseException:
            # e.g. the collection was dropped meanwhile: the merged files are nobody's.
            self._store.delete_prefix(directory)
            raise
        crash_points.crash_point(crash_points.COMPACT_AFTER_SWAP)
        new = segment_from_record(record, {})
        coll.replace_sealed(group, (new,), "compacted")
        for seg in group:
            delete_files_when_unused(self._store, seg)
        self._builder.submit(coll, (new,), coll.indexes)

    def _read_segment(self, seg: SealedSegment, layout: pa.Schema) -> pa.Table:
        """All columns of a segment in the current layout (a field added later reads as nulls)."""
        arrays = []
        for f in layout:
            if f.name in seg.columns:
                arrays.append(read_column(self._store, seg.columns[f.name].path, mmap=False))
            else:
                arrays.append(pa.nulls(seg.num_rows, f.type))
        return pa.Table.from_arrays(arrays, schema=layout)

    def _merge_deletes(self, group: tuple[SealedSegment, ...], path: str) -> str | None:
        parts = [read_delete_records(self._store, s.deletes_path) for s in group if s.deletes_path]
        if not parts:
            return None
        deletes = pa.concat_tables(parts).combine_chunks()
        write_delete_records(self._store, path, deletes)
        return path
