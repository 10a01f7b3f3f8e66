"""Engine results -> ``SearchResultData`` / ``QueryResults`` / ``MutationResult``, in bulk.

Scores go out as packed float bytes; ids and columns through ``field_codec``. pymilvus needs:
one ``topks`` entry per query (zeros included), ``primary_field_name`` for the hit key, and
for a query a ``FieldData`` for every output column even when no row matched.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from sheafdb.api.grpc.field_codec import arrow_to_field_data, dynamic_field_data, packed_field
from sheafdb.api.status import success
from sheafdb.engine.models import MutationResult, QueryResult, SearchResult
from sheafdb.schema import DYNAMIC_FIELD, CollectionSchema, DataType, FieldSchema

COUNT_STAR = "count(*)"


def ids_proto(ids: pa.Array | pa.ChunkedArray) -> schema_pb2.IDs:
    out = schema_pb2.IDs()
    if pa.types.is_integer(ids.type):
        out.int_id.data.extend(ids.to_numpy(zero_copy_only=False).astype(np.int64, copy=False).tolist())
    else:
        out.str_id.data.extend(ids.to_pylist())
    return out


def columns_proto(schema: CollectionSchema, table: pa.Table) -> list[schema_pb2.FieldData]:
    """Every column of a result table as FieldData (schema fields, ``$meta``, ``count(*)``)."""
    out: list[schema_pb2.FieldData] = []
    for name in table.column_names:
        column = table.column(name)
        if name == DYNAMIC_FIELD:
            out.append(dynamic_field_data(column))
            continue
        field = schema.field(name) or _computed_field(name, column.type)
        out.append(arrow_to_field_data(field, column))
    return out


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
) -> milvus_pb2.SearchResults:
    data = schema_pb2.SearchResultData(
        num_queries=result.nq,
        top_k=int(result.topks.max()) if result.nq else 0,
        primary_field_name=result.primary_field.name,
    )
    data.topks.extend(result.topks.astype(np.int64).tolist())
    data.ids.CopyFrom(ids_proto(result.ids))
    data.MergeFromString(packed_field(4, np.asarray(result.scores, dtype=np.float32)))
    fields, output_fields = with_primary_key(result)
    data.fields_data.extend(columns_proto(schema, fields))
    data.output_fields.extend(output_fields)
    if result.group_by_values is not None and group_by_field:
        field = schema.field(group_by_field) or _computed_field(group_by_field, result.group_by_values.type)
        data.group_by_field_value.CopyFrom(arrow_to_field_data(field, result.group_by_values))
    return milvus_pb2.SearchResults(
        status=success(), results=data, collection_name=collection, session_ts=session_ts
    )


def with_primary_key(result: SearchResult) -> tuple[pa.Table, tuple[str, ...]]:
    """Milvus 2.6 returns the primary key among the output fields of every search; the Node
    SDK takes a hit's key from there (pymilvus uses ``ids``)."""
    key = result.primary_field.name
    if key in result.fields.column_names:
        return result.fields, result.output_fields
    if result.fields.num_columns == 0:
        fields = pa.table({key: result.ids})
    else:
        fields = result.fields.append_column(key, result.ids)
    return fields, (*result.output_fields, key)


def query_results(
    schema: CollectionSchema, result: QueryResult, collection: str, session_ts: int
) -> milvus_pb2.QueryResults:
    out = milvus_pb2.QueryResults(
        status=success(),
        collection_name=collection,
        session_ts=session_ts,
        primary_field_name=schema.primary_field.name,
    )
    out.fields_data.extend(columns_proto(schema, result.table))
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
