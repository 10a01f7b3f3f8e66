"""``schema.CollectionSchema`` (protobuf) <-> ``sheafdb.schema.CollectionSchema``.

Type params travel as string key/values: ``dim``, ``max_length`` and ``max_capacity`` become
typed attributes, every other key (``mmap.enabled``, analyzer settings ...) is kept verbatim in
``FieldSchema.type_params``. Milvus does not list the dynamic field ``$meta`` in a described
schema (pymilvus would then demand it on insert), so it is neither read nor written here.
"""

from __future__ import annotations

import json
from typing import Any

from pymilvus.grpc_gen import common_pb2, schema_pb2

from sheafdb.api.grpc.function_codec import function_from_proto, function_to_proto
from sheafdb.api.grpc.struct_schema_codec import struct_from_proto, struct_to_proto
from sheafdb.engine.ddl_rules import check_default_wire_type
from sheafdb.errors import ParameterInvalid, invalid
from sheafdb.schema import DYNAMIC_FIELD, CollectionSchema, DataType, FieldSchema

_TYPED_PARAMS = ("dim", "max_length", "max_capacity")


def schema_from_proto(proto: schema_pb2.CollectionSchema) -> CollectionSchema:
    fields = tuple(field_from_proto(f) for f in proto.fields if not (f.is_dynamic or f.name == DYNAMIC_FIELD))
    fields += tuple(struct_from_proto(s) for s in proto.struct_array_fields)
    return CollectionSchema(
        fields=fields,
        description=proto.description,
        enable_dynamic_field=proto.enable_dynamic_field,
        functions=tuple(function_from_proto(f) for f in proto.functions),
    )


def field_from_proto(proto: schema_pb2.FieldSchema) -> FieldSchema:
    try:
        dtype = DataType(proto.data_type)
    except ValueError:
        raise invalid(f"data type {proto.data_type} of field {proto.name} is not supported") from None
    params = {kv.key: kv.value for kv in proto.type_params}
    typed = {key: _int_param(proto.name, key, params.pop(key)) for key in _TYPED_PARAMS if key in params}
    element: DataType | None = None
    if dtype is DataType.ARRAY:
        try:
            element = DataType(proto.element_type)
        except ValueError:
            raise invalid(
                f"element type {proto.element_type} of field {proto.name} is not supported"
            ) from None
    field = FieldSchema(
        name=proto.name,
        dtype=dtype,
        field_id=proto.fieldID,
        description=proto.description,
        is_primary=proto.is_primary_key,
        auto_id=proto.autoID,
        dim=typed.get("dim"),
        max_length=typed.get("max_length"),
        element_type=element,
        max_capacity=typed.get("max_capacity"),
        nullable=proto.nullable,
        default_value=default_from_proto(dtype, proto) if proto.HasField("default_value") else None,
        is_partition_key=proto.is_partition_key,
        is_clustering_key=proto.is_clustering_key,
        type_params=params,
    )
    if proto.HasField("default_value"):
        wire = _DEFAULT_WIRE_TYPES.get(proto.default_value.WhichOneof("data") or "")
        if wire is not None:
            check_default_wire_type(field, wire)
    return field


# A default value's ValueField member -> the type name Milvus's messages give it.
_DEFAULT_WIRE_TYPES = {
    "bool_data": "DataType_Bool",
    "int_data": "DataType_Int",
    "long_data": "DataType_Int64",
    "float_data": "DataType_Float",
    "double_data": "DataType_Double",
    "string_data": "DataType_VarChar",
    "timestamptz_data": "DataType_Timestamptz",
}


def _int_param(field_name: str, key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        if key == "max_capacity":
            raise invalid(f"the value for max_capacity of field {field_name} must be an integer") from None
        # Milvus passes Go's own parse error through for max_length and dim.
        raise ParameterInvalid(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def default_from_proto(dtype: DataType, proto: schema_pb2.FieldSchema) -> Any:
    value = proto.default_value
    which = value.WhichOneof("data")
    if which is None:
        return None
    raw = getattr(value, which)
    if dtype is DataType.JSON:
        # Refused by the schema rules (Milvus has no JSON defaults); kept as its text, so a
        # default that is not JSON reaches them instead of failing here.
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return raw


def schema_to_proto(name: str, schema: CollectionSchema) -> schema_pb2.CollectionSchema:
    proto = schema_pb2.CollectionSchema(
        name=name,
        description=schema.description,
        autoID=schema.auto_id,
        enable_dynamic_field=schema.enable_dynamic_field,
    )
    proto.fields.extend(field_to_proto(f) for f in schema.fields if not f.struct_fields)
    proto.struct_array_fields.extend(
        struct_to_proto(f, field_to_proto) for f in schema.fields if f.struct_fields
    )
    for f in proto.fields:
        f.is_function_output = schema.is_function_output(f.name)
    proto.functions.extend(function_to_proto(f, schema) for f in schema.functions)
    return proto


def field_to_proto(field: FieldSchema) -> schema_pb2.FieldSchema:
    proto = schema_pb2.FieldSchema(
        fieldID=field.field_id,
        name=field.name,
        is_primary_key=field.is_primary,
        description=field.description,
        data_type=int(field.dtype),
        autoID=field.auto_id,
        element_type=int(field.element_type) if field.element_type is not None else 0,
        is_partition_key=field.is_partition_key,
        is_clustering_key=field.is_clustering_key,
        nullable=field.nullable,
    )
    typed = {"dim": field.dim, "max_length": field.max_length, "max_capacity": field.max_capacity}
    params = {key: str(value) for key, value in typed.items() if value is not None}
    params.update(field.type_params)
    proto.type_params.extend(common_pb2.KeyValuePair(key=k, value=v) for k, v in params.items())
    if field.default_value is not None:
        proto.default_value.CopyFrom(default_to_proto(field.dtype, field.default_value))
    return proto


def default_to_proto(dtype: DataType, value: Any) -> schema_pb2.ValueField:
    if dtype is DataType.BOOL:
        return schema_pb2.ValueField(bool_data=bool(value))
    if dtype in (DataType.INT8, DataType.INT16, DataType.INT32):
        return schema_pb2.ValueField(int_data=int(value))
    if dtype is DataType.INT64:
        return schema_pb2.ValueField(long_data=int(value))
    if dtype is DataType.FLOAT:
        return schema_pb2.ValueField(float_data=float(value))
    if dtype is DataType.DOUBLE:
        return schema_pb2.ValueField(double_data=float(value))
    if dtype in (DataType.VARCHAR, DataType.STRING, DataType.TIMESTAMPTZ):
        return schema_pb2.ValueField(string_data=str(value))
    if dtype is DataType.JSON:
        return schema_pb2.ValueField(bytes_data=json.dumps(value).encode())
    raise invalid(f"a default value is not supported for data type {dtype.name}")
