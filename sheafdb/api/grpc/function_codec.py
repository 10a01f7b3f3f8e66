"""``schema.FunctionSchema`` (protobuf) <-> ``sheafdb.schema_functions.FunctionSchema``."""

from __future__ import annotations

from pymilvus.grpc_gen import common_pb2, schema_pb2

from sheafdb.errors import invalid
from sheafdb.schema import CollectionSchema
from sheafdb.schema_functions import FunctionSchema, FunctionType


def function_from_proto(proto: schema_pb2.FunctionSchema) -> FunctionSchema:
    try:
        kind = FunctionType(proto.type)
    except ValueError:
        raise invalid(f"unknown function type {proto.type} of function {proto.name}") from None
    return FunctionSchema(
        name=proto.name,
        type=kind,
        input_field_names=tuple(proto.input_field_names),
        output_field_names=tuple(proto.output_field_names),
        description=proto.description,
        params={kv.key: kv.value for kv in proto.params},
        function_id=proto.id,
    )


def function_to_proto(function: FunctionSchema, schema: CollectionSchema) -> schema_pb2.FunctionSchema:
    def ids(names: tuple[str, ...]) -> list[int]:
        return [f.field_id for name in names if (f := schema.field(name)) is not None]

    proto = schema_pb2.FunctionSchema(
        name=function.name,
        id=function.function_id,
        description=function.description,
        type=int(function.type),
        input_field_names=list(function.input_field_names),
        input_field_ids=ids(function.input_field_names),
        output_field_names=list(function.output_field_names),
        output_field_ids=ids(function.output_field_names),
    )
    proto.params.extend(common_pb2.KeyValuePair(key=k, value=v) for k, v in function.params.items())
    return proto
