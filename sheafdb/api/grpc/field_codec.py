"""Columns on the wire (``schema.FieldData``) <-> Arrow arrays, in bulk.

Decoding reads each protobuf repeated field once through numpy (upb exposes them to
``numpy.array`` at C speed) or joins the raw bytes; encoding writes packed float payloads as
raw bytes parsed by protobuf's C code and integer payloads through one ``extend``. Only
ARRAY and sparse vectors touch Python once per row (each row is its own message or blob);
nothing here loops over elements.

Nullable columns: on input pymilvus sends ``valid_data`` for every row and the values either
for every row or only for the valid ones (row inserts); both are accepted. On output scalars
carry a value for every row (nulls as zero values) and vectors only the valid rows, which is
how pymilvus reads them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, tzinfo

import numpy as np
import pyarrow as pa
from pymilvus.grpc_gen import schema_pb2

from sheafdb.errors import ParameterInvalid, invalid
from sheafdb.schema import DYNAMIC_FIELD, SPARSE_ARROW_TYPE, CollectionSchema, DataType, FieldSchema
from sheafdb.timestamptz import times_to_text

# The ScalarField member holding each scalar type's values.
_SCALAR_MEMBER: dict[DataType, str] = {
    DataType.BOOL: "bool_data",
    DataType.INT8: "int_data",
    DataType.INT16: "int_data",
    DataType.INT32: "int_data",
    DataType.INT64: "long_data",
    DataType.FLOAT: "float_data",
    DataType.DOUBLE: "double_data",
    DataType.VARCHAR: "string_data",
    DataType.STRING: "string_data",
    DataType.JSON: "json_data",
    DataType.TIMESTAMPTZ: "string_data",
}

# The widest type each ScalarField member can hold (a row's payload kind -> element type).
_ELEMENT_OF_MEMBER: dict[str, DataType] = {
    "bool_data": DataType.BOOL,
    "int_data": DataType.INT32,
    "long_data": DataType.INT64,
    "float_data": DataType.FLOAT,
    "double_data": DataType.DOUBLE,
    "string_data": DataType.VARCHAR,
}

_NUMPY_DTYPE: dict[DataType, type[np.generic]] = {
    DataType.BOOL: np.bool_,
    DataType.INT8: np.int8,
    DataType.INT16: np.int16,
    DataType.INT32: np.int32,
    DataType.INT64: np.int64,
    DataType.FLOAT: np.float32,
    DataType.DOUBLE: np.float64,
}

# The zero value a null scalar goes out as (every other scalar type: 0).
_NULL_FILL: dict[DataType, object] = {
    DataType.BOOL: False,
    DataType.VARCHAR: "",
    DataType.STRING: "",
    DataType.JSON: "null",
    DataType.TIMESTAMPTZ: "",
}

# ``$meta``, the dynamic keys of a row as one JSON object.
DYNAMIC_FIELD_SCHEMA = FieldSchema(DYNAMIC_FIELD, DataType.JSON)

# Members of FloatArray / DoubleArray whose payload is a packed run of fixed-width values.
_PACKED_FIXED = frozenset({DataType.FLOAT, DataType.DOUBLE})

# One (uint32 index, float32 value) pair of a sparse row, as Milvus packs it.
SPARSE_PAIR = np.dtype([("index", "<u4"), ("value", "<f4")])


# -- decoding ------------------------------------------------------------------------------


def fields_to_table(
    fields_data: Sequence[schema_pb2.FieldData], num_rows: int, schema: CollectionSchema | None = None
) -> pa.Table:
    """The columns of an insert/upsert request as one table (dynamic keys as ``$meta``).

    ``schema`` supplies what the wire may leave out (pymilvus sends no ARRAY element type)."""
    columns: dict[str, pa.Array] = {}
    for fd in fields_data:
        name = DYNAMIC_FIELD if fd.is_dynamic else fd.field_name
        if name in columns:
            raise invalid(f"duplicated field name {name} in the insert data")
        column = field_data_to_arrow(fd, None if schema is None else schema.field(name))
        if len(column) != num_rows:
            raise ParameterInvalid(
                f"the num_rows ({num_rows}) of field ({name}) is not equal to passed num_rows "
                f"({len(column)}): invalid parameter[expected={num_rows}][actual={len(column)}]"
            )
        columns[name] = column
    return pa.table(columns) if columns else pa.table({})


def field_data_to_arrow(fd: schema_pb2.FieldData, field: FieldSchema | None = None) -> pa.Array:
    """One FieldData as an Arrow array of the field type's layout (``FieldSchema.arrow_type``)."""
    dtype = _data_type(fd.type, fd.field_name)
    if dtype is DataType.ARRAY_OF_STRUCT:
        return decode_struct_column(fd, field)
    if dtype.is_vector:
        values = _decode_vectors(fd, dtype)
    elif dtype is DataType.ARRAY:
        values = decode_array_column(fd, _array_element(fd, field))
    else:
        values = _decode_scalars(fd, dtype)
    if len(fd.valid_data) == 0:
        return values
    return _apply_validity(values, np.array(fd.valid_data, dtype=np.bool_), fd.field_name)


def _data_type(raw: int, field_name: str) -> DataType:
    try:
        return DataType(raw)
    except ValueError:
        raise invalid(f"unsupported data type {raw} of field {field_name}") from None


def _decode_scalars(fd: schema_pb2.FieldData, dtype: DataType) -> pa.Array:
    member = _SCALAR_MEMBER.get(dtype)
    if member is None:
        raise invalid(f"unsupported data type {dtype.name} of field {fd.field_name}")
    payload = getattr(fd.scalars, member).data
    if dtype in (DataType.VARCHAR, DataType.STRING, DataType.TIMESTAMPTZ):
        # TIMESTAMPTZ travels as ISO text; the engine reads it in the collection's zone.
        return pa.array(list(payload), pa.string())
    if dtype is DataType.JSON:
        return _json_column(list(payload), fd.field_name)
    wide = np.array(payload, dtype=np.int64 if dtype.is_integer else _NUMPY_DTYPE[dtype])
    return _narrow(wide, dtype, fd.field_name)


def _narrow(values: np.ndarray, dtype: DataType, field_name: str) -> pa.Array:
    """INT8/INT16 travel as int32 on the wire; refuse values that do not fit the declared type."""
    target = _NUMPY_DTYPE[dtype]
    if dtype.is_integer and target is not np.int64 and len(values):
        info = np.iinfo(target)
        if values.min() < info.min or values.max() > info.max:
            raise invalid(
                f"the value of field {field_name} is out of range of {dtype.name} [{info.min}, {info.max}]"
            )
    return pa.array(values.astype(target, copy=False))


def _json_column(blobs: list[bytes], field_name: str) -> pa.Array:
    try:
        return pa.array(blobs, pa.binary()).cast(pa.string())
    except pa.ArrowInvalid:
        raise invalid(f"field {field_name} holds JSON that is not valid UTF-8") from None


def _array_element(fd: schema_pb2.FieldData, field: FieldSchema | None) -> DataType:
    """The element type: the schema's, else the wire's, else the first row's payload kind."""
    if field is not None and field.element_type is not None:
        return field.element_type
    if fd.scalars.array_data.element_type:
        return _data_type(fd.scalars.array_data.element_type, fd.field_name)
    for row in fd.scalars.array_data.data:
        kind = row.WhichOneof("data")
        if kind is not None:
            return _ELEMENT_OF_MEMBER.get(kind, DataType.NONE)
    return DataType.INT64


def decode_array_column(fd: schema_pb2.FieldData, element: DataType) -> pa.Array:
    member = _SCALAR_MEMBER.get(element)
    if member is None or element is DataType.JSON:
        raise invalid(f"unsupported element type {element.name} of array field {fd.field_name}")
    rows = fd.scalars.array_data.data
    # One pass per row (each row is its own ScalarField message), none per element.
    lengths = np.fromiter((len(getattr(r, member).data) for r in rows), dtype=np.int32, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    if element in (DataType.VARCHAR, DataType.STRING):
        flat: pa.Array = pa.array([s for r in rows for s in r.string_data.data], pa.string())
    else:
        parts = [np.array(getattr(r, member).data) for r in rows]
        wide_type = np.int64 if element.is_integer else _NUMPY_DTYPE[element]
        joined = np.concatenate(parts).astype(wide_type) if parts else np.zeros(0, dtype=wide_type)
        flat = _narrow(joined, element, fd.field_name)
    return pa.ListArray.from_arrays(pa.array(offsets), flat)


def _decode_vectors(fd: schema_pb2.FieldData, dtype: DataType) -> pa.Array:
    vectors = fd.vectors
    dim = int(vectors.dim)
    if dtype is DataType.SPARSE_FLOAT_VECTOR:
        return sparse_rows_to_arrow(list(vectors.sparse_float_vector.contents))
    if dim <= 0:
        raise invalid(f"the dim of vector field {fd.field_name} should be positive, got {dim}")
    if dtype is DataType.FLOAT_VECTOR:
        flat = np.array(vectors.float_vector.data, dtype=np.float32)
        return _fixed_list(flat, dim, fd.field_name)
    if dtype is DataType.INT8_VECTOR:
        return _fixed_list(np.frombuffer(vectors.int8_vector, dtype=np.int8), dim, fd.field_name)
    if dtype is DataType.BINARY_VECTOR:
        if dim % 8:
            raise invalid(f"the dim of binary vector field {fd.field_name} must be a multiple of 8")
        return _fixed_binary(vectors.binary_vector, dim // 8, fd.field_name)
    raw = vectors.float16_vector if dtype is DataType.FLOAT16_VECTOR else vectors.bfloat16_vector
    return _fixed_binary(raw, 2 * dim, fd.field_name)


def _fixed_list(flat: np.ndarray, dim: int, field_name: str) -> pa.Array:
    if len(flat) % dim:
        raise invalid(f"the length of vector field {field_name} ({len(flat)}) is not a multiple of dim {dim}")
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), dim)


def _fixed_binary(raw: bytes, width: int, field_name: str) -> pa.Array:
    if len(raw) % width:
        raise invalid(f"the byte length of vector field {field_name} is not a multiple of {width}")
    return pa.Array.from_buffers(pa.binary(width), len(raw) // width, [None, pa.py_buffer(raw)])


def sparse_rows_to_arrow(rows: Sequence[bytes]) -> pa.Array:
    """Milvus's sparse rows (packed little-endian uint32 index + float32 value pairs)."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    if np.any(lengths % SPARSE_PAIR.itemsize):
        raise invalid("a sparse float vector row is not a whole number of (index, value) pairs")
    pairs = np.frombuffer(b"".join(rows), dtype=SPARSE_PAIR)
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(lengths // SPARSE_PAIR.itemsize, out=offsets[1:])
    entries = pa.StructArray.from_arrays(
        [pa.array(pairs["index"].copy()), pa.array(pairs["value"].copy())], names=["index", "value"]
    )
    return pa.ListArray.from_arrays(pa.array(offsets), entries).cast(SPARSE_ARROW_TYPE)


def _apply_validity(values: pa.Array, valid: np.ndarray, field_name: str) -> pa.Array:
    num_rows = len(valid)
    num_valid = int(valid.sum())
    if len(values) == num_rows:
        return values.take(_positions(valid, np.arange(num_rows)))
    if len(values) != num_valid:
        raise invalid(
            f"field {field_name} has {len(values)} values but valid_data marks {num_valid} of "
            f"{num_rows} rows as valid"
        )
    # Compact values: row i takes value number (valid rows before it), null where not valid.
    return values.take(_positions(valid, np.cumsum(valid) - 1))


def _positions(valid: np.ndarray, index: np.ndarray) -> pa.Array:
    return pa.array(index.astype(np.int64), mask=~valid)


# -- encoding ------------------------------------------------------------------------------


def fill_field_data(
    fd: schema_pb2.FieldData,
    field: FieldSchema,
    column: pa.Array | pa.ChunkedArray,
    *,
    is_dynamic: bool = False,
    out_zone: tzinfo = UTC,
) -> None:
    """One result column written into the empty FieldData ``fd`` (``field`` gives the type;
    ``$meta`` is JSON, dynamic; TIMESTAMPTZ as ISO text in ``out_zone``). Replies pass
    ``fields_data.add()``: filled in place, never built apart and copied in."""
    array = _combine(column)
    dtype = field.dtype
    fd.type = dtype
    fd.field_name = field.name
    fd.field_id = field.field_id
    fd.is_dynamic = is_dynamic
    if dtype is DataType.ARRAY_OF_STRUCT:
        encode_struct_column(fd, field, array)
        return
    if dtype.is_vector:
        # Vectors list only the valid rows (pymilvus maps rows to them through valid_data).
        if field.nullable:
            fd.valid_data.extend(array.is_valid().to_numpy(zero_copy_only=False).tolist())
            array = array.drop_null()
        _encode_vectors(fd, field, array)
        return
    if field.nullable:
        fd.valid_data.extend(array.is_valid().to_numpy(zero_copy_only=False).tolist())
    if dtype is DataType.ARRAY:
        encode_array_column(fd, field, array)
    elif dtype is DataType.TIMESTAMPTZ:
        _encode_scalars(fd, dtype, times_to_text(array, out_zone))
    else:
        _encode_scalars(fd, dtype, array)


def _combine(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _encode_scalars(fd: schema_pb2.FieldData, dtype: DataType, array: pa.Array) -> None:
    member = _SCALAR_MEMBER[dtype]
    target = getattr(fd.scalars, member)
    # Presence must be set even for zero rows: pymilvus reads the oneof to size the column.
    target.SetInParent()
    if array.null_count:
        # Nulls go out as zero values (valid_data says which); fill_null costs a compute call.
        array = array.fill_null(_NULL_FILL.get(dtype, 0))
    if dtype in (DataType.VARCHAR, DataType.STRING, DataType.TIMESTAMPTZ):
        target.data.extend(array.to_pylist())
    elif dtype is DataType.JSON:
        target.data.extend(array.cast(pa.binary()).to_pylist())
    elif dtype in _PACKED_FIXED:
        numbers = array.to_numpy(zero_copy_only=False).astype(_NUMPY_DTYPE[dtype], copy=False)
        target.MergeFromString(packed_field(1, numbers))
    else:
        target.data.extend(array.to_numpy(zero_copy_only=False).tolist())


def encode_array_column(fd: schema_pb2.FieldData, field: FieldSchema, array: pa.Array) -> None:
    element = field.element_type or DataType.NONE
    fd.scalars.array_data.SetInParent()
    fd.scalars.array_data.element_type = int(element)
    member = _SCALAR_MEMBER[element]
    offsets = array.offsets.to_numpy()
    flat = array.values.to_pylist()
    # One ScalarField per row (Milvus's layout); empty rows for nulls.
    nulls = array.is_null().to_numpy(zero_copy_only=False)
    rows = fd.scalars.array_data.data
    for start, end, is_null in zip(offsets[:-1].tolist(), offsets[1:].tolist(), nulls.tolist(), strict=True):
        row = rows.add()
        getattr(row, member).data.extend([] if is_null else flat[start:end])


def _encode_vectors(fd: schema_pb2.FieldData, field: FieldSchema, array: pa.Array) -> None:
    dtype = field.dtype
    vectors = fd.vectors
    if dtype is DataType.SPARSE_FLOAT_VECTOR:
        contents, dim = sparse_arrow_to_rows(array)
        vectors.dim = dim
        vectors.sparse_float_vector.SetInParent()
        vectors.sparse_float_vector.dim = dim
        vectors.sparse_float_vector.contents.extend(contents)
        return
    vectors.dim = field.dim or 0
    if dtype is DataType.FLOAT_VECTOR:
        flat = _vector_values(array).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        vectors.float_vector.SetInParent()
        vectors.float_vector.MergeFromString(packed_field(1, flat))
    elif dtype is DataType.INT8_VECTOR:
        vectors.int8_vector = _vector_values(array).to_numpy(zero_copy_only=False).astype(np.int8).tobytes()
    else:
        raw = fixed_binary_bytes(array)
        if dtype is DataType.BINARY_VECTOR:
            vectors.binary_vector = raw
        elif dtype is DataType.FLOAT16_VECTOR:
            vectors.float16_vector = raw
        else:
            vectors.bfloat16_vector = raw


def _vector_values(array: pa.FixedSizeListArray) -> pa.Array:
    """The rows' values end to end: ``flatten()``, but without its per-call cost when no row is
    null (then the child array, cut to the rows, is exactly that)."""
    if array.null_count:
        return array.flatten()
    width = array.type.list_size
    return array.values.slice(array.offset * width, len(array) * width)


def fixed_binary_bytes(array: pa.Array) -> bytes:
    """The contiguous payload of a fixed-size binary array (no nulls), without a per-row copy."""
    width = array.type.byte_width
    data = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    return data[array.offset * width : (array.offset + len(array)) * width].tobytes()


def sparse_arrow_to_rows(array: pa.Array) -> tuple[list[bytes], int]:
    """Sparse rows as Milvus's packed bytes, and the dim (largest index + 1)."""
    offsets = array.offsets.to_numpy()
    entries = array.values
    pairs = np.empty(len(entries), dtype=SPARSE_PAIR)
    pairs["index"] = entries.field("index").to_numpy(zero_copy_only=False)
    pairs["value"] = entries.field("value").to_numpy(zero_copy_only=False)
    blob = pairs.tobytes()
    size = SPARSE_PAIR.itemsize
    rows = [
        blob[s * size : e * size] for s, e in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
    ]
    dim = int(pairs["index"].max()) + 1 if len(pairs) else 0
    return rows, dim


def packed_field(number: int, values: np.ndarray) -> bytes:
    """Protobuf wire bytes of a packed repeated fixed-width field holding ``values``."""
    raw = values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


# Struct array columns build on the ARRAY codec above (imported last: it imports this module).
from sheafdb.api.grpc.struct_field_codec import decode_struct_column, encode_struct_column  # noqa: E402
