"""The tables of the catalog and how their rows decode into records.

Foreign keys with ON DELETE CASCADE make "drop cascades" a property of the schema: dropping a
collection removes its partitions, indexes, aliases, segments, segment indexes and load config.
``TABLES`` is written in SQLite's words; ``POSTGRES_TABLES`` is the same schema in PostgreSQL's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sheafdb.schema import CollectionSchema
from sheafdb.storage.file_resource_rows import FILE_RESOURCE_TABLES
from sheafdb.storage.lease_rows import LEASE_TABLES
from sheafdb.storage.placement_rows import PLACEMENT_TABLES
from sheafdb.storage.records import (
    CollectionRecord,
    DatabaseRecord,
    IndexRecord,
    LoadConfigRecord,
    SegmentRecord,
)
from sheafdb.storage.resource_group_rows import RESOURCE_GROUP_TABLES
from sheafdb.storage.segment_files import ColumnFile
from sheafdb.storage.snapshot_rows import SNAPSHOT_TABLES

TABLES = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS databases (
    database_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    properties TEXT NOT NULL, created_ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    collection_id INTEGER PRIMARY KEY,
    db_name TEXT NOT NULL REFERENCES databases(name) ON UPDATE CASCADE,
    name TEXT NOT NULL, schema TEXT NOT NULL, properties TEXT NOT NULL,
    consistency_level INTEGER NOT NULL, shards_num INTEGER NOT NULL,
    created_ts INTEGER NOT NULL, created_utc_ms INTEGER NOT NULL,
    UNIQUE (db_name, name));
CREATE TABLE IF NOT EXISTS partitions (
    partition_id INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections ON DELETE CASCADE,
    name TEXT NOT NULL, created_ts INTEGER NOT NULL, UNIQUE (collection_id, name));
CREATE TABLE IF NOT EXISTS indexes (
    index_id INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections ON DELETE CASCADE,
    field_name TEXT NOT NULL, index_name TEXT NOT NULL, params TEXT NOT NULL,
    created_ts INTEGER NOT NULL, UNIQUE (collection_id, index_name));
CREATE TABLE IF NOT EXISTS aliases (
    db_name TEXT NOT NULL, alias TEXT NOT NULL,
    collection_id INTEGER NOT NULL REFERENCES collections ON DELETE CASCADE,
    PRIMARY KEY (db_name, alias));
CREATE TABLE IF NOT EXISTS segments (
    segment_id INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections ON DELETE CASCADE,
    partition_id INTEGER NOT NULL REFERENCES partitions ON DELETE CASCADE,
    num_rows INTEGER NOT NULL, directory TEXT NOT NULL, columns TEXT NOT NULL,
    wal_lsn INTEGER NOT NULL, max_ts INTEGER NOT NULL, deletes_path TEXT);
CREATE TABLE IF NOT EXISTS segment_indexes (
    segment_id INTEGER NOT NULL REFERENCES segments ON DELETE CASCADE,
    index_id INTEGER NOT NULL REFERENCES indexes ON DELETE CASCADE,
    field_name TEXT NOT NULL, path TEXT NOT NULL, nbytes INTEGER NOT NULL,
    PRIMARY KEY (segment_id, index_id));
CREATE TABLE IF NOT EXISTS load_configs (
    collection_id INTEGER PRIMARY KEY REFERENCES collections ON DELETE CASCADE,
    partitions TEXT NOT NULL, load_fields TEXT NOT NULL,
    skip_load_dynamic_field INTEGER NOT NULL, replica_number INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS segments_by_collection ON segments (collection_id);
CREATE INDEX IF NOT EXISTS segment_indexes_by_index ON segment_indexes (index_id);
"""
    + RESOURCE_GROUP_TABLES
    + SNAPSHOT_TABLES
    + FILE_RESOURCE_TABLES
    + PLACEMENT_TABLES
    + LEASE_TABLES
)

# PostgreSQL's INTEGER is 32-bit (ids and timestamps need 64), and its text ordering follows
# the locale: byte order ("C") keeps listings ordered as SQLite orders them.
POSTGRES_TABLES = TABLES.replace("INTEGER", "BIGINT").replace(" TEXT", ' TEXT COLLATE "C"')

# A fetched row, as either driver returns it.
Row = Sequence[Any]

COLLECTION_COLUMNS = (
    "collection_id, db_name, name, schema, properties, consistency_level, shards_num, "
    "created_ts, created_utc_ms"
)
SEGMENT_COLUMNS = (
    "segment_id, collection_id, partition_id, num_rows, directory, columns, wal_lsn, max_ts, deletes_path"
)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def database_from_row(row: Row) -> DatabaseRecord:
    return DatabaseRecord(row[0], row[1], json.loads(row[2]), row[3])


def collection_from_row(row: Row) -> CollectionRecord:
    return CollectionRecord(
        collection_id=row[0],
        db_name=row[1],
        name=row[2],
        schema=CollectionSchema.from_dict(json.loads(row[3])),
        properties=json.loads(row[4]),
        consistency_level=row[5],
        shards_num=row[6],
        created_ts=row[7],
        created_utc_ms=row[8],
    )


def index_from_row(row: Row) -> IndexRecord:
    return IndexRecord(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5])


def segment_from_row(row: Row) -> SegmentRecord:
    columns = {
        name: ColumnFile(column=name, path=path, nbytes=nbytes)
        for name, (path, nbytes) in json.loads(row[5]).items()
    }
    return SegmentRecord(
        segment_id=row[0],
        collection_id=row[1],
        partition_id=row[2],
        num_rows=row[3],
        directory=row[4],
        columns=columns,
        wal_lsn=row[6],
        max_ts=row[7],
        deletes_path=row[8],
    )


def load_config_from_row(row: Row) -> LoadConfigRecord:
    return LoadConfigRecord(
        collection_id=row[0],
        partitions=tuple(json.loads(row[1])),
        load_fields=tuple(json.loads(row[2])),
        skip_load_dynamic_field=bool(row[3]),
        replica_number=row[4],
    )
