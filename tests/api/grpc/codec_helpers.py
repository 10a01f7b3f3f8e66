"""Drive the codecs with pymilvus's own request building and result reading."""

from __future__ import annotations

from typing import Any

from pymilvus.client import entity_helper
from pymilvus.client.abstract import CollectionSchema as ClientSchema
from pymilvus.client.prepare import Prepare
from pymilvus.client.types import HybridExtraList
from pymilvus.client.utils import len_of
from pymilvus.grpc_gen import milvus_pb2

from sheafdb.api.grpc.schema_codec import schema_to_proto
from sheafdb.schema import CollectionSchema


def describe_dict(name: str, schema: CollectionSchema) -> dict[str, Any]:
    """What pymilvus makes of our DescribeCollection answer (its insert path uses this)."""
    response = milvus_pb2.DescribeCollectionResponse(schema=schema_to_proto(name, schema))
    return ClientSchema(raw=response).dict()


def insert_request(
    name: str, schema: CollectionSchema, rows: list[dict[str, Any]]
) -> milvus_pb2.InsertRequest:
    described = describe_dict(name, schema)
    return Prepare.row_insert_param(
        name, rows, "", described["fields"], enable_dynamic=described["enable_dynamic_field"]
    )


def read_query_results(response: milvus_pb2.QueryResults) -> list[dict[str, Any]]:
    """The rows ``MilvusClient.query`` would return for ``response`` (its reading steps)."""
    _, dynamic_fields = entity_helper.extract_dynamic_field_from_result(response)
    keys = [fd.field_name for fd in response.fields_data if fd.field_name != "$meta"]
    num_rows = len_of(response.fields_data[0])
    rows: list[dict[str, Any]] = [dict.fromkeys(keys) for _ in range(num_rows)]
    lazy = [fd for fd in response.fields_data if entity_helper.extract_row_data_from_fields_data_v2(fd, rows)]
    return list(HybridExtraList(lazy, rows, extra={}, dynamic_fields=dynamic_fields))
