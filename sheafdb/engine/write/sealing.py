"""Sealing: growing rows become immutable segment files, registered in the catalog.

One seal covers the whole collection: every partition with growing rows gets one new segment,
all captured at the same log position (lsn), so the log can be trimmed up to it afterwards.
Captured deletes (even with no rows at all: a flush of deletes only) go to a row-less "deletes
segment" in the anchor partition (see ``DeleteFile``). The order makes a crash at any point safe:

1. capture the growing data (the collection's gate guarantees no half-applied write);
2. write and register the deletes segment (``wal_lsn`` = the capture's lsn);
3. per partition: write the segment files (a crash here leaves only an orphan directory, removed
   at the next start), then register the segment with ``wal_lsn``;
4. swap the segments in for the captured growing data (one step under the collection lock);
5. trim the log up to the lsn.

Recovery (recovery.py) replays a partition's rows only past the largest ``wal_lsn`` of that
partition's *row* segments, and deletes only past the largest ``wal_lsn`` of a segment holding
deletes, so a crash between any two steps neither loses nor doubles a row or a delete.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping

import pyarrow as pa
import pyarrow.ipc as ipc

from sheafdb.engine.collection import Collection
from sheafdb.engine.read.visibility import with_scope
from sheafdb.engine.snapshot import DeleteFile, SealedSegment, SegmentColumns, SegmentIndexFile
from sheafdb.engine.write import crash_points
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.records import DEFAULT_PARTITION, SegmentRecord
from sheafdb.storage.segment_files import read_deletes, write_segment

DELETES_FILE = "deletes.arrow"


def segment_directory(collection_id: int, segment_id: int) -> str:
    return f"collections/{collection_id}/segments/{segment_id}"


def anchor_partition(partitions: Mapping[str, int]) -> int:
    """The partition deletes segments live in: one that can never be dropped (``_default``,
    or with a partition key the first one; those cannot be dropped either)."""
    return partitions.get(DEFAULT_PARTITION, min(partitions.values()))


def is_deletes_segment(record: SegmentRecord) -> bool:
    return not record.columns and record.deletes_path is not None


def write_delete_records(store: ObjectStore, path: str, deletes: pa.Table) -> int:
    """Persist delete records with their partition scope ("pk", "__ts", "__scope") as one Arrow
    IPC file (storage's ``write_deletes`` keeps only the first two); returns its size."""
    table = with_scope(deletes)
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    data = sink.getvalue().to_pybytes()
    store.write_bytes(path, data)
    return len(data)


def read_delete_records(store: ObjectStore, path: str) -> pa.Table:
    """A deletes file in the scoped layout; files written before scopes existed hide everywhere."""
    return with_scope(read_deletes(store, path))


def delete_file_from_record(record: SegmentRecord, deletes: pa.Table) -> DeleteFile:
    assert record.deletes_path is not None
    return DeleteFile(record.segment_id, record.directory, record.deletes_path, deletes.num_rows)


def write_deletes_segment(
    store: ObjectStore,
    catalog: Catalog,
    coll: Collection,
    deletes: pa.Table,
    *,
    wal_lsn: int,
    max_ts: int,
    replaces: tuple[int, ...] = (),
) -> DeleteFile:
    """Persist ``deletes`` as a row-less segment and register it (in place of ``replaces``)."""
    segment_id = catalog.allocate_id()
    directory = segment_directory(coll.collection_id, segment_id)
    path = f"{directory}/{DELETES_FILE}"
    write_delete_records(store, path, deletes)
    record = SegmentRecord(
        segment_id=segment_id,
        collection_id=coll.collection_id,
        partition_id=anchor_partition(coll.partitions),
        num_rows=0,
        directory=directory,
        columns={},
        wal_lsn=wal_lsn,
        max_ts=max_ts,
        deletes_path=path,
    )
    if replaces:
        catalog.replace_segments(list(replaces), record)
    else:
        catalog.add_segment(record)
    return delete_file_from_record(record, deletes)


def segment_from_record(record: SegmentRecord, index_files: Iterable[SegmentIndexFile]) -> SealedSegment:
    return SealedSegment(
        segment_id=record.segment_id,
        partition_id=record.partition_id,
        num_rows=record.num_rows,
        columns=SegmentColumns(record.columns),
        directory=record.directory,
        deletes_path=record.deletes_path,
    ).with_index_files(index_files)


class Sealer:
    """Writes sealed segments; stateless apart from its collaborators, so thread-safe."""

    def __init__(
        self,
        store: ObjectStore,
        catalog: Catalog,
        on_sealed: Callable[[Collection, tuple[SealedSegment, ...]], None],
        before_capture: Callable[[Collection], object] | None = None,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._on_sealed = on_sealed
        # Cluster mode: catch the collection up with its log first (log_following.py).
        self._before_capture = before_capture

    def seal(self, coll: Collection) -> tuple[SealedSegment, ...]:
        """Seal every growing row and delete of ``coll``; returns the new row segments."""
        with coll.seal_lock:
            if coll.dropped:
                return ()
            if self._before_capture is not None:
                self._before_capture(coll)
            capture = coll.capture_growing()
            if not capture.rows and capture.deletes is None:
                return ()
            deletes_file = None
            if capture.deletes is not None:
                deletes_file = write_deletes_segment(
                    self._store,
                    self._catalog,
                    coll,
                    capture.deletes,
                    wal_lsn=capture.lsn,
                    max_ts=capture.max_ts,
                )
                crash_points.crash_point(crash_points.SEAL_AFTER_DELETES_FILE)
            segments: list[SealedSegment] = []
            for partition_id, rows in sorted(capture.rows.items()):
                segment_id = self._catalog.allocate_id()
                directory = segment_directory(coll.collection_id, segment_id)
                columns = write_segment(self._store, directory, rows.combine_chunks())
                crash_points.crash_point(crash_points.SEAL_AFTER_SEGMENT_FILES)
                record = SegmentRecord(
                    segment_id=segment_id,
                    collection_id=coll.collection_id,
                    partition_id=partition_id,
                    num_rows=rows.num_rows,
                    directory=directory,
                    columns=columns,
                    wal_lsn=capture.lsn,
                    max_ts=capture.max_ts,
                    deletes_path=None,
                )
                self._catalog.add_segment(record)
                crash_points.crash_point(crash_points.SEAL_AFTER_FIRST_SEGMENT)
                segments.append(segment_from_record(record, ()))
            sealed = tuple(segments)
            coll.install_sealed(sealed, capture, deletes_file)
            crash_points.crash_point(crash_points.SEAL_BEFORE_TRIM)
            coll.wal.trim(capture.lsn)
        if sealed:
            self._on_sealed(coll, sealed)
        return sealed


def delete_files_when_unused(store: ObjectStore, segment: SealedSegment) -> None:
    """Delete a retired segment's directory once no object naming it is alive.

    Every version of a ``SealedSegment`` (a new one is made when an index is installed) shares
    its ``columns`` mapping (a weak-referenceable SegmentColumns), so a finalizer on it fires
    only after the last snapshot, loaded segment or build job holding any version lets go.
    """
    directory = segment.directory
    weakref.finalize(segment.columns, store.delete_prefix, directory)
