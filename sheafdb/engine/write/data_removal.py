"""The data side of drop collection, truncate and drop partition (the engine's DDL lock is held
by the caller; the checks Milvus makes before them stay in the facade).

Each removal holds the collection's ``seal_lock``, so no seal or compaction is half-way while
the catalog forgets segments. Catalog first, files after: a crash in between leaves only files
no entry names, which the next start removes (orphans.py). Files of retired row segments go
once nothing reads them (``delete_files_when_unused``); deletes files at once (their content
lives in memory). Stateless apart from its collaborators: no lock of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from sheafdb.engine.collection import Cleared, Collection
from sheafdb.engine.snapshot import DeleteFile, SealedSegment
from sheafdb.engine.write import crash_points
from sheafdb.engine.write.sealing import delete_files_when_unused
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.log import LogStore
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.records import DroppedData
from sheafdb.storage.timestamps import TimestampOracle


class DataRemoval:
    def __init__(
        self,
        store: ObjectStore,
        catalog: Catalog,
        oracle: TimestampOracle,
        clear: Callable[[Collection, int], Cleared] = Collection.clear_data,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._oracle = oracle
        # Log the truncate record and forget the data: the collection's own log (embedded),
        # or in cluster mode the log owner's append, then catching up (log_following.py).
        self._clear = clear

    def drop_collection(self, coll: Collection, logs: LogStore) -> None:
        with coll.seal_lock:
            coll.dropped = True
            self._catalog.drop_collection(coll.collection_id)
            coll.wal.close()
        logs.remove(coll.collection_id)
        self._forget_files(coll.snapshot().sealed, coll.delete_files)

    def truncate(self, coll: Collection) -> None:
        """Log first (the "truncate" record), then the catalog, then trim: a crash anywhere
        in between is finished by recovery (recovery.py replays the record)."""
        with coll.seal_lock:
            ts = self._oracle.next()
            gone, gone_deletes, lsn = self._clear(coll, ts)
            crash_points.crash_point(crash_points.TRUNCATE_AFTER_LOG)
            old_ids = [s.segment_id for s in gone] + [d.segment_id for d in gone_deletes]
            dropped = self._catalog.replace_segments(old_ids, None) if old_ids else DroppedData()
            # The record's timestamp must outlive the trim: the next start's oracle floor.
            self._catalog.note_timestamp(ts)
            crash_points.crash_point(crash_points.TRUNCATE_BEFORE_TRIM)
            coll.wal.trim(lsn)
        coll.replace_sealed(gone, (), "compacted")
        self.discard(dropped, gone)
        self._forget_files((), gone_deletes)

    def drop_partition(self, coll: Collection, partition_id: int) -> None:
        """Never the anchor partition (the caller refuses ``_default`` and partition-key ones),
        so the deletes files, which hide rows everywhere, stay."""
        with coll.seal_lock:
            dropped = self._catalog.drop_partition(partition_id)
            gone = coll.drop_partition(partition_id)
        coll.replace_sealed(gone, (), "compacted")
        self.discard(dropped, gone)

    def discard(self, dropped: DroppedData, segments: tuple[SealedSegment, ...] = ()) -> None:
        """Files of removed segments go once nothing uses them; dropped index files at once."""
        for seg in segments:
            delete_files_when_unused(self._store, seg)
        for index_file in dropped.segment_indexes:
            if not any(s.segment_id == index_file.segment_id for s in segments):
                self._store.delete(index_file.path)

    def _forget_files(self, segments: tuple[SealedSegment, ...], deletes: tuple[DeleteFile, ...]) -> None:
        for seg in segments:
            delete_files_when_unused(self._store, seg)
        for deletes_file in deletes:
            self._store.delete_prefix(deletes_file.directory)
