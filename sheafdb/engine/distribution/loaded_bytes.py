"""What a loaded collection's segments cost a worker: the bytes of the LOADED fields only.

Read from the catalog's rows (segments, their built index files, the load config), so the
coordinator needs nothing but the catalog and answers the same after a restart. A segment
costs what the embedded loader would reserve for it (load_plan.segment_plan: the loaded
columns, their indexes and the primary-key lookup), mapped columns included, because a
worker maps its cached copies and its budget covers them. Deletes-only segments hold no rows
to place: workers read them while they follow the log.
"""

from __future__ import annotations

from dataclasses import dataclass

from sheafdb.engine.load.load_plan import resolve_load_fields, segment_plan
from sheafdb.engine.snapshot import SegmentIndexFile
from sheafdb.engine.write.sealing import is_deletes_segment, segment_from_record
from sheafdb.storage.catalog import Catalog, CollectionRecord, LoadConfigRecord


@dataclass(frozen=True)
class LoadTarget:
    """One loaded collection as placement sees it."""

    record: CollectionRecord
    config: LoadConfigRecord
    fields: tuple[str, ...]
    partition_ids: frozenset[int]
    # segment id -> bytes of its loaded fields, for the segments of the loaded partitions
    sizes: dict[int, int]
    # segment id -> its partition
    partitions_of: dict[int, int]

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())


def load_target(catalog: Catalog, record: CollectionRecord, config: LoadConfigRecord) -> LoadTarget:
    cid = record.collection_id
    schema = record.schema
    fields = resolve_load_fields(schema, config.load_fields, config.skip_load_dynamic_field)
    partitions = {p.name: p.partition_id for p in catalog.list_partitions(cid)}
    wanted = config.partitions or tuple(partitions)
    partition_ids = frozenset(partitions[name] for name in wanted if name in partitions)
    indexes = {i.index_id: i for i in catalog.list_indexes(cid)}
    built: dict[int, list[SegmentIndexFile]] = {}
    for si in catalog.list_segment_indexes(cid):
        index = indexes.get(si.index_id)
        if index is None:
            continue
        field = schema.field(si.field_name)
        scalar = field is not None and not field.is_vector
        built.setdefault(si.segment_id, []).append(
            SegmentIndexFile(si.field_name, index.index_name, si.path, si.nbytes, dict(index.params), scalar)
        )
    sizes: dict[int, int] = {}
    partitions_of: dict[int, int] = {}
    primary = schema.primary_field.name
    for seg in catalog.list_segments(cid):
        if is_deletes_segment(seg) or seg.partition_id not in partition_ids:
            continue
        sealed = segment_from_record(seg, built.get(seg.segment_id, ()))
        sizes[seg.segment_id] = sum(item.nbytes for item in segment_plan(sealed, fields, primary))
        partitions_of[seg.segment_id] = seg.partition_id
    return LoadTarget(record, config, fields, partition_ids, sizes, partitions_of)
