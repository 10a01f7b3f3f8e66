"""Engine results -> ``SearchResultData`` / ``QueryResults`` / ``MutationResult``, in bulk.

Scores go out as packed float bytes; ids and columns through ``field_codec``. pymilvus needs:
one ``topks`` entry per query (zeros included), ``primary_field_name`` for the hit key, and
for a query a ``FieldData`` for every output column even when no row matched.
"""

from __future__ import annotations

from datetime import UTC, tzinfo

import numpy as np
import pyarrow as pa
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from sheafdb.api.grpc.field_codec import DYNAMIC_FIELD_SCHEMA, fill_field_data, packed_field
from sheafdb.api.status import success
from sheafdb.engine.models import MutationResult, QueryResult, SearchResult
from sheafdb.engine.read.aggregation import aggregate_field
from sheafdb.schema import DYNAMIC_FIELD, CollectionSchema, DataType, FieldSchema

COUNT_STAR = "count(*)"


def ids_proto(ids: pa.Array | pa.ChunkedArray) -> schema_pb2.IDs:
    out = schema_pb2.IDs()
    _fill_ids(out, ids.type, _key_values(ids))
    return out


def _key_values(ids: pa.Array | pa.ChunkedArray) -> list[int] | list[str]:
    """Primary keys as Python values, converted once for ``IDs`` and the key's column."""
    if pa.types.is_integer(ids.type):
        return ids.to_numpy(zero_copy_only=False).astype(np.int64, copy=False).tolist()
    return ids.to_pylist()


def _fill_ids(out: schema_pb2.IDs, key_type: pa.DataType, keys: list[int] | list[str]) -> None:
    if pa.types.is_integer(key_type):
        out.int_id.data.extend(keys)
    else:
        out.str_id.data.extend(keys)


def fill_columns(
    target: RepeatedCompositeFieldContainer[schema_pb2.FieldData],
    schema: CollectionSchema,
    table: pa.Table,
    out_zone: tzinfo = UTC,
) -> None:
    """Every column of a result table as FieldData (schema fields, ``$meta``, ``count(*)``),
    each written in place into ``target.add()`` (TIMESTAMPTZ as ISO text in ``out_zone``)."""
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name == DYNAMIC_FIELD:
            fill_field_data(target.add(), DYNAMIC_FIELD_SCHEMA, column, is_dynamic=True)
            continue
        field = schema.field(name) or aggregate_field(schema, name) or _computed_field(name, column.type)
        fill_field_data(target.add(), field, column, out_zone=out_zone)


def _computed_field(name: str, arrow_type: pa.DataType) -> FieldSchema:
    """Columns that are not schema fields (``count(*)``) are typed from their Arrow type."""
    if pa.types.is_integer(arrow_type):
        return FieldSchema(name, DataType.INT64)
    if pa.types.is_floating(arrow_type):
        return FieldSchema(name, DataType.DOUBLE)
    return FieldSchema(name, DataType.VARCHAR)


def search_results(
    schema: CollectionSchema,
    result: SearchResult,
    collection: str,
    session_ts: int,
    group_by_field: str | None = None,
    out_zone: tzinfo = UTC,
) -> milvus_pb2.SearchResults:
    """Built in place (no message copied into another); ``ids`` and the primary key's column
    share one conversion of the keys."""
    out = milvus_pb2.SearchResults(collection_name=collection, session_ts=session_ts)
    out.status.SetInParent()  # success: the empty Status, present
    data = out.results
    topks = result.topks.astype(np.int64, copy=False).tolist()
    data.num_queries = len(topks)
    data.top_k = max(topks, default=0)
    key = result.primary_field
    data.primary_field_name = key.name
    data.topks.extend(topks)
    keys = _key_values(result.ids)
    _fill_ids(data.ids, result.ids.type, keys)
    data.MergeFromString(packed_field(4, np.asarray(result.scores, dtype=np.float32)))
    fill_columns(data.fields_data, schema, result.fields, out_zone)
    data.output_fields.extend(result.output_fields)
    # Milvus 2.6 returns the primary key among the output fields of every search; the Node
    # SDK takes a hit's key from there (pymilvus uses ``ids``).
    if key.name not in result.fields.column_names:
        _fill_key_column(data.fields_data.add(), schema.field(key.name) or key, keys)
        data.output_fields.append(key.name)
    if result.group_by_values is not None and group_by_field:
        field = schema.field(group_by_field) or _computed_field(group_by_field, result.group_by_values.type)
        fill_field_data(data.group_by_field_value, field, result.group_by_values, out_zone=out_zone)
    return out


def _fill_key_column(fd: schema_pb2.FieldData, key: FieldSchema, keys: list[int] | list[str]) -> None:
    """The primary key's column from the converted keys (a key is never null): what
    ``fill_field_data`` writes for it, without converting the keys a second time."""
    fd.type = key.dtype
    fd.field_name = key.name
    fd.field_id = key.field_id
    member = fd.scalars.string_data if key.dtype is DataType.VARCHAR else fd.scalars.long_data
    member.SetInParent()
    member.data.extend(keys)


def query_results(
    schema: CollectionSchema, result: QueryResult, collection: str, session_ts: int, out_zone: tzinfo = UTC
) -> milvus_pb2.QueryResults:
    out = milvus_pb2.QueryResults(
        collection_name=collection, session_ts=session_ts, primary_field_name=schema.primary_field.name
    )
    out.status.SetInParent()  # success: the empty Status, present
    fill_columns(out.fields_data, schema, result.table, out_zone)
    out.output_fields.extend(result.output_fields)
    return out


def mutation_result(result: MutationResult, kind: str) -> milvus_pb2.MutationResult:
    out = milvus_pb2.MutationResult(status=success(), timestamp=result.timestamp)
    # Milvus >= 2.3.2 lists no keys for a delete; pymilvus would hand them back as a list.
    if kind != "delete":
        out.IDs.CopyFrom(ids_proto(result.ids))
    if kind == "insert":
        out.insert_cnt = result.count
    elif kind == "upsert":
        out.upsert_cnt = result.count
    else:
        out.delete_cnt = result.count
    return out
