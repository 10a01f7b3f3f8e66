"""JSON rows <-> Arrow columns, and JSON query vectors -> numpy.

Structural conversion only: the engine validates types, dims and lengths. Vectors go through
one ``numpy.asarray`` per column, never a Python loop per element.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from sheafdb.engine.models import EmbeddingListQueries, QueryVectors, SearchResult, SparseQueries, TextQueries
from sheafdb.engine.read.aggregation import aggregate_field
from sheafdb.engine.struct_index import struct_sub_of
from sheafdb.errors import RestInsertDataInvalid, RestRequestNotJson, invalid
from sheafdb.schema import DYNAMIC_FIELD, CollectionSchema, DataType, FieldSchema, split_struct_path
from sheafdb.timestamptz import times_to_text


def _insert_error(detail: object) -> RestInsertDataInvalid:
    return RestInsertDataInvalid(f"fail to deal the insert data, error: {detail}")


# -- JSON rows -> Arrow table -------------------------------------------------------------------


def rows_to_table(schema: CollectionSchema, data: Any) -> pa.Table:
    """``data`` (one object or a list of objects) as one column per given field, plus ``$meta``."""
    rows = [data] if isinstance(data, Mapping) else data
    if not isinstance(rows, list) or not rows or not all(isinstance(r, Mapping) for r in rows):
        raise _insert_error("data must be an object or a non-empty array of objects")
    columns: dict[str, pa.Array] = {}
    known = set()
    for f in schema.fields:
        known.add(f.name)
        if not any(f.name in row for row in rows):
            continue
        try:
            columns[f.name] = _column(f, [row.get(f.name) for row in rows])
        except (ValueError, TypeError, OverflowError, pa.ArrowException) as err:
            raise _insert_error(f"field {f.name}: {err}") from None
    extras = [{k: v for k, v in row.items() if k not in known} for row in rows]
    if any(extras):
        if not schema.enable_dynamic_field:
            raise _insert_error("has pass more field without dynamic schema, please check it")
        if any(DYNAMIC_FIELD in e for e in extras):
            raise invalid(f"dynamic field key {DYNAMIC_FIELD} cannot be set directly")
    if schema.enable_dynamic_field:
        columns[DYNAMIC_FIELD] = pa.array([json.dumps(e) for e in extras], type=pa.string())
    return pa.table(columns)


def _column(f: FieldSchema, values: list[Any]) -> pa.Array:
    dtype = f.dtype
    if dtype is DataType.ARRAY_OF_STRUCT:
        return pa.array(values)  # inferred; the engine checks and casts each sub-field
    if dtype.is_dense_vector and any(v is None for v in values):
        return pa.array(values, type=f.arrow_type())  # nullable vectors: rare, keep simple
    if dtype is DataType.FLOAT_VECTOR:
        return _fixed_list(np.asarray(values, dtype=np.float32))
    if dtype is DataType.INT8_VECTOR:
        return _fixed_list(np.asarray(values, dtype=np.int8))
    if dtype in (DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR, DataType.BINARY_VECTOR):
        return _fixed_binary(_dense_raw(f, values))
    if dtype is DataType.SPARSE_FLOAT_VECTOR:
        return pa.array([_sparse_row(v) for v in values], type=f.arrow_type())
    if dtype is DataType.JSON:
        return pa.array([None if v is None else json.dumps(v) for v in values], type=pa.string())
    if dtype is DataType.TIMESTAMPTZ:
        return pa.array(values, type=pa.string())  # ISO text, read by the engine
    if dtype.is_integer:
        # Arrow would truncate 1.5 to 1 (a duplicate key); Go's json.Number.Int64 refuses it.
        fraction = next((v for v in values if isinstance(v, float)), None)
        if fraction is not None:
            raise ValueError(f'strconv.ParseInt: parsing "{fraction!r}": invalid syntax')
    return pa.array(values, type=f.arrow_type())


def _fixed_list(matrix: np.ndarray) -> pa.Array:
    if matrix.ndim != 2:
        raise ValueError("vectors must all have the same dimension")
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), matrix.shape[1])


def _fixed_binary(matrix: np.ndarray) -> pa.Array:
    if matrix.ndim != 2:
        raise ValueError("vectors must all have the same dimension")
    width = matrix.shape[1] * matrix.dtype.itemsize
    data = pa.py_buffer(np.ascontiguousarray(matrix).tobytes())
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(matrix), [None, data])


def _dense_raw(f: FieldSchema, values: Any) -> np.ndarray:
    """Half-precision and binary vectors as the raw little-endian matrix the engine stores."""
    if f.dtype is DataType.FLOAT16_VECTOR:
        return np.asarray(values, dtype=np.float32).astype("<f2")
    if f.dtype is DataType.BFLOAT16_VECTOR:
        bits = np.asarray(values, dtype="<f4").view("<u4")
        # round to nearest even, then keep the upper 16 bits
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    return np.asarray(values, dtype=np.uint8)


def _sparse_row(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError("a sparse vector is an object {index: value}")
    pairs = sorted((int(k), float(v)) for k, v in value.items())
    return [{"index": k, "value": v} for k, v in pairs]


# -- JSON query vectors -> numpy ------------------------------------------------------------------


def query_vectors(f: FieldSchema, data: Any) -> QueryVectors:
    if not isinstance(data, list) or not data:
        raise invalid("data must be a non-empty array of vectors")
    if all(isinstance(v, str) for v in data):
        return TextQueries(tuple(data))  # a full-text search: the engine analyzes them
    if any(isinstance(v, str) for v in data):
        raise invalid("data mixes texts and vectors")
    if split_struct_path(f.name) is not None:
        return _embedding_lists(data)
    if f.dtype is DataType.SPARSE_FLOAT_VECTOR:
        rows = [_sparse_row(v) or [] for v in data]
        offsets = np.cumsum([0, *(len(r) for r in rows)], dtype=np.int64)
        indices = np.array([p["index"] for r in rows for p in r], dtype=np.uint32)
        values = np.array([p["value"] for r in rows for p in r], dtype=np.float32)
        return SparseQueries(offsets=offsets, indices=indices, values=values)
    try:
        if f.dtype is DataType.FLOAT_VECTOR:
            matrix = np.asarray(data, dtype=np.float32)
        elif f.dtype is DataType.INT8_VECTOR:
            matrix = np.asarray(data, dtype=np.int8)
        else:
            matrix = _dense_raw(f, data)
    except (ValueError, TypeError) as err:
        raise invalid(f"cannot read the query vectors: {err}") from None
    if matrix.ndim != 2:
        raise invalid("query vectors must all have the same dimension")
    return matrix


def _embedding_lists(data: list[Any]) -> EmbeddingListQueries:
    """Each query an embedding list: a list of vectors (one vector alone is a list of one)."""
    lists = []
    for query in data:
        try:
            matrix = np.asarray(query, dtype=np.float32)
        except (ValueError, TypeError) as err:
            raise invalid(f"cannot read the query embedding list: {err}") from None
        if matrix.ndim not in (1, 2) or matrix.size == 0:
            raise invalid("each query of an embedding list search is a non-empty list of vectors")
        lists.append(matrix.ravel())
    return EmbeddingListQueries(tuple(lists))


# -- Arrow -> JSON rows ---------------------------------------------------------------------------


def table_to_rows(
    schema: CollectionSchema, table: pa.Table, *, int64_as_number: bool = True
) -> list[dict[str, Any]]:
    """Each row as a flat object: schema fields by name, dynamic keys merged in.

    ``int64_as_number`` False renders Int64 fields as strings (``Accept-Type-Allow-Int64``)."""
    n = table.num_rows
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if name == DYNAMIC_FIELD:
            for row, text in zip(rows, column.to_pylist(), strict=True):
                if text:
                    row.update(json.loads(text))
            continue
        f = schema.field(name) or aggregate_field(schema, name)
        values = _column_values(f, column)
        if not int64_as_number and f is not None and f.dtype is DataType.INT64:
            values = int64_texts(values)
        for row, value in zip(rows, values, strict=True):
            row[name] = value
    return rows


def _column_values(f: FieldSchema | None, column: pa.Array) -> list[Any]:
    if not len(column):  # an empty result's column may carry no type (pa.null())
        return []
    if f is not None and f.dtype is DataType.TIMESTAMPTZ:
        return times_to_text(column).to_pylist()
    if f is None or column.null_count:
        values = column.to_pylist()
        if f is not None and f.dtype is DataType.JSON:
            return [None if v is None else json.loads(v) for v in values]
        return values
    dtype = f.dtype
    if dtype in (DataType.FLOAT_VECTOR, DataType.INT8_VECTOR):
        flat = column.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(column), -1).tolist()
    if dtype in (DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR, DataType.BINARY_VECTOR):
        width = column.type.byte_width
        raw = np.frombuffer(column.buffers()[1], dtype=np.uint8)
        raw = raw[column.offset * width : (column.offset + len(column)) * width].reshape(len(column), width)
        if dtype is DataType.FLOAT16_VECTOR:
            return raw.view("<f2").astype(np.float32).tolist()
        if dtype is DataType.BFLOAT16_VECTOR:
            return (raw.view("<u2").astype("<u4") << 16).view("<f4").tolist()
        return raw.tolist()
    if dtype is DataType.SPARSE_FLOAT_VECTOR:
        return [{str(p["index"]): p["value"] for p in row} for row in column.to_pylist()]
    if dtype is DataType.JSON:
        return [json.loads(v) for v in column.to_pylist()]
    return column.to_pylist()


def int64_texts(values: list[Any]) -> list[Any]:
    """Int64 values as decimal strings (nulls stay null)."""
    return [None if v is None else str(v) for v in values]


def search_hits(
    schema: CollectionSchema, result: SearchResult, *, int64_as_number: bool = True
) -> list[dict[str, Any]]:
    """All queries' hits, flattened in query order: ``{<pk>: id, "distance": score, ...fields}``.

    ``result.topks`` says how many of them belong to each query (the reply's ``topks``)."""
    pk = result.primary_field.name
    ids = result.ids.to_pylist()
    if not int64_as_number and result.primary_field.dtype is DataType.INT64:
        ids = int64_texts(ids)
    scores = np.asarray(result.scores, dtype=np.float32).tolist()
    hits = (
        table_to_rows(schema, result.fields, int64_as_number=int64_as_number)
        if result.fields.num_columns
        else [{} for _ in ids]
    )
    for hit, key, score in zip(hits, ids, scores, strict=True):
        hit[pk] = key
        hit["distance"] = score
    return hits


def vector_field(schema: CollectionSchema, name: str | None) -> FieldSchema:
    """The searched field: by name, or the only vector field. A struct array's vector sub-field
    (``chunks[emb]``) comes back under that path name."""
    if name:
        struct_sub = struct_sub_of(schema, name)
        if struct_sub is not None and struct_sub[1].is_vector:
            return replace(struct_sub[1], name=name)
        f = schema.field(name)
        if f is None or not f.is_vector:
            raise invalid(f"failed to get field schema by name: fieldName({name}) not found")
        return f
    vectors = schema.vector_fields
    if len(vectors) != 1:
        names = ", ".join(v.name for v in vectors)
        raise RestRequestNotJson(
            f"can only accept json format request, error: search without annsField, but already found "
            f"multiple vector fields: [{names},,,]"
        )
    return vectors[0]
