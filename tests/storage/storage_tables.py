"""Hypothesis strategies: random Arrow tables holding every field type of schema.py."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from sheafdb.schema import (
    ARRAY_ELEMENT_TYPES,
    DYNAMIC_FIELD,
    TIMESTAMP_COLUMN,
    CollectionSchema,
    DataType,
    FieldSchema,
)

DIM = 4
BINARY_DIM = 16

_INT_RANGES = {
    DataType.INT8: (-(2**7), 2**7 - 1),
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
}

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _scalar_values(dtype: DataType) -> st.SearchStrategy[Any]:
    if dtype is DataType.BOOL:
        return st.booleans()
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        return st.integers(low, high)
    if dtype is DataType.FLOAT:
        return st.floats(width=32, allow_nan=False)
    if dtype is DataType.DOUBLE:
        return st.floats(allow_nan=False)
    if dtype is DataType.VARCHAR:
        return st.text(max_size=12)
    if dtype is DataType.JSON:
        return _json_values.map(json.dumps)
    raise AssertionError(dtype)


def field_values(f: FieldSchema) -> st.SearchStrategy[Any]:
    """Values of one row of field ``f`` in the Python form pyarrow accepts for its arrow_type."""
    dtype = f.dtype
    if dtype is DataType.ARRAY:
        assert f.element_type is not None
        return st.lists(_scalar_values(f.element_type), max_size=4)
    if dtype is DataType.FLOAT_VECTOR:
        return st.lists(st.floats(width=32, allow_nan=False), min_size=DIM, max_size=DIM)
    if dtype is DataType.INT8_VECTOR:
        return st.lists(st.integers(-128, 127), min_size=DIM, max_size=DIM)
    if dtype in (DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR):
        return st.binary(min_size=2 * DIM, max_size=2 * DIM)
    if dtype is DataType.BINARY_VECTOR:
        return st.binary(min_size=BINARY_DIM // 8, max_size=BINARY_DIM // 8)
    if dtype is DataType.SPARSE_FLOAT_VECTOR:
        pair = st.fixed_dictionaries(
            {"index": st.integers(0, 2**32 - 1), "value": st.floats(width=32, allow_nan=False)}
        )
        return st.lists(pair, max_size=4)
    return _scalar_values(dtype)


def _all_fields(nullable: bool) -> list[FieldSchema]:
    fields = [FieldSchema("pk", DataType.INT64, is_primary=True)]
    for dtype in (
        DataType.BOOL, DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64,
        DataType.FLOAT, DataType.DOUBLE, DataType.VARCHAR, DataType.JSON,
    ):  # fmt: skip
        fields.append(FieldSchema(f"f_{dtype.name.lower()}", dtype, max_length=64, nullable=nullable))
    for element in sorted(ARRAY_ELEMENT_TYPES):
        fields.append(
            FieldSchema(
                f"arr_{element.name.lower()}",
                DataType.ARRAY,
                element_type=element,
                max_length=64,
                max_capacity=4,
                nullable=nullable,
            )  # fmt: skip
        )
    for dtype, dim in (
        (DataType.FLOAT_VECTOR, DIM), (DataType.FLOAT16_VECTOR, DIM),
        (DataType.BFLOAT16_VECTOR, DIM), (DataType.INT8_VECTOR, DIM),
        (DataType.BINARY_VECTOR, BINARY_DIM), (DataType.SPARSE_FLOAT_VECTOR, None),
    ):  # fmt: skip
        fields.append(FieldSchema(f"vec_{dtype.name.lower()}", dtype, dim=dim, nullable=nullable))
    return [replace(f, field_id=100 + i) for i, f in enumerate(fields)]


@st.composite
def schemas_and_tables(draw: st.DrawFn, max_rows: int = 12) -> tuple[CollectionSchema, pa.Table]:
    """A schema with every field type (nullable or not, dynamic or not) and a batch of rows for it."""
    nullable = draw(st.booleans())
    schema = CollectionSchema(fields=tuple(_all_fields(nullable)), enable_dynamic_field=draw(st.booleans()))
    num_rows = draw(st.integers(0, max_rows))
    columns: dict[str, pa.Array] = {}
    for f in schema.fields:
        values = field_values(f)
        if f.nullable:
            values = st.none() | values
        if f.is_primary:
            values = st.integers(-(2**63), 2**63 - 1)
        columns[f.name] = pa.array(
            draw(st.lists(values, min_size=num_rows, max_size=num_rows)), f.arrow_type()
        )
    if schema.enable_dynamic_field:
        meta = st.dictionaries(st.text(max_size=5), _json_values, max_size=3).map(json.dumps)
        columns[DYNAMIC_FIELD] = pa.array(
            draw(st.lists(meta, min_size=num_rows, max_size=num_rows)), pa.string()
        )
    timestamps = draw(st.lists(st.integers(0, 2**64 - 1), min_size=num_rows, max_size=num_rows))
    columns[TIMESTAMP_COLUMN] = pa.array(timestamps, pa.uint64())
    return schema, pa.Table.from_pydict(columns, schema=schema.arrow_schema())
