"""Opening a collection after a start or a crash: catalog state plus the log's unsealed tail.

Sealed segments come from the catalog (with their built indexes and delete files). The
write-ahead log is then replayed into the growing data, record by record:
- rows of a partition only past the largest ``wal_lsn`` among that partition's segments
  (smaller lsns are already in a sealed segment);
- deletes only past the largest ``wal_lsn`` among segments that carry a deletes file
  (the seal that wrote that file captured every delete logged up to its lsn);
- records of partitions that no longer exist are skipped (dropped partition).
So a crash anywhere in a seal (see sealing.py) neither loses nor doubles a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from sheafdb.engine.collection import Collection
from sheafdb.engine.sealing import segment_from_record
from sheafdb.engine.snapshot import SealedSegment, SegmentIndexFile
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.records import CollectionRecord
from sheafdb.storage.segment_files import read_deletes
from sheafdb.storage.wal import WriteAheadLog


@dataclass(frozen=True)
class Recovered:
    collection: Collection
    max_timestamp: int  # newest timestamp seen: the oracle's floor must be above it


def wal_directory(data_dir: Path, collection_id: int) -> Path:
    return data_dir / "wal" / str(collection_id)


def open_collection(
    record: CollectionRecord, catalog: Catalog, store: ObjectStore, data_dir: Path, *, fsync: bool
) -> Recovered:
    cid = record.collection_id
    partitions = {p.name: p.partition_id for p in catalog.list_partitions(cid)}
    indexes = tuple(catalog.list_indexes(cid))
    by_id = {i.index_id: i for i in indexes}
    built: dict[int, dict[str, SegmentIndexFile]] = {}
    for si in catalog.list_segment_indexes(cid):
        index = by_id.get(si.index_id)
        if index is not None:
            built.setdefault(si.segment_id, {})[si.field_name] = SegmentIndexFile(
                si.field_name, index.index_name, si.path, si.nbytes, dict(index.params)
            )
    records = catalog.list_segments(cid)
    sealed: list[SealedSegment] = []
    sealed_deletes: list[pa.Table] = []
    rows_after: dict[int, int] = {}
    deletes_after = 0
    max_ts = 0
    for seg in records:
        sealed.append(segment_from_record(seg, built.get(seg.segment_id, {})))
        rows_after[seg.partition_id] = max(rows_after.get(seg.partition_id, 0), seg.wal_lsn)
        max_ts = max(max_ts, seg.max_ts)
        if seg.deletes_path is not None:
            sealed_deletes.append(read_deletes(store, seg.deletes_path))
            deletes_after = max(deletes_after, seg.wal_lsn)
    wal = WriteAheadLog(wal_directory(data_dir, cid), fsync=fsync)
    coll = Collection(record, partitions, indexes, wal, tuple(sealed), tuple(sealed_deletes))
    known = set(partitions.values())
    for rec in wal.replay():
        max_ts = max(max_ts, rec.timestamp)
        if rec.kind in ("delete", "upsert") and rec.lsn > deletes_after:
            coll.apply(
                "delete", rec.partition_id, rec.lsn, rec.timestamp, _delete_batch(coll, rec.kind, rec.batch)
            )
        if (
            rec.kind in ("insert", "upsert")
            and rec.partition_id in known
            and rec.lsn > rows_after.get(rec.partition_id, 0)
        ):
            coll.apply("insert", rec.partition_id, rec.lsn, rec.timestamp, rec.batch)
        coll.note_lsn(rec.lsn)
    coll.note_timestamp(max_ts)
    return Recovered(coll, max_ts)


def _delete_batch(coll: Collection, kind: str, batch: pa.Table) -> pa.Table:
    if kind == "delete":
        return batch
    return pa.table({"pk": batch.column(coll.schema.primary_field.name)})
