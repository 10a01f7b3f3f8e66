"""Opening a collection after a start or a crash: catalog state plus the log's unsealed tail.

Sealed segments come from the catalog (with their built indexes and delete files). The
collection's log (storage/log.py: the file write-ahead log, or PostgreSQL's) is then
replayed into the growing data, record by record:
- rows of a partition only past the largest ``wal_lsn`` among that partition's *row* segments
  (smaller lsns are already in a sealed segment; a deletes segment says nothing about rows);
- deletes only past the largest ``wal_lsn`` among segments that carry a deletes file
  (the seal that wrote that file captured every delete logged up to its lsn);
- an upsert record is both: its delete half and its row half are judged separately, so an
  upsert whose deletes were sealed but whose rows were not gets only its rows back;
- records of partitions that no longer exist are skipped (dropped partition);
- a partition-key batch is one record whose rows name their partitions (``routed_parts``):
  each partition's part is judged by that partition's ``wal_lsn`` as above;
- a "truncate" record drops everything before it: the growing data replayed so far, and the
  sealed segments if the catalog still lists them (the truncate died before forgetting them).
So a crash anywhere in a seal (see sealing.py) neither loses nor doubles a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from sheafdb.engine.collection import TRUNCATE_KIND, Collection, routed_parts, split_upsert
from sheafdb.engine.snapshot import DeleteFile, SealedSegment, SegmentIndexFile
from sheafdb.engine.write.sealing import (
    delete_file_from_record,
    is_deletes_segment,
    read_delete_records,
    segment_from_record,
)
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.log import CollectionLog, LogRecord, LogStore
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.records import CollectionRecord


@dataclass(frozen=True)
class Recovered:
    collection: Collection
    max_timestamp: int  # newest timestamp seen: the oracle's floor must be above it


def open_collection(
    record: CollectionRecord, catalog: Catalog, store: ObjectStore, logs: LogStore
) -> Recovered:
    wal = logs.open(record.collection_id)
    replay = LogReplay(record, catalog, store, wal)
    for rec in wal.replay():
        if rec.kind == TRUNCATE_KIND:
            _finish_truncate(replay.collection, catalog, store)
        replay.apply(rec)
    replay.collection.note_timestamp(replay.max_ts)
    return Recovered(replay.collection, replay.max_ts)


class LogReplay:
    """A collection as the catalog has it, and the rules that apply its log records on top
    (``RecordRules``, judged by the lsns its segments hold). Recovery replays the log once; a
    query worker (follower.py) keeps applying the records the primary appends. ``wal`` is
    None in a worker (it only reads)."""

    def __init__(
        self, record: CollectionRecord, catalog: Catalog, store: ObjectStore, wal: CollectionLog | None
    ) -> None:
        cid = record.collection_id
        partitions = {p.name: p.partition_id for p in catalog.list_partitions(cid)}
        indexes = tuple(catalog.list_indexes(cid))
        by_id = {i.index_id: i for i in indexes}
        built: dict[int, list[SegmentIndexFile]] = {}
        for si in catalog.list_segment_indexes(cid):
            index = by_id.get(si.index_id)
            field = record.schema.field(si.field_name)
            if index is not None:
                scalar = field is not None and not field.is_vector
                built.setdefault(si.segment_id, []).append(
                    SegmentIndexFile(
                        si.field_name, index.index_name, si.path, si.nbytes, dict(index.params), scalar
                    )
                )
        sealed: list[SealedSegment] = []
        sealed_deletes: list[pa.Table] = []
        delete_files: list[DeleteFile] = []
        self.rules = RecordRules()
        self.max_ts = 0
        for seg in catalog.list_segments(cid):
            self.max_ts = max(self.max_ts, seg.max_ts)
            if seg.deletes_path is not None:
                deletes = read_delete_records(store, seg.deletes_path)
                sealed_deletes.append(deletes)
                self.rules.deletes_after = max(self.rules.deletes_after, seg.wal_lsn)
                if is_deletes_segment(seg):
                    delete_files.append(delete_file_from_record(seg, deletes))
                    continue
            sealed.append(segment_from_record(seg, built.get(seg.segment_id, ())))
            rows_after = self.rules.rows_after
            rows_after[seg.partition_id] = max(rows_after.get(seg.partition_id, 0), seg.wal_lsn)
        self.collection = Collection(
            record, partitions, indexes, wal, tuple(sealed), tuple(sealed_deletes), tuple(delete_files)
        )

    def apply(self, rec: LogRecord) -> None:
        """One record of the log, applied by the rules (``RecordRules.apply``)."""
        self.max_ts = max(self.max_ts, rec.timestamp)
        self.rules.apply(self.collection, rec)


@dataclass
class RecordRules:
    """What of a log record a collection still lacks (the module docstring's rules), judged
    by the ``wal_lsn`` of the segments it opened with. Shared by recovery, a query worker's
    follower and the cluster coordinator following its log owners (log_following.py)."""

    # Per partition: the largest wal_lsn of its row segments (its rows up to it are sealed).
    rows_after: dict[int, int] = field(default_factory=dict)
    # The largest wal_lsn of a segment with a deletes file (deletes up to it are sealed).
    deletes_after: int = 0

    def apply(self, coll: Collection, rec: LogRecord) -> None:
        """One record, applied as far as no sealed segment holds it already (a truncate drops
        everything before it; recovery also makes the catalog forget it). Records of
        partitions the collection does not have (dropped) are skipped."""
        if rec.kind == TRUNCATE_KIND:
            coll.forget_all()
            coll.note_lsn(rec.lsn)
            return
        if rec.kind in ("delete", "upsert") and rec.lsn > self.deletes_after:
            coll.apply(
                "delete", rec.partition_id, rec.lsn, rec.timestamp, _delete_batch(coll, rec.kind, rec.batch)
            )
        if rec.kind in ("insert", "upsert"):
            rows = split_upsert(coll.schema, rec.batch)[1] if rec.kind == "upsert" else rec.batch
            known = set(coll.partitions.values())
            for partition_id, part in routed_parts(rec.partition_id, rows):
                if partition_id in known and rec.lsn > self.rows_after.get(partition_id, 0):
                    coll.apply("insert", partition_id, rec.lsn, rec.timestamp, part)
        coll.note_lsn(rec.lsn)


def _finish_truncate(coll: Collection, catalog: Catalog, store: ObjectStore) -> None:
    gone, gone_deletes = coll.snapshot().sealed, coll.delete_files
    old = [*(s.segment_id for s in gone), *(d.segment_id for d in gone_deletes)]
    if old:
        catalog.replace_segments(old, None)
    for directory in [*(s.directory for s in gone), *(d.directory for d in gone_deletes)]:
        store.delete_prefix(directory)  # nothing has read them yet


def _delete_batch(coll: Collection, kind: str, batch: pa.Table) -> pa.Table:
    if kind == "delete":
        return batch
    return pa.table({"pk": split_upsert(coll.schema, batch)[0]})
