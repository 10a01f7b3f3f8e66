"""Milvus's rules for struct array fields (an ARRAY of STRUCT), checked at create time.

A struct array field holds, per row, up to ``max_capacity`` elements sharing one struct schema
of scalar sub-fields (BOOL, INT8..INT64, FLOAT, DOUBLE, VARCHAR) and FLOAT_VECTOR sub-fields
(Milvus 2.6's "Array of Structs" page). The field is not nullable and takes no default; its
sub-fields are neither primary, partition nor clustering keys, nor auto id. The texts are
Milvus's proxy's (``ValidateStructArrayField`` / ``ValidateFieldsInStruct``).
"""

from __future__ import annotations

from collections.abc import Callable

from sheafdb.engine.name_rules import check_field_name
from sheafdb.errors import ParameterMissing, invalid
from sheafdb.schema import ARRAY_ELEMENT_TYPES, DataType, FieldSchema

# The element types a struct's sub-fields may have (Milvus 2.6 docs: "Array of Structs").
STRUCT_VECTOR_TYPES = frozenset({DataType.FLOAT_VECTOR})
MAX_STRUCT_CAPACITY = 4096


def check_struct_field(
    f: FieldSchema, collection_name: str, check_sub: Callable[[FieldSchema, str], None]
) -> None:
    """``check_sub(sub, collection_name)`` is the ordinary field check, run on each sub-field
    seen as a plain field of its element type (dims, VARCHAR max_length)."""
    if not f.struct_fields:
        raise invalid(f"struct array field {f.name} has no sub-fields")
    if f.nullable:
        raise invalid(f"struct array field {f.name} does not support nullable")
    if f.default_value is not None:
        raise invalid(f"type not support default_value, type:ArrayOfStruct, name:{f.name}")
    cap = f.max_capacity
    if cap is None:
        raise ParameterMissing(
            f"type param(max_capacity) should be specified for array field {f.name} of collection "
            f"{collection_name}: missing parameter"
        )
    if not 0 < cap <= MAX_STRUCT_CAPACITY:
        raise invalid(f"the maximum capacity specified for a Array should be in (0, {MAX_STRUCT_CAPACITY}]")
    names: set[str] = set()
    for sub in f.struct_fields:
        check_field_name(sub.name)
        if sub.name in names:
            raise invalid(f"duplicated field name {sub.name} found")
        names.add(sub.name)
        _check_sub_field(f, sub)
        check_sub(sub, collection_name)


def _check_sub_field(struct: FieldSchema, sub: FieldSchema) -> None:
    if sub.is_primary:
        raise invalid(f"primary key is not supported for struct field, field name = {sub.name}")
    if sub.auto_id:
        raise invalid(f"autoID is not supported for struct field, field name = {sub.name}")
    if sub.is_partition_key or sub.is_clustering_key:
        raise invalid(
            f"partition key or clustering key is not supported for struct field, field name = {sub.name}"
        )
    if sub.nullable:
        raise invalid(
            "sub-field in non-nullable struct cannot be nullable individually, set nullable on the "
            f"struct instead: structName={struct.name}, subFieldName={sub.name}"
        )
    if sub.default_value is not None:
        raise invalid(f"type not support default_value, type:Array, name:{sub.name}")
    if sub.dtype in (DataType.ARRAY, DataType.ARRAY_OF_STRUCT) or sub.struct_fields:
        raise invalid(f"nested ArrayOfStruct is not supported for field {sub.name}")
    if sub.is_vector and sub.dtype not in STRUCT_VECTOR_TYPES:
        raise invalid(
            f"Unsupported element type {sub.dtype.name} of ArrayOfVector field {sub.name}, only "
            "FloatVector is supported"
        )
    if not sub.is_vector and sub.dtype not in ARRAY_ELEMENT_TYPES:
        raise invalid(f"element type {sub.dtype.name} of array field {sub.name} is not supported")


def count_struct_vectors(fields: tuple[FieldSchema, ...]) -> int:
    return sum(1 for f in fields for s in f.struct_fields if s.is_vector)


def count_struct_sub_fields(fields: tuple[FieldSchema, ...]) -> int:
    return sum(len(f.struct_fields) for f in fields)
