"""Search by primary keys: the stored vectors of the given rows become the queries (Milvus 2.6).

pymilvus 3.0 sends ``search(ids=[...])`` as a SearchRequest carrying ``ids`` instead of a
placeholder group. The rows are fetched like a get (same partitions, same visibility), their
anns-field vectors are laid out as the query array the search path takes, in the order of the
ids, and the search runs as if the client had sent them. Milvus's refusals, in its words:
duplicated ids, ids of the other key type, ids not found, ids whose vectors are all null.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pyarrow as pa

from sheafdb.engine.models import QueryRequest, QueryResult, QueryVectors, SearchRequest, SparseQueries
from sheafdb.errors import UnexpectedError, invalid
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

_DENSE_DTYPE: dict[DataType, type[np.generic]] = {
    DataType.FLOAT_VECTOR: np.float32,
    DataType.INT8_VECTOR: np.int8,
    DataType.FLOAT16_VECTOR: np.float16,
    DataType.BFLOAT16_VECTOR: np.uint16,  # bf16 bits, as the search path takes them
    DataType.BINARY_VECTOR: np.uint8,
}


def with_key_vectors(
    schema: CollectionSchema, request: SearchRequest, fetch: Callable[[QueryRequest], QueryResult]
) -> SearchRequest:
    """``request`` (which carries ``ids``) with the stored vectors of those rows as its queries;
    ``fetch`` runs a get on the same collection."""
    ids = list(request.ids or ())
    if not ids:
        raise invalid("`ids` value [] is illegal")
    primary = schema.primary_field
    _check_key_type(primary, ids)
    if len(set(ids)) != len(ids):
        raise invalid("duplicate IDs found in search request")
    field = _anns_field(schema, request.anns_field)
    found = fetch(
        QueryRequest(
            request.collection,
            output_fields=(field.name,),
            partition_names=request.partition_names,
            ids=ids,
        )
    ).table
    keys = found.column(primary.name).to_pylist()
    position = {key: i for i, key in enumerate(keys)}
    missing = [key for key in ids if key not in position]
    if missing:
        raise invalid(f"some of the provided primary key IDs do not exist: missing IDs {missing}")
    column = found.column(field.name).combine_chunks().take(pa.array([position[k] for k in ids]))
    present = column.drop_null()
    if len(present) == 0:
        raise UnexpectedError("all provided IDs have null vector values")
    return replace(request, vectors=_queries(field, present), anns_field=field.name, ids=None)


def _check_key_type(primary: FieldSchema, ids: Sequence[object]) -> None:
    if primary.dtype is DataType.INT64:
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in ids):
            raise invalid("primary key is int64, but IDs type mismatch")
    elif not all(isinstance(k, str) for k in ids):
        raise invalid("primary key is varchar, but IDs type mismatch")


def _anns_field(schema: CollectionSchema, name: str | None) -> FieldSchema:
    if name:
        field = schema.field(name)
        if field is None or not field.is_vector:
            raise invalid(f"failed to get field schema by name: fieldName({name}) not found")
        return field
    vectors = schema.vector_fields
    if len(vectors) != 1:
        raise invalid("multiple anns_fields exist, please specify a anns_field in search_params")
    return vectors[0]


def _queries(field: FieldSchema, column: pa.Array) -> QueryVectors:
    """Stored vectors as the query array the search path takes for this field type."""
    if field.dtype is DataType.SPARSE_FLOAT_VECTOR:
        entries = column.values
        return SparseQueries(
            offsets=column.offsets.to_numpy().astype(np.int64),
            indices=entries.field("index").to_numpy(zero_copy_only=False).astype(np.uint32),
            values=entries.field("value").to_numpy(zero_copy_only=False).astype(np.float32),
        )
    dtype = _DENSE_DTYPE[field.dtype]
    if pa.types.is_fixed_size_list(column.type):
        values = column.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    else:  # fixed-size binary (binary, float16, bfloat16): the rows' bytes end to end
        width = column.type.byte_width
        data = np.frombuffer(column.buffers()[1], dtype=np.uint8)
        values = np.ascontiguousarray(data[column.offset * width : (column.offset + len(column)) * width])
        values = values.view(dtype)
    return values.reshape(len(column), -1)
