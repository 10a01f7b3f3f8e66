"""Indexes on struct array sub-fields (``chunks[emb]``), as Milvus 2.6's "Array of Structs" has them.

A FLOAT_VECTOR sub-field holds, per row, a list of vectors (an embedding list). Milvus indexes
the list as a whole with HNSW and a MAX_SIM metric and searches it with query embedding lists;
scalar sub-fields take no index. The record keeps the validated params (HNSW's ``M`` and
``efConstruction`` checked by the ordinary HNSW rules); the search itself (struct_search.py)
scores every loaded row exactly, so its results are exact where Milvus's graph is approximate.
"""

from __future__ import annotations

from collections.abc import Mapping

from sheafdb.errors import invalid
from sheafdb.index import describe_index_params, parse_index_params
from sheafdb.index.metrics import MAX_SIM_METRICS
from sheafdb.schema import CollectionSchema, DataType, FieldSchema, split_struct_path, struct_path

EMBEDDING_LIST_INDEX_TYPES = ("HNSW",)


def struct_sub_of(schema: CollectionSchema, name: str) -> tuple[FieldSchema, FieldSchema] | None:
    """``(struct field, sub-field)`` named by ``struct[sub]``, or None."""
    split = split_struct_path(name)
    if split is None:
        return None
    struct = schema.field(split[0])
    if struct is None or struct.dtype is not DataType.ARRAY_OF_STRUCT:
        return None
    sub = next((s for s in struct.struct_fields if s.name == split[1]), None)
    return None if sub is None else (struct, sub)


def struct_index_params(struct: FieldSchema, sub: FieldSchema, params: Mapping[str, str]) -> dict[str, str]:
    """Validate an index on a struct sub-field; the params as DescribeIndex reports them."""
    path = struct_path(struct.name, sub.name)
    if not sub.is_vector:
        raise invalid(f"index on scalar sub-field {path} of a struct array field is not supported")
    index_type = str(params.get("index_type", "") or "").upper()
    if index_type not in EMBEDDING_LIST_INDEX_TYPES:
        raise invalid(
            f"index type {index_type or 'AUTOINDEX'} is not supported for the embedding list field {path}, "
            f"supported: [{' '.join(EMBEDDING_LIST_INDEX_TYPES)}]"
        )
    metric = str(params.get("metric_type", "") or "").upper()
    if metric not in MAX_SIM_METRICS:
        raise invalid(
            f"metric type {metric} not found or not supported, supported: [{' '.join(MAX_SIM_METRICS)}]"
        )
    # The build params follow HNSW's own rules (checked as on a plain vector of that dim).
    plain = FieldSchema(path, sub.dtype, dim=sub.dim)
    spec = parse_index_params(plain, {**params, "index_type": index_type, "metric_type": "COSINE"})
    return {**describe_index_params(spec), "metric_type": metric}
