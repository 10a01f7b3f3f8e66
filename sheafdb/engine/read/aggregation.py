"""Query aggregation (Milvus 2.6): ``count/min/max/avg/sum(field)`` output fields, optionally
per group of ``group_by_fields``.

A query whose output fields hold aggregates (or that names group-by fields) returns one row per
group (one row in all without groups): the group-by fields' values, then each aggregate under
its own text (``"max(ts)"``). ``count`` counts non-null values (``count(*)`` every row), ``avg``
is a Double, ``sum`` an Int64 over integers and a Double over floats, ``min``/``max`` keep the
field's type. Groups come ordered by their keys; ``offset``/``limit`` cut the groups.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pyarrow as pa

from sheafdb.errors import invalid
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

_AGGREGATE = re.compile(r"^\s*(count|min|max|avg|sum)\s*\(\s*(\*|[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.I)
# Milvus's functions -> pyarrow's hash aggregations.
_ARROW_FUNCTION = {"count": "count", "min": "min", "max": "max", "avg": "mean", "sum": "sum"}
_NUMERIC = frozenset(
    {DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64, DataType.FLOAT, DataType.DOUBLE}
)


@dataclass(frozen=True)
class Aggregate:
    label: str  # as the client wrote it: the output column's name
    function: str  # count, min, max, avg, sum
    field: str  # a schema field, or "*" (count only)


def parse_aggregate(text: str) -> Aggregate | None:
    match = _AGGREGATE.match(text)
    if match is None:
        return None
    return Aggregate(text, match.group(1).lower(), match.group(2))


def aggregates_in(output_fields: Sequence[str]) -> tuple[Aggregate, ...]:
    found = (parse_aggregate(name) for name in output_fields)
    return tuple(a for a in found if a is not None and not (a.function == "count" and a.field == "*"))


def aggregate_field(schema: CollectionSchema, name: str) -> FieldSchema | None:
    """The type of an aggregate output column (None when ``name`` is not an aggregate)."""
    agg = parse_aggregate(name)
    if agg is None:
        return None
    if agg.function == "count":
        return FieldSchema(name, DataType.INT64)
    if agg.function == "avg":
        return FieldSchema(name, DataType.DOUBLE)
    source = schema.field(agg.field)
    if source is None:
        return None
    if agg.function == "sum":
        return FieldSchema(name, DataType.INT64 if source.dtype.is_integer else DataType.DOUBLE)
    return replace(source, name=name, is_primary=False, auto_id=False, nullable=True, default_value=None)


def check_aggregation(
    schema: CollectionSchema, output_fields: Sequence[str], group_by: Sequence[str]
) -> tuple[str, ...]:
    """The fields an aggregation reads; ParameterInvalid for what Milvus refuses."""
    needed: list[str] = []
    for name in group_by:
        field = schema.field(name)
        if field is None:
            raise invalid(f"group by field {name} not found in schema")
        if field.is_vector or field.dtype in (DataType.JSON, DataType.ARRAY, DataType.ARRAY_OF_STRUCT):
            raise invalid(f"group by field {name} of type {field.dtype.name} is not supported")
        needed.append(name)
    for name in output_fields:
        agg = parse_aggregate(name)
        if agg is None:
            if name not in group_by:
                raise invalid(f"output field {name} is neither an aggregation nor a group by field")
            continue
        if agg.field == "*":
            if agg.function != "count":
                raise invalid(f"{agg.function}(*) is not supported, only count(*)")
            continue
        field = schema.field(agg.field)
        if field is None:
            raise invalid(f"aggregation field {agg.field} not found in schema")
        if agg.function in ("avg", "sum") and field.dtype not in _NUMERIC:
            raise invalid(f"{agg.function} is not supported on field {agg.field} of type {field.dtype.name}")
        if agg.function in ("min", "max") and (
            field.is_vector or field.dtype in (DataType.JSON, DataType.ARRAY, DataType.ARRAY_OF_STRUCT)
        ):
            raise invalid(f"{agg.function} is not supported on field {agg.field} of type {field.dtype.name}")
        needed.append(agg.field)
    return tuple(dict.fromkeys(needed))


def aggregate_rows(
    rows: pa.Table, output_fields: Sequence[str], group_by: Sequence[str], offset: int, limit: int | None
) -> pa.Table:
    """One row per group of ``rows`` with the asked aggregates, in ``output_fields`` order."""
    specs: dict[str, tuple[str | list[str], str]] = {}  # pyarrow's output name -> its spec
    arrow_names: dict[str, str] = {}
    for name in output_fields:
        agg = parse_aggregate(name)
        if agg is None:
            continue
        if agg.field == "*":
            arrow_names[name] = "count_all"
            specs["count_all"] = ([], "count_all")
        else:
            function = _ARROW_FUNCTION[agg.function]
            arrow_names[name] = f"{agg.field}_{function}"
            specs[arrow_names[name]] = (agg.field, function)
    grouped = rows.group_by(list(group_by)).aggregate(list(specs.values()))
    if group_by:
        grouped = grouped.sort_by([(name, "ascending") for name in group_by])
    end = None if limit is None else offset + limit
    grouped = grouped.slice(offset, None if end is None else max(end - offset, 0))
    columns = {}
    for name in output_fields:
        if name in arrow_names:
            column = grouped.column(arrow_names[name])
            if name.lower().startswith("count"):
                column = column.cast(pa.int64())
            columns[name] = column
        else:
            columns[name] = grouped.column(name)
    return pa.table(columns)
