"""``schema.StructArrayFieldSchema`` (protobuf) <-> a SheafDB ARRAY_OF_STRUCT ``FieldSchema``.

On the wire each sub-field is an ARRAY (scalar element type) or an ARRAY_OF_VECTOR (vector
element type) carrying the struct's ``max_capacity``; SheafDB keeps a sub-field as a plain
field of its element type. Milvus describes sub-fields under their global names
``struct[sub]`` (pymilvus strips the prefix); both forms are read.
"""

from __future__ import annotations

from collections.abc import Callable

from pymilvus.grpc_gen import common_pb2, schema_pb2

from sheafdb.errors import ParameterInvalid, ParameterMissing, invalid
from sheafdb.schema import DataType, FieldSchema, split_struct_path, struct_path

_ARRAY = 22
_ARRAY_OF_VECTOR = 106
_ARRAY_OF_STRUCT = 200
_STRUCT = 201
_WIRE_NAMES = {_ARRAY_OF_VECTOR: "ArrayOfVector", _ARRAY_OF_STRUCT: "ArrayOfStruct", _STRUCT: "Struct"}


def struct_from_proto(proto: schema_pb2.StructArrayFieldSchema) -> FieldSchema:
    subs: list[FieldSchema] = []
    capacity: int | None = None
    for sub in proto.fields:
        field, sub_capacity = _sub_from_proto(proto.name, sub)
        if capacity is not None and sub_capacity != capacity:
            raise invalid(
                "all sub-fields in struct array field must have the same max_capacity: "
                f"structName={proto.name}, subFieldName={sub.name}, max_capacity={sub_capacity}, "
                f"expected={capacity}"
            )
        capacity = sub_capacity
        subs.append(field)
    return FieldSchema(
        name=proto.name,
        dtype=DataType.ARRAY_OF_STRUCT,
        field_id=proto.fieldID,
        description=proto.description,
        max_capacity=capacity,
        nullable=proto.nullable,
        type_params={kv.key: kv.value for kv in proto.type_params},
        struct_fields=tuple(subs),
    )


def _sub_from_proto(struct_name: str, proto: schema_pb2.FieldSchema) -> tuple[FieldSchema, int]:
    if proto.data_type not in (_ARRAY, _ARRAY_OF_VECTOR):
        raise invalid(
            "fields in StructArrayField can only be array or array of struct, but field "
            f"{proto.name} is {_wire_name(proto.data_type)}"
        )
    if proto.element_type in (_ARRAY_OF_VECTOR, _ARRAY_OF_STRUCT, _ARRAY, _STRUCT):
        raise invalid(f"nested {_wire_name(proto.element_type)} is not supported for field {proto.name}")
    try:
        element = DataType(proto.element_type)
    except ValueError:
        raise invalid(f"element type {proto.element_type} of field {proto.name} is not supported") from None
    params = {kv.key: kv.value for kv in proto.type_params}
    if "max_capacity" not in params:
        raise ParameterMissing(
            f"type param(max_capacity) should be specified for array field {proto.name} of collection : "
            "missing parameter"
        )
    typed = {
        key: _int(proto.name, key, params.pop(key))
        for key in ("dim", "max_length", "max_capacity")
        if key in params
    }
    split = split_struct_path(proto.name)
    name = split[1] if split is not None and split[0] == struct_name else proto.name
    field = FieldSchema(
        name=name,
        dtype=element,
        field_id=proto.fieldID,
        description=proto.description,
        is_primary=proto.is_primary_key,
        auto_id=proto.autoID,
        dim=typed.get("dim"),
        max_length=typed.get("max_length"),
        nullable=proto.nullable,
        default_value=True if proto.HasField("default_value") else None,
        is_partition_key=proto.is_partition_key,
        is_clustering_key=proto.is_clustering_key,
        type_params=params,
    )
    return field, typed["max_capacity"]


def _wire_name(value: int) -> str:
    if value in _WIRE_NAMES:
        return _WIRE_NAMES[value]
    try:
        return schema_pb2.DataType.Name(value)
    except ValueError:
        return str(value)


def _int(field_name: str, key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        if key == "max_capacity":
            raise invalid(f"the value for max_capacity of field {field_name} must be an integer") from None
        raise ParameterInvalid(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def struct_to_proto(
    field: FieldSchema, field_to_proto: Callable[[FieldSchema], schema_pb2.FieldSchema]
) -> schema_pb2.StructArrayFieldSchema:
    proto = schema_pb2.StructArrayFieldSchema(
        fieldID=field.field_id, name=field.name, description=field.description, nullable=field.nullable
    )
    proto.type_params.extend(common_pb2.KeyValuePair(key=k, value=v) for k, v in field.type_params.items())
    for sub in field.struct_fields:
        out = field_to_proto(sub)
        out.name = struct_path(field.name, sub.name)
        out.data_type = _ARRAY_OF_VECTOR if sub.is_vector else _ARRAY
        out.element_type = int(sub.dtype)
        out.type_params.append(common_pb2.KeyValuePair(key="max_capacity", value=str(field.max_capacity)))
        proto.fields.append(out)
    return proto
