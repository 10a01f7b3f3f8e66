"""Sealing: growing rows become immutable segment files, registered in the catalog.

One seal covers the whole collection: every partition with growing rows gets one new segment,
all captured at the same log position (lsn), so the log can be trimmed up to it afterwards.
The order makes a crash at any point safe:

1. capture the growing data (the collection's gate guarantees no half-applied write);
2. write each partition's segment files (a crash here leaves only an orphan directory);
3. add each segment to the catalog with ``wal_lsn``; the first one also carries a file with
   the captured deletes. Recovery replays a partition's log records only past the largest
   ``wal_lsn`` of its segments, and deletes only past the largest ``wal_lsn`` of a segment
   carrying deletes, so a crash between two catalog adds neither loses nor doubles a row;
4. swap the segments in for the captured growing data (one step under the collection lock);
5. trim the log up to the lsn.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from sheafdb.engine.collection import Collection
from sheafdb.engine.snapshot import SealedSegment, SegmentColumns, SegmentIndexFile
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.records import SegmentRecord
from sheafdb.storage.segment_files import write_deletes, write_segment

DELETES_FILE = "deletes.arrow"


def segment_directory(collection_id: int, segment_id: int) -> str:
    return f"collections/{collection_id}/segments/{segment_id}"


def segment_from_record(record: SegmentRecord, index_files: dict[str, SegmentIndexFile]) -> SealedSegment:
    return SealedSegment(
        segment_id=record.segment_id,
        partition_id=record.partition_id,
        num_rows=record.num_rows,
        columns=SegmentColumns(record.columns),
        index_files=index_files,
        directory=record.directory,
        deletes_path=record.deletes_path,
    )


class Sealer:
    """Writes sealed segments; stateless apart from its collaborators, so thread-safe."""

    def __init__(
        self,
        store: ObjectStore,
        catalog: Catalog,
        on_sealed: Callable[[Collection, tuple[SealedSegment, ...]], None],
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._on_sealed = on_sealed

    def seal(self, coll: Collection) -> tuple[SealedSegment, ...]:
        """Seal every growing row of ``coll``; returns the new segments (empty if none)."""
        with coll.seal_lock:
            capture = coll.capture_growing()
            if not capture.rows:
                # Only deletes (or nothing): they stay in the log until rows come to seal with.
                return ()
            segments: list[SealedSegment] = []
            deletes = capture.deletes
            for partition_id, rows in sorted(capture.rows.items()):
                segment_id = self._catalog.allocate_id()
                directory = segment_directory(coll.collection_id, segment_id)
                columns = write_segment(self._store, directory, rows.combine_chunks())
                deletes_path = None
                if deletes is not None:
                    deletes_path = f"{directory}/{DELETES_FILE}"
                    write_deletes(self._store, deletes_path, deletes.column("pk"), deletes.column("__ts"))
                    deletes = None
                record = SegmentRecord(
                    segment_id=segment_id,
                    collection_id=coll.collection_id,
                    partition_id=partition_id,
                    num_rows=rows.num_rows,
                    directory=directory,
                    columns=columns,
                    wal_lsn=capture.lsn,
                    max_ts=capture.max_ts,
                    deletes_path=deletes_path,
                )
                self._catalog.add_segment(record)
                segments.append(segment_from_record(record, {}))
            sealed = tuple(segments)
            coll.install_sealed(sealed, capture)
            coll.wal.trim(capture.lsn)
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
