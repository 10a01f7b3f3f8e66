"""Struct array columns on the wire (``FieldData.struct_arrays``) <-> Arrow ``list<struct>``.

Milvus sends a struct array field column-wise: one FieldData per sub-field, an ARRAY (one
ScalarField per row) for a scalar sub-field and an ARRAY_OF_VECTOR (one VectorField per row,
its vectors end to end) for a vector sub-field. SheafDB stores the field as one Arrow column,
a list of struct elements per row, so a row's elements stay together through every layer.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pymilvus.grpc_gen import schema_pb2

from sheafdb.api.grpc.field_codec import decode_array_column, encode_array_column, packed_field
from sheafdb.errors import invalid
from sheafdb.schema import DataType, FieldSchema, struct_path

ARRAY_WIRE = 22
ARRAY_OF_VECTOR_WIRE = 106


def _sub_name(struct_name: str, wire_name: str) -> str:
    prefix = f"{struct_name}["
    return (
        wire_name[len(prefix) : -1] if wire_name.startswith(prefix) and wire_name.endswith("]") else wire_name
    )


def decode_struct_column(fd: schema_pb2.FieldData, field: FieldSchema | None) -> pa.Array:
    """One ARRAY_OF_STRUCT FieldData as ``list<struct<sub...>>`` (rows as the sub-fields say)."""
    if field is None or field.dtype is not DataType.ARRAY_OF_STRUCT:
        raise invalid(f"field {fd.field_name} is not a struct array field of the collection")
    given = {_sub_name(field.name, sub.field_name): sub for sub in fd.struct_arrays.fields}
    expected = [s.name for s in field.struct_fields]
    unknown = sorted(set(given) - set(expected))
    if unknown:
        raise invalid(f"sub-field {unknown[0]} does not exist in struct array field {field.name}")
    missing = [name for name in expected if name not in given]
    if missing:
        raise invalid(
            f"sub-field {missing[0]} of struct array field {field.name} is missing in the insert data"
        )
    lists = [_decode_sub(field, sub, given[sub.name]) for sub in field.struct_fields]
    offsets = lists[0].offsets
    for sub, column in zip(field.struct_fields, lists, strict=True):
        if len(column) != len(lists[0]) or not column.offsets.equals(offsets):
            raise invalid(
                f"the sub-fields of struct array field {field.name} hold different numbers of "
                f"elements (sub-field {sub.name})"
            )
    elements = pa.StructArray.from_arrays(
        [column.values for column in lists],
        fields=[pa.field(s.name, s.arrow_type()) for s in field.struct_fields],
    )
    return pa.ListArray.from_arrays(offsets, elements)


def _decode_sub(field: FieldSchema, sub: FieldSchema, fd: schema_pb2.FieldData) -> pa.ListArray:
    path = struct_path(field.name, sub.name)
    if not sub.is_vector:
        if fd.type not in (0, ARRAY_WIRE):
            raise invalid(f"the data type of field {path} should be Array, but got {fd.type}")
        column = decode_array_column(fd, sub.dtype)
        return (
            column if column.type == pa.list_(sub.arrow_type()) else column.cast(pa.list_(sub.arrow_type()))
        )
    vectors = fd.vectors.vector_array
    dim = sub.dim or 0
    rows = vectors.data
    for row in rows:
        width = int(row.dim or vectors.dim or dim)
        if width != dim:
            raise invalid(f"the dim ({width}) of field data({path}) is not equal to schema dim ({dim})")
    lengths = np.fromiter((len(row.float_vector.data) for row in rows), dtype=np.int64, count=len(rows))
    if np.any(lengths % dim):
        raise invalid(f"the length of vector field {path} is not a multiple of dim {dim}")
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(lengths // dim, out=offsets[1:])
    parts = [np.array(row.float_vector.data, dtype=np.float32) for row in rows]
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.FixedSizeListArray.from_arrays(pa.array(flat), dim))


def encode_struct_column(fd: schema_pb2.FieldData, field: FieldSchema, array: pa.Array) -> None:
    """Fill ``fd`` (type and name already set) with the rows of a ``list<struct>`` column."""
    array = array.fill_null([]) if array.null_count else array
    offsets = pa.array(array.offsets.to_numpy())
    elements = array.values
    # The column may hold only the sub-fields an output named (``chunks[text]``).
    present = {elements.type.field(i).name: i for i in range(elements.type.num_fields)}
    for sub in field.struct_fields:
        index = present.get(sub.name)
        if index is None:
            continue
        out = fd.struct_arrays.fields.add()
        out.field_name = struct_path(field.name, sub.name)
        out.field_id = sub.field_id
        column = pa.ListArray.from_arrays(offsets, elements.field(index))
        if sub.is_vector:
            out.type = ARRAY_OF_VECTOR_WIRE
            _encode_vector_rows(out, sub, column)
        else:
            out.type = ARRAY_WIRE
            encode_array_column(out, FieldSchema(sub.name, DataType.ARRAY, element_type=sub.dtype), column)


def _encode_vector_rows(fd: schema_pb2.FieldData, sub: FieldSchema, column: pa.ListArray) -> None:
    vectors = fd.vectors.vector_array
    vectors.dim = sub.dim or 0
    vectors.element_type = int(sub.dtype)
    fd.vectors.dim = sub.dim or 0
    offsets = column.offsets.to_numpy()
    flat = column.values.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    dim = sub.dim or 0
    for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        row = vectors.data.add()
        row.dim = dim
        row.float_vector.SetInParent()
        row.float_vector.MergeFromString(packed_field(1, flat[start * dim : end * dim]))
