"""Milvus's rules for schemas, checked before anything reaches the catalog (names: name_rules.py).

Every refusal is ParameterInvalid (1100) with Milvus's wording (``... : invalid parameter``).
``prepare_schema`` also assigns field ids the way Milvus does: 100, 101, ... in declaration
order.
"""

from __future__ import annotations

import math
from dataclasses import replace

from sheafdb.engine.name_rules import check_field_name
from sheafdb.engine.struct_rules import check_struct_field, count_struct_sub_fields, count_struct_vectors
from sheafdb.engine.text_rules import check_text_field, check_text_schema
from sheafdb.errors import ParameterInvalid, ParameterMissing, invalid
from sheafdb.schema import ARRAY_ELEMENT_TYPES, DYNAMIC_FIELD, CollectionSchema, DataType, FieldSchema
from sheafdb.timestamptz import parse_time

# Milvus 2.6's proxy.maxFieldNum and proxy.maxVectorFieldNum.
MAX_FIELDS = 256
MAX_VECTOR_FIELDS = 10
MAX_DIM = 32768
MAX_VARCHAR_LENGTH = 65535
MAX_ARRAY_CAPACITY = 4096
MAX_PARTITIONS = 1024
# Milvus's default number of partitions of a partition-key collection (gRPC create).
DEFAULT_PARTITION_KEY_PARTITIONS = 16
FIRST_FIELD_ID = 100


def prepare_schema(schema: CollectionSchema, collection_name: str = "") -> CollectionSchema:
    """Validate ``schema`` and return it with field ids 100, 101, ... assigned."""
    if not schema.fields:
        raise invalid("schema does not contain any field")
    if len(schema.fields) + count_struct_sub_fields(schema.fields) > MAX_FIELDS:
        raise invalid(f"maximum field's number should be limited to {MAX_FIELDS}")
    seen: set[str] = set()
    for f in schema.fields:
        check_field_name(f.name)
        if f.name in seen:
            raise invalid(f"duplicated field name {f.name} found")
        seen.add(f.name)
        if f.name == DYNAMIC_FIELD:
            raise invalid(f"field name {DYNAMIC_FIELD} is reserved for the dynamic field")
        _check_field(f, collection_name)
    primaries = [f for f in schema.fields if f.is_primary]
    if not primaries:
        raise invalid("primary key is not specified")
    if len(primaries) > 1:
        raise invalid(
            f"there are more than one primary key, field name = {primaries[0].name}, {primaries[1].name}"
        )
    pk = primaries[0]
    if pk.dtype not in (DataType.INT64, DataType.VARCHAR):
        raise invalid("the data type of primary key should be Int64 or VarChar")
    if any(f.auto_id for f in schema.fields if not f.is_primary):
        raise invalid("only primary field can speficy AutoID with True")
    vectors = schema.vector_fields
    if len(vectors) + count_struct_vectors(schema.fields) > MAX_VECTOR_FIELDS:
        raise invalid(f"maximum vector field's number should be limited to {MAX_VECTOR_FIELDS}")
    keys = [f for f in schema.fields if f.is_partition_key]
    if len(keys) > 1:
        raise invalid("there are more than one partition key field")
    if keys:
        key = keys[0]
        if key.is_primary:
            raise invalid("the partition key field must not be primary field")
        if key.dtype not in (DataType.INT64, DataType.VARCHAR):
            raise invalid("the data type of partition key should be Int64 or VarChar")
        if key.nullable:
            raise invalid("partition key field not support nullable")
    if len([f for f in schema.fields if f.is_clustering_key]) > 1:
        raise invalid("there are more than one clustering key field")
    check_text_schema(schema)
    return replace(schema, fields=_with_ids(schema.fields, FIRST_FIELD_ID))


def _with_ids(fields: tuple[FieldSchema, ...], first: int) -> tuple[FieldSchema, ...]:
    """Ids in declaration order; a struct array field's sub-fields take the ids after its own."""
    out: list[FieldSchema] = []
    next_id = first
    for f in fields:
        subs = tuple(replace(s, field_id=next_id + 1 + i) for i, s in enumerate(f.struct_fields))
        out.append(replace(f, field_id=next_id, struct_fields=subs))
        next_id += 1 + len(subs)
    return tuple(out)


def last_field_id(schema: CollectionSchema) -> int:
    return max(max((s.field_id for s in f.struct_fields), default=f.field_id) for f in schema.fields)


def check_added_field(schema: CollectionSchema, new_field: FieldSchema) -> FieldSchema:
    """add_collection_field: a nullable scalar (or vector) field; returns it with its id."""
    check_field_name(new_field.name)
    if schema.field(new_field.name) is not None:
        raise invalid(f"duplicated field name {new_field.name} found")
    if new_field.is_primary or new_field.is_partition_key:
        raise invalid("not support to add primary or partition key field")
    if new_field.dtype is DataType.ARRAY_OF_STRUCT:
        if not new_field.nullable:
            raise invalid(
                f"added struct field must be nullable, please check it, struct field name = {new_field.name}"
            )
        # An added field must be nullable, and struct array fields are not (Milvus 2.6).
        check_struct_field(new_field, "", _check_field)
    if not new_field.nullable:
        raise invalid("added field must be nullable, please check it")
    _check_field(new_field, "")
    check_text_field(new_field)
    if new_field.is_vector and len(schema.vector_fields) >= MAX_VECTOR_FIELDS:
        raise invalid(f"maximum vector field's number should be limited to {MAX_VECTOR_FIELDS}")
    return _with_ids((new_field,), last_field_id(schema) + 1)[0]


def partition_names(schema: CollectionSchema, num_partitions: int) -> tuple[str, ...]:
    """The partitions a new collection starts with."""
    if schema.partition_key_field is None:
        return ("_default",)
    count = num_partitions or DEFAULT_PARTITION_KEY_PARTITIONS
    if count > MAX_PARTITIONS:
        raise invalid(f"partition number ({count}) exceeds max configuration ({MAX_PARTITIONS})")
    return tuple(f"_default_{i}" for i in range(count))


def _check_field(f: FieldSchema, collection_name: str) -> None:
    # Milvus's rootcoord checks nulls and defaults first (checkFieldSchema), then the proxy
    # checks types and type params.
    if f.dtype is DataType.ARRAY_OF_STRUCT:
        check_struct_field(f, collection_name, _check_field)
        return
    type_label = milvus_type_name(f.dtype)
    if f.is_primary and f.nullable:
        raise invalid(f"primary field not support null, type:{type_label}, name:{f.name}")
    if f.default_value is not None:
        if f.is_primary:
            raise invalid(f"primary field not support default_value, type:{type_label}, name:{f.name}")
        if f.dtype in (DataType.ARRAY, DataType.JSON) or f.is_vector:
            raise invalid(f"type not support default_value, type:{type_label}, name:{f.name}")
    if f.dtype in (DataType.NONE, DataType.STRING):
        raise invalid(f"data type {f.dtype.name} of field {f.name} is not supported")
    if f.is_vector:
        _check_vector(f)
    if f.dtype is DataType.VARCHAR:
        _check_max_length(f, collection_name)
    if f.dtype is DataType.ARRAY:
        if f.element_type not in ARRAY_ELEMENT_TYPES:
            raise invalid(f"element type {f.element_type} of array field {f.name} is not supported")
        if f.element_type is DataType.VARCHAR:
            _check_max_length(f, collection_name)
        cap = f.max_capacity
        if cap is None:
            raise ParameterMissing(
                f"type param(max_capacity) should be specified for array field {f.name} of collection "
                f"{collection_name}: missing parameter"
            )
        if not 0 < cap <= MAX_ARRAY_CAPACITY:
            raise invalid(
                f"the maximum capacity specified for a Array should be in (0, {MAX_ARRAY_CAPACITY}]"
            )
    if f.auto_id and f.dtype not in (DataType.INT64, DataType.VARCHAR):
        raise invalid("the auto id can only be specified on field with int64 or varchar data type")
    if f.default_value is not None:
        _check_default(f)


def milvus_type_name(dtype: DataType) -> str:
    """The name Milvus prints for a data type (its protobuf enum name)."""
    return _MILVUS_TYPE_NAMES.get(dtype, dtype.name.title())


_MILVUS_TYPE_NAMES = {
    DataType.VARCHAR: "VarChar",
    DataType.JSON: "JSON",
    DataType.BINARY_VECTOR: "BinaryVector",
    DataType.FLOAT_VECTOR: "FloatVector",
    DataType.FLOAT16_VECTOR: "Float16Vector",
    DataType.BFLOAT16_VECTOR: "BFloat16Vector",
    DataType.SPARSE_FLOAT_VECTOR: "SparseFloatVector",
    DataType.INT8_VECTOR: "Int8Vector",
}

# The default value's wire type, as Milvus names it, and the field types that may hold it.
_DEFAULT_HOLDERS: dict[str, frozenset[DataType]] = {
    "DataType_Bool": frozenset({DataType.BOOL}),
    "DataType_Int": frozenset({DataType.INT8, DataType.INT16, DataType.INT32}),
    "DataType_Int64": frozenset({DataType.INT64}),
    "DataType_Float": frozenset({DataType.FLOAT}),
    "DataType_Double": frozenset({DataType.DOUBLE}),
    "DataType_VarChar": frozenset({DataType.VARCHAR, DataType.TIMESTAMPTZ}),
    "DataType_Timestamptz": frozenset({DataType.TIMESTAMPTZ}),
}


def check_default_wire_type(f: FieldSchema, wire_type: str) -> None:
    """A default value sent as ``wire_type`` (``DataType_Int`` ...) must suit the field's type;
    checked where the wire type is still known (the gRPC schema decoder), after the checks
    that refuse a default outright."""
    if f.is_primary or f.is_vector or f.dtype in (DataType.ARRAY, DataType.JSON):
        return  # refused by _check_field with Milvus's own message
    holders = _DEFAULT_HOLDERS.get(wire_type)
    if holders is not None and f.dtype not in holders:
        raise invalid(
            f"type ({milvus_type_name(f.dtype)}) of field ({f.name}) is not equal to the "
            f"type({wire_type}) of default_value"
        )


def _check_vector(f: FieldSchema) -> None:
    if f.dtype is DataType.SPARSE_FLOAT_VECTOR:
        return
    if f.dim is None:
        raise invalid(
            f"dimension is not defined in field type params of field {f.name}, check type param `dim`"
        )
    if f.dtype is DataType.BINARY_VECTOR:
        if f.dim % 8 or not 0 < f.dim <= MAX_DIM * 8:
            raise invalid(
                f"invalid dimension: {f.dim} of field {f.name}. binary vector dimension should be "
                f"multiple of 8 and in range 8 ~ {MAX_DIM * 8}"
            )
    elif not 2 <= f.dim <= MAX_DIM:
        raise invalid(
            f"invalid dimension: {f.dim} of field {f.name}. float vector dimension should be in range "
            f"2 ~ {MAX_DIM}"
        )


def _check_max_length(f: FieldSchema, collection_name: str) -> None:
    if f.max_length is None:
        raise ParameterMissing(
            f"type param(max_length) should be specified for the field({f.name}) of collection "
            f"{collection_name}: missing parameter"
        )
    if not 0 < f.max_length <= MAX_VARCHAR_LENGTH:
        raise invalid(
            f"the maximum length specified for the field({f.name}) should be in (0, {MAX_VARCHAR_LENGTH}], "
            f"but got {f.max_length} instead"
        )


def _check_default(f: FieldSchema) -> None:
    value = f.default_value
    ok = {
        DataType.BOOL: isinstance(value, bool),
        DataType.VARCHAR: isinstance(value, str),
        DataType.FLOAT: isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value),
        DataType.DOUBLE: isinstance(value, int | float) and not isinstance(value, bool),
        DataType.TIMESTAMPTZ: _is_iso_time(value),
    }.get(f.dtype)
    if f.dtype.is_integer:
        bits = {DataType.INT8: 8, DataType.INT16: 16, DataType.INT32: 32, DataType.INT64: 64}[f.dtype]
        ok = (
            isinstance(value, int)
            and not isinstance(value, bool)
            and -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)
        )
    if f.dtype in (DataType.INT8, DataType.INT16) and isinstance(value, int) and not isinstance(value, bool):
        bits = 8 if f.dtype is DataType.INT8 else 16
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        if not low <= value <= high:
            raise ParameterInvalid(
                "default value out of range: invalid parameter"
                f"[{value} out of range {low} <= value <= {high}]"
            )
    if not ok:
        raise invalid(
            f"type ({milvus_type_name(f.dtype)}) of field ({f.name}) is not equal to the "
            f"type({_python_default_type(value)}) of default_value"
        )
    if f.dtype is DataType.VARCHAR and f.max_length is not None and len(value.encode()) > f.max_length:
        raise ParameterInvalid(
            f"the length ({len(value.encode())}) of string exceeds max length ({f.max_length}): "
            "invalid parameter[expected=valid length string][actual=string length exceeds max length]"
        )


def _is_iso_time(value: object) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    try:
        parse_time(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def _python_default_type(value: object) -> str:
    """The wire type a default given as a plain value (REST) would travel as."""
    if isinstance(value, bool):
        return "DataType_Bool"
    if isinstance(value, int):
        return "DataType_Int64"
    if isinstance(value, float):
        return "DataType_Double"
    return "DataType_VarChar"
