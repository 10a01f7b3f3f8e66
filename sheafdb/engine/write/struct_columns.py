"""Checking a struct array column (ARRAY of STRUCT) of a write before anything is stored.

The column arrives as ``list<struct<...>>``: from gRPC already in the stored layout, from REST
as JSON inferred by Arrow (vectors as ``list<double>``, integers as int64). Each sub-field is
checked and cast as a plain field of its element type would be (VARCHAR byte lengths, vector
dims and finiteness), the element count per row against ``max_capacity``; the result is the
stored layout, ``FieldSchema.arrow_type()``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.engine.finite_vectors import check_floats
from sheafdb.errors import invalid
from sheafdb.schema import DataType, FieldSchema, struct_path


def check_struct_column(f: FieldSchema, col: pa.Array) -> pa.Array:
    if pa.types.is_null(col.type):
        return pa.nulls(len(col), f.arrow_type())
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)) or not (
        pa.types.is_struct(col.type.value_type) or pa.types.is_null(col.type.value_type)
    ):
        raise invalid(f"the data type of field {f.name} should be an array of struct, but got {col.type}")
    lengths = pc.list_value_length(col)
    over = pc.greater(lengths, f.max_capacity or 0)
    if pc.any(over).as_py():
        row = pc.index(over, True).as_py()
        raise invalid(
            f"length of struct array field {f.name} exceeds max capacity, row number: {row}, "
            f"length: {lengths[row].as_py()}, max capacity: {f.max_capacity}"
        )
    elements = col.flatten()
    if pa.types.is_null(elements.type):
        if len(elements):
            raise invalid(f"an element of struct array field {f.name} is null")
        children = [pa.array([], s.arrow_type()) for s in f.struct_fields]
    else:
        if elements.null_count:
            raise invalid(f"an element of struct array field {f.name} is null")
        given = [elements.type.field(i).name for i in range(elements.type.num_fields)]
        known = {s.name for s in f.struct_fields}
        extra = [name for name in given if name not in known]
        if extra:
            raise invalid(f"sub-field {extra[0]} does not exist in struct array field {f.name}")
        children = []
        for sub in f.struct_fields:
            if sub.name not in given:
                raise invalid(
                    f"sub-field {sub.name} of struct array field {f.name} is missing in the insert data"
                )
            children.append(_sub_values(f, sub, elements.field(sub.name)))
    struct_type = f.arrow_type().value_type
    values = pa.StructArray.from_arrays(children, fields=list(struct_type))
    offsets = pa.array(_offsets(col), pa.int32())
    rows = pa.ListArray.from_arrays(offsets, values, mask=col.is_null() if col.null_count else None)
    return rows.cast(f.arrow_type())


def _offsets(col: pa.Array) -> pa.Array:
    # Null rows have no elements; rebuilt offsets keep list and values aligned from zero.
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    out = np.zeros(len(col) + 1, dtype=np.int32)
    np.cumsum(lengths, out=out[1:])
    return pa.array(out)


def _sub_values(f: FieldSchema, sub: FieldSchema, values: pa.Array) -> pa.Array:
    path = struct_path(f.name, sub.name)
    if values.null_count:
        raise invalid(f"the sub-field {path} of struct array field {f.name} contains null values")
    if sub.is_vector:
        return _vectors(sub, path, values)
    t = values.type
    wrong = (
        (sub.dtype is DataType.VARCHAR and not (pa.types.is_string(t) or pa.types.is_large_string(t)))
        or (sub.dtype is DataType.BOOL and not pa.types.is_boolean(t))
        or (sub.dtype.is_integer and not pa.types.is_integer(t))
        or (
            sub.dtype in (DataType.FLOAT, DataType.DOUBLE)
            and not (pa.types.is_floating(t) or pa.types.is_integer(t))
        )
    )
    if wrong:
        raise invalid(f"the data type of field {path} should be {sub.dtype.name}, but got {t}")
    try:
        cast = values.cast(sub.arrow_type(), safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise invalid(
            f"the data type of field {path} should be {sub.dtype.name}, but got {t} ({e})"
        ) from None
    if sub.dtype is DataType.VARCHAR and sub.max_length is not None:
        lengths = pc.binary_length(cast)
        over = pc.greater(lengths, sub.max_length)
        if pc.any(over).as_py():
            at = pc.index(over, True).as_py()
            raise invalid(
                f"length of varchar field {path} exceeds max length, element number: {at}, "
                f"length: {lengths[at].as_py()}, max length: {sub.max_length}"
            )
    if sub.dtype in (DataType.FLOAT, DataType.DOUBLE):
        check_floats(cast.to_numpy(zero_copy_only=False))
    return cast


def _vectors(sub: FieldSchema, path: str, values: pa.Array) -> pa.Array:
    dim = sub.dim or 0
    t = values.type
    if pa.types.is_fixed_size_list(t):
        if t.list_size != dim:
            raise invalid(f"the dim ({t.list_size}) of field data({path}) is not equal to schema dim ({dim})")
        flat = values.flatten()
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = pc.list_value_length(values)
        bad = pc.not_equal(lengths, dim)
        if pc.any(bad).as_py():
            got = lengths[pc.index(bad, True).as_py()].as_py()
            raise invalid(f"the dim ({got}) of field data({path}) is not equal to schema dim ({dim})")
        flat = values.flatten()
    else:
        raise invalid(f"the data type of field {path} should be FLOAT_VECTOR, but got {t}")
    if not (pa.types.is_floating(flat.type) or pa.types.is_integer(flat.type) or pa.types.is_null(flat.type)):
        raise invalid(f"the data type of field {path} should be FLOAT_VECTOR, but got {t}")
    floats = flat.cast(pa.float32())
    check_floats(floats.to_numpy(zero_copy_only=False))
    return pa.FixedSizeListArray.from_arrays(floats, dim)
