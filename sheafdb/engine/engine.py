"""The engine's one entry point: what the API layers call.

Every method is synchronous and thread-safe; the gRPC and REST layers call it from their
worker threads. ``db`` is always a resolved database name (``"default"`` when the client gave
none). Collection names may be aliases. Errors are ``sheafdb.errors`` exceptions.

CONTRACT FILE: the bodies are being written (data plane: DDL/DML; read plane: load/search).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from sheafdb.engine.models import (
    AliasInfo,
    CollectionInfo,
    ConsistencyLevel,
    DatabaseInfo,
    HybridSearchRequest,
    IndexInfo,
    LoadProgress,
    LoadState,
    MutationResult,
    PartitionInfo,
    QueryRequest,
    QueryResult,
    SearchRequest,
    SearchResult,
)
from sheafdb.schema import CollectionSchema, FieldSchema


@dataclass(frozen=True)
class EngineConfig:
    data_dir: Path
    # A growing segment seals into immutable segment files at this many bytes (or on flush).
    seal_bytes: int = 64 * 1024 * 1024
    # Loads that would push the accounted memory past this are refused at once.
    # None: a share of the machine's RAM (see memory accountant).
    memory_budget_bytes: int | None = None
    # fsync the write-ahead log before acknowledging a write (durability); tests may turn it off.
    fsync: bool = True
    # Reload collections that were loaded before a restart, in the background.
    restore_loads: bool = True


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish in-flight writes, close the write-ahead logs, stop background work."""
        raise NotImplementedError

    # -- databases --------------------------------------------------------------------------
    def create_database(self, name: str, properties: Mapping[str, str] | None = None) -> None: ...
    def drop_database(self, name: str) -> None: ...
    def list_databases(self) -> list[DatabaseInfo]: ...
    def describe_database(self, name: str) -> DatabaseInfo: ...
    def alter_database(self, name: str, properties: Mapping[str, str], delete_keys: Sequence[str] = ()) -> None: ...

    # -- collections ------------------------------------------------------------------------
    def create_collection(
        self,
        db: str,
        name: str,
        schema: CollectionSchema,
        *,
        consistency_level: ConsistencyLevel = ConsistencyLevel.BOUNDED,
        num_partitions: int = 0,
        shards_num: int = 1,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        """Field ids are assigned here (100, 101, ... like Milvus). Same name and same schema
        again is a no-op success; a different schema is ParameterInvalid."""

    def drop_collection(self, db: str, name: str) -> None: ...
    def has_collection(self, db: str, name: str) -> bool: ...
    def describe_collection(self, db: str, name: str) -> CollectionInfo: ...
    def list_collections(self, db: str) -> list[str]: ...
    def rename_collection(self, db: str, old_name: str, new_name: str, new_db: str | None = None) -> None: ...
    def truncate_collection(self, db: str, name: str) -> None: ...
    def alter_collection_properties(self, db: str, name: str, properties: Mapping[str, str]) -> None: ...
    def drop_collection_properties(self, db: str, name: str, keys: Sequence[str]) -> None: ...
    def alter_collection_field(self, db: str, name: str, field_name: str, params: Mapping[str, str]) -> None: ...
    def add_collection_field(self, db: str, name: str, field: FieldSchema) -> None: ...
    def collection_row_count(self, db: str, name: str) -> int: ...

    # -- partitions -------------------------------------------------------------------------
    def create_partition(self, db: str, collection: str, partition: str) -> None: ...
    def drop_partition(self, db: str, collection: str, partition: str) -> None: ...
    def has_partition(self, db: str, collection: str, partition: str) -> bool: ...
    def list_partitions(self, db: str, collection: str) -> list[PartitionInfo]: ...
    def partition_row_count(self, db: str, collection: str, partition: str) -> int: ...

    # -- indexes ----------------------------------------------------------------------------
    def create_index(
        self, db: str, collection: str, field_name: str, index_name: str, params: Mapping[str, str]
    ) -> None:
        """``index_name`` empty: named after the field. Builds run in the background."""

    def describe_indexes(
        self, db: str, collection: str, index_name: str = "", field_name: str = ""
    ) -> list[IndexInfo]:
        """All indexes (filtered by name / field when given); IndexNotFound when none match."""

    def drop_index(self, db: str, collection: str, index_name: str, field_name: str = "") -> None: ...
    def alter_index(
        self, db: str, collection: str, index_name: str, params: Mapping[str, str], delete_keys: Sequence[str] = ()
    ) -> None: ...

    # -- aliases ----------------------------------------------------------------------------
    def create_alias(self, db: str, collection: str, alias: str) -> None: ...
    def drop_alias(self, db: str, alias: str) -> None: ...
    def alter_alias(self, db: str, collection: str, alias: str) -> None: ...
    def describe_alias(self, db: str, alias: str) -> AliasInfo: ...
    def list_aliases(self, db: str, collection: str = "") -> list[AliasInfo]: ...

    # -- writes -----------------------------------------------------------------------------
    def insert(self, db: str, collection: str, data: pa.Table, partition: str = "") -> MutationResult:
        """``data`` has one column per given field (by name) and ``$meta`` (JSON text) for
        dynamic keys. Missing nullable / default fields are filled; an auto_id primary key is
        generated. Validated whole before anything is written; acknowledged once durable."""

    def upsert(self, db: str, collection: str, data: pa.Table, partition: str = "") -> MutationResult: ...
    def delete(
        self,
        db: str,
        collection: str,
        filter: str,
        filter_params: Mapping[str, object] | None = None,
        partition: str = "",
    ) -> MutationResult: ...
    def flush(self, db: str, collections: Sequence[str]) -> dict[str, int]:
        """Seal growing data; returns each collection's flush timestamp."""

    # -- load / release ---------------------------------------------------------------------
    def load_collection(
        self,
        db: str,
        collection: str,
        *,
        load_fields: Sequence[str] = (),
        skip_load_dynamic_field: bool = False,
        replica_number: int = 1,
        refresh: bool = False,
    ) -> None:
        """Validate and start a background load; returns once the load is accepted."""

    def load_partitions(
        self,
        db: str,
        collection: str,
        partitions: Sequence[str],
        *,
        load_fields: Sequence[str] = (),
        skip_load_dynamic_field: bool = False,
        replica_number: int = 1,
        refresh: bool = False,
    ) -> None: ...
    def release_collection(self, db: str, collection: str) -> int:
        """Returns the bytes given back."""

    def release_partitions(self, db: str, collection: str, partitions: Sequence[str]) -> int: ...
    def get_load_state(self, db: str, collection: str, partitions: Sequence[str] = ()) -> LoadState: ...
    def get_loading_progress(self, db: str, collection: str, partitions: Sequence[str] = ()) -> LoadProgress: ...

    # -- reads ------------------------------------------------------------------------------
    def search(self, db: str, request: SearchRequest) -> SearchResult: ...
    def hybrid_search(self, db: str, request: HybridSearchRequest) -> SearchResult: ...
    def query(self, db: str, request: QueryRequest) -> QueryResult: ...

    # -- introspection ----------------------------------------------------------------------
    def memory_report(self) -> Mapping[str, object]:
        """The memory accountant's view: bytes per collection, partition, field, index."""
        raise NotImplementedError
