"""The catalog: every database, collection, partition, index, alias, segment and load config.

``Catalog`` is the Protocol the engine codes to, and ``open_catalog`` picks its backend:
``SqliteCatalog`` (sqlite_catalog.py, re-exported here) keeps it in one SQLite file, the
embedded default; ``PostgresCatalog`` (postgres_catalog.py) in a PostgreSQL database. Both
are ``SqlCatalog`` (sql_catalog.py): the same tables, the same SQL. Every method is one
transaction and thread-safe. Ids come from one counter: unique across the whole catalog,
never reused.

The catalog raises the errors it is the one to know (not found, name taken); whether a
repeated create is an idempotent success is the engine's decision. Methods that remove data
return ``DroppedData``: the files the caller may now delete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from sheafdb.schema import CollectionSchema
from sheafdb.storage.records import (
    DEFAULT_DATABASE,
    DEFAULT_PARTITION,
    AliasRecord,
    CollectionRecord,
    DatabaseRecord,
    DroppedData,
    IndexRecord,
    LoadConfigRecord,
    PartitionRecord,
    SegmentIndexRecord,
    SegmentRecord,
)
from sheafdb.storage.sqlite_catalog import SqliteCatalog

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_PARTITION",
    "AliasRecord",
    "Catalog",
    "CollectionRecord",
    "DatabaseRecord",
    "DroppedData",
    "IndexRecord",
    "LoadConfigRecord",
    "PartitionRecord",
    "SegmentIndexRecord",
    "SegmentRecord",
    "SqliteCatalog",
    "open_catalog",
]

# The embedded catalog's file in the data dir.
CATALOG_FILE = "catalog.db"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Catalog(Protocol):
    def allocate_id(self) -> int: ...
    def allocate_ids(self, count: int) -> range: ...
    def max_timestamp(self) -> int: ...
    def note_timestamp(self, ts: int) -> None: ...
    # A random number drawn when the catalog was made: what an object store prefix is bound to.
    def identity(self) -> int: ...
    def close(self) -> None: ...

    def create_database(
        self, name: str, properties: Mapping[str, str], created_ts: int
    ) -> DatabaseRecord: ...
    def drop_database(self, name: str) -> None: ...
    def get_database(self, name: str) -> DatabaseRecord: ...
    def list_databases(self) -> list[DatabaseRecord]: ...
    def set_database_properties(self, name: str, properties: Mapping[str, str]) -> DatabaseRecord: ...

    def create_collection(
        self,
        db_name: str,
        name: str,
        schema: CollectionSchema,
        *,
        partition_names: Sequence[str],
        properties: Mapping[str, str],
        consistency_level: int,
        shards_num: int,
        created_ts: int,
        created_utc_ms: int | None = None,
    ) -> CollectionRecord: ...
    def drop_collection(self, collection_id: int) -> DroppedData: ...
    def get_collection(self, db_name: str, name: str) -> CollectionRecord: ...
    def get_collection_by_id(self, collection_id: int) -> CollectionRecord: ...
    def resolve_collection(self, db_name: str, name_or_alias: str) -> CollectionRecord: ...
    def list_collections(self, db_name: str | None = None) -> list[CollectionRecord]: ...
    def rename_collection(self, collection_id: int, new_db_name: str, new_name: str) -> CollectionRecord: ...
    def update_collection(
        self,
        collection_id: int,
        *,
        schema: CollectionSchema | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> CollectionRecord: ...

    def create_partition(self, collection_id: int, name: str, created_ts: int) -> PartitionRecord: ...
    def drop_partition(self, partition_id: int) -> DroppedData: ...
    def get_partition(self, collection_id: int, name: str) -> PartitionRecord: ...
    def list_partitions(self, collection_id: int) -> list[PartitionRecord]: ...

    def create_index(
        self, collection_id: int, field_name: str, index_name: str, params: Mapping[str, str], created_ts: int
    ) -> IndexRecord: ...
    def drop_index(self, index_id: int) -> DroppedData: ...
    def update_index_params(self, index_id: int, params: Mapping[str, str]) -> IndexRecord: ...
    def list_indexes(self, collection_id: int) -> list[IndexRecord]: ...

    def create_alias(self, db_name: str, alias: str, collection_id: int) -> AliasRecord: ...
    def drop_alias(self, db_name: str, alias: str) -> None: ...
    def alter_alias(self, db_name: str, alias: str, collection_id: int) -> AliasRecord: ...
    def list_aliases(self, db_name: str, collection_id: int | None = None) -> list[AliasRecord]: ...
    def resolve_alias(self, db_name: str, alias: str) -> int | None: ...

    def add_segment(self, segment: SegmentRecord) -> None: ...
    def replace_segments(self, old_ids: Sequence[int], new: SegmentRecord | None) -> DroppedData: ...
    def set_segment_deletes(self, segment_id: int, deletes_path: str | None) -> SegmentRecord: ...
    def list_segments(self, collection_id: int, partition_id: int | None = None) -> list[SegmentRecord]: ...
    def add_segment_index(self, record: SegmentIndexRecord) -> None: ...
    def list_segment_indexes(self, collection_id: int) -> list[SegmentIndexRecord]: ...

    def set_load_config(self, config: LoadConfigRecord) -> None: ...
    def get_load_config(self, collection_id: int) -> LoadConfigRecord | None: ...
    def clear_load_config(self, collection_id: int) -> None: ...
    def list_load_configs(self) -> list[LoadConfigRecord]: ...


def open_catalog(url: str | None, data_dir: Path) -> Catalog:
    """The catalog ``url`` names: None is the embedded SQLite file in ``data_dir``;
    ``postgresql://user@host:port/dbname`` a PostgreSQL database (needs psycopg)."""
    if url is None:
        return SqliteCatalog(data_dir / CATALOG_FILE)
    if not url.startswith(POSTGRES_SCHEMES):
        raise ValueError(f"unknown catalog URL {url!r}: expected postgresql://...")
    try:
        # Imported here: psycopg is an optional dependency, needed only by this backend.
        from sheafdb.storage.postgres_catalog import PostgresCatalog
    except ImportError as exc:
        raise ValueError(
            f"a PostgreSQL catalog needs psycopg: pip install 'sheafdb[cluster]' ({exc})"
        ) from exc
    return PostgresCatalog(url)
