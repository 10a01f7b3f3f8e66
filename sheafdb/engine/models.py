"""The engine's public request and result types: what the API layers hand in and get back.

The API layers (gRPC, REST) translate their wire formats into these and back; nothing here
knows about protobuf or JSON. Columns travel as Arrow arrays and numpy arrays, never as
Python lists per row, so that neither side pays a per-element loop.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from sheafdb.schema import CollectionSchema, FieldSchema
from sheafdb.storage.records import CollectionRecord


class LoadState(enum.IntEnum):
    """``common.LoadState`` numbers."""

    NOT_EXIST = 0
    NOT_LOAD = 1
    LOADING = 2
    LOADED = 3


class ConsistencyLevel(enum.IntEnum):
    """``common.ConsistencyLevel`` numbers. SheafDB serves every level as Strong."""

    STRONG = 0
    SESSION = 1
    BOUNDED = 2
    EVENTUALLY = 3
    CUSTOMIZED = 4


class IndexState(enum.IntEnum):
    """``common.IndexState`` numbers."""

    NONE = 0
    UNISSUED = 1
    IN_PROGRESS = 2
    FINISHED = 3
    FAILED = 4
    RETRY = 5


@dataclass(frozen=True)
class DatabaseInfo:
    name: str
    database_id: int
    created_timestamp: int
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectionInfo:
    db_name: str
    name: str
    collection_id: int
    schema: CollectionSchema
    created_timestamp: int  # hybrid timestamp
    created_utc_ms: int
    consistency_level: ConsistencyLevel = ConsistencyLevel.BOUNDED
    shards_num: int = 1
    num_partitions: int = 1
    aliases: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=dict)
    updated_timestamp: int = 0  # hybrid timestamp of the last schema / property change

    @classmethod
    def of(
        cls,
        record: CollectionRecord,
        *,
        num_partitions: int,
        aliases: tuple[str, ...],
        updated_timestamp: int,
    ) -> CollectionInfo:
        """What DescribeCollection answers for the catalog's ``record``."""
        return cls(
            db_name=record.db_name,
            name=record.name,
            collection_id=record.collection_id,
            schema=record.schema,
            created_timestamp=record.created_ts,
            created_utc_ms=record.created_utc_ms,
            consistency_level=ConsistencyLevel(record.consistency_level),
            shards_num=record.shards_num,
            num_partitions=num_partitions,
            aliases=aliases,
            properties=dict(record.properties),
            updated_timestamp=updated_timestamp,
        )


@dataclass(frozen=True)
class PartitionInfo:
    name: str
    partition_id: int
    created_timestamp: int


@dataclass(frozen=True)
class IndexInfo:
    index_name: str
    field_name: str
    index_id: int
    # All parameters as Milvus reports them: index_type, metric_type, and each build param.
    params: Mapping[str, str]
    state: IndexState
    total_rows: int = 0
    indexed_rows: int = 0
    pending_index_rows: int = 0
    fail_reason: str = ""


@dataclass(frozen=True)
class AliasInfo:
    alias: str
    db_name: str
    collection_name: str


@dataclass(frozen=True)
class MutationResult:
    """Result of insert / upsert / delete."""

    # Primary keys touched, as an Arrow int64 or string array.
    ids: pa.Array
    count: int
    timestamp: int  # hybrid timestamp of the mutation


@dataclass(frozen=True)
class SparseQueries:
    """nq sparse query vectors: row i is ``indices[offsets[i]:offsets[i+1]]`` with their values."""

    offsets: np.ndarray  # int64, nq + 1
    indices: np.ndarray  # uint32
    values: np.ndarray  # float32


@dataclass(frozen=True)
class TextQueries:
    """nq raw texts: a full-text (BM25) search, analyzed by the engine into sparse queries."""

    texts: tuple[str, ...]


@dataclass(frozen=True)
class EmbeddingListQueries:
    """nq query embedding lists (pymilvus ``EmbeddingList``): query i is the float32 values
    ``lists[i]``, its vectors end to end (the engine cuts them by the sub-field's dim)."""

    lists: tuple[np.ndarray, ...]


# Dense queries: (nq, dim) float32 for float vectors; (nq, dim) float16 / uint16 (bf16) for the
# half types; int8 for INT8_VECTOR; (nq, dim/8) uint8 for binary vectors.
QueryVectors = np.ndarray | SparseQueries | TextQueries | EmbeddingListQueries


@dataclass(frozen=True)
class DecayRanker:
    """A decay function ranker (Milvus 2.6): ``function`` gauss / exp / linear on ``field``."""

    function: str
    field: str
    origin: float
    scale: float
    offset: float = 0.0
    decay: float = 0.5


@dataclass(frozen=True)
class SearchRequest:
    collection: str
    vectors: QueryVectors
    limit: int
    anns_field: str | None = None  # None: the collection's only vector field
    metric_type: str | None = None  # None: the index's metric
    offset: int = 0
    filter: str = ""
    filter_params: Mapping[str, Any] = field(default_factory=dict)
    output_fields: tuple[str, ...] = ()
    partition_names: tuple[str, ...] = ()
    # Index search params (ef, nprobe, radius, range_filter, ...), already parsed from JSON.
    params: Mapping[str, Any] = field(default_factory=dict)
    group_by_field: str | None = None
    group_size: int = 1
    strict_group_size: bool = False
    round_decimal: int = -1
    ignore_growing: bool = False
    decay: DecayRanker | None = None
    # Search by primary keys: the stored vectors of these rows are the queries (``vectors`` is
    # then empty until the engine fills it, engine/read/search_by_keys.py).
    ids: Sequence[int] | Sequence[str] | None = None


@dataclass(frozen=True)
class Ranker:
    """How hybrid search merges its sub-searches: ``rrf`` (param ``k``) or ``weighted``."""

    strategy: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HybridSearchRequest:
    collection: str
    requests: tuple[SearchRequest, ...]
    ranker: Ranker
    limit: int
    offset: int = 0
    output_fields: tuple[str, ...] = ()
    partition_names: tuple[str, ...] = ()
    round_decimal: int = -1
    group_by_field: str | None = None
    group_size: int = 1
    # A decay ranker instead of ``ranker``: each hit's best normalised score, decayed.
    decay: DecayRanker | None = None


@dataclass(frozen=True)
class SearchResult:
    """Hits of nq queries, flattened in query order like Milvus's ``SearchResultData``.

    Query i owns rows ``sum(topks[:i])`` to ``sum(topks[:i+1])`` of ``ids``, ``scores`` and
    ``fields``.
    """

    primary_field: FieldSchema
    topks: np.ndarray  # int64, nq
    ids: pa.Array  # int64 or string
    scores: np.ndarray  # float32; L2 is the squared distance, IP / COSINE the similarity
    # One column per returned schema field, plus ``$meta`` (already cut to the asked keys).
    fields: pa.Table
    # Names as the client should list them: schema fields and dynamic keys.
    output_fields: tuple[str, ...]
    group_by_values: pa.Array | None = None

    @property
    def nq(self) -> int:
        return len(self.topks)


@dataclass(frozen=True)
class QueryRequest:
    collection: str
    filter: str = ""
    filter_params: Mapping[str, Any] = field(default_factory=dict)
    output_fields: tuple[str, ...] = ()
    partition_names: tuple[str, ...] = ()
    # Primary keys to fetch (get); combined with ``filter`` by AND when both are given.
    ids: Sequence[int] | Sequence[str] | None = None
    limit: int | None = None
    offset: int = 0
    ignore_growing: bool = False
    # Iterators page by primary key, so their results must come back ordered by it.
    order_by_primary_key: bool = False
    # Aggregation groups (output fields then hold count/min/max/avg/sum(field)).
    group_by_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueryResult:
    # Columns: each output schema field, ``$meta`` (cut to the asked keys), or ``count(*)``.
    table: pa.Table
    output_fields: tuple[str, ...]


@dataclass(frozen=True)
class LoadProgress:
    progress: int  # 0..100
    refresh_progress: int  # 0..100
