"""The catalog's records: immutable snapshots of what the catalog holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sheafdb.schema import CollectionSchema
from sheafdb.storage.segment_files import ColumnFile

DEFAULT_DATABASE = "default"
DEFAULT_PARTITION = "_default"


@dataclass(frozen=True)
class DatabaseRecord:
    database_id: int
    name: str
    properties: Mapping[str, str]
    created_ts: int


@dataclass(frozen=True)
class CollectionRecord:
    collection_id: int
    db_name: str
    name: str
    schema: CollectionSchema
    properties: Mapping[str, str]
    consistency_level: int
    shards_num: int
    created_ts: int
    created_utc_ms: int


@dataclass(frozen=True)
class PartitionRecord:
    partition_id: int
    collection_id: int
    name: str
    created_ts: int


@dataclass(frozen=True)
class IndexRecord:
    index_id: int
    collection_id: int
    field_name: str
    index_name: str
    params: Mapping[str, str]
    created_ts: int


@dataclass(frozen=True)
class SegmentRecord:
    segment_id: int
    collection_id: int
    partition_id: int
    num_rows: int
    directory: str
    columns: Mapping[str, ColumnFile]
    # The last write-ahead-log record whose rows are in this segment (the log may be trimmed to it).
    wal_lsn: int
    max_ts: int
    deletes_path: str | None = None


@dataclass(frozen=True)
class SegmentIndexRecord:
    segment_id: int
    index_id: int
    field_name: str
    path: str
    nbytes: int


@dataclass(frozen=True)
class AliasRecord:
    db_name: str
    alias: str
    collection_id: int


@dataclass(frozen=True)
class LoadConfigRecord:
    collection_id: int
    # Empty: the whole collection.
    partitions: tuple[str, ...] = ()
    # Empty: every field.
    load_fields: tuple[str, ...] = ()
    skip_load_dynamic_field: bool = False
    replica_number: int = 1


@dataclass(frozen=True)
class DroppedData:
    """What a drop or compaction removed from the catalog: files the caller may now delete."""

    segments: tuple[SegmentRecord, ...] = ()
    segment_indexes: tuple[SegmentIndexRecord, ...] = field(default=())
