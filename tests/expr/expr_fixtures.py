"""Shared schema and comparison oracle of the filter-language tests."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from sheafdb.schema import CollectionSchema, DataType, FieldSchema

# The filter language's comparison operators as Python evaluates them (the tests' oracle).
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def make_schema(*, dynamic: bool = True) -> CollectionSchema:
    return CollectionSchema(
        fields=(
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("a", DataType.INT64, nullable=True),
            FieldSchema("small", DataType.INT8),
            FieldSchema("b", DataType.DOUBLE, nullable=True),
            FieldSchema("f32", DataType.FLOAT),
            FieldSchema("s", DataType.VARCHAR, max_length=64, nullable=True),
            FieldSchema("flag", DataType.BOOL, nullable=True),
            FieldSchema("meta", DataType.JSON, nullable=True),
            FieldSchema("tags", DataType.ARRAY, element_type=DataType.INT64, max_capacity=8, nullable=True),
            FieldSchema("words", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=8, max_length=8),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=2),
        ),
        enable_dynamic_field=dynamic,
    )
