"""Which columns a read returns, checked against what is loaded, and how they are gathered.

Milvus's rules (milvus-behaviour.md §2.4): a schema field that is not loaded cannot be
returned ("field <f> is not loaded"); a dynamic key needs ``$meta`` loaded; ``["*"]`` means
every loaded field (and every dynamic key when ``$meta`` is loaded). Dynamic keys named
explicitly come back inside ``$meta`` cut to those keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sheafdb.engine.load.loaded_segment import RowSource
from sheafdb.errors import UnexpectedError, invalid
from sheafdb.schema import DYNAMIC_FIELD, CollectionSchema, split_struct_path
from sheafdb.schema_functions import bm25_output_names

COUNT_STAR = "count(*)"
# A dynamic key named as an output field: an identifier (Milvus parses it as one).
_DYNAMIC_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# ... or spelled out as ``$meta["key"]``.
_META_KEY = re.compile(r"""\$meta\[(["'])(.*)\1\]""")


@dataclass(frozen=True)
class OutputPlan:
    columns: tuple[str, ...]  # schema fields to gather (primary key first), "$meta" when needed
    names: tuple[str, ...]  # what the client lists: schema fields and dynamic keys
    dynamic_keys: tuple[str, ...] | None  # keys to keep in "$meta"; None: the whole object
    types: tuple[pa.DataType, ...]  # the schema's Arrow type of each column: empty and
    # missing columns (no row, or a field added after a segment was sealed) keep their type
    # Struct array fields asked for by sub-field only (``chunks[text]``): the subs to keep.
    struct_subs: tuple[tuple[str, tuple[str, ...]], ...] = ()


def build_output_plan(
    schema: CollectionSchema, loaded: Sequence[str], requested: Sequence[str], *, dynamic_loaded: bool
) -> OutputPlan:
    primary = schema.primary_field.name
    loaded_set = set(loaded)
    hidden = bm25_output_names(schema.functions)
    fields: list[str] = []
    keys: list[str] = []
    whole_meta = False
    subs: dict[str, list[str]] = {}
    for name in requested:
        if name == "*":
            # Milvus leaves out what it cannot return raw: a BM25 function's output.
            fields.extend(f.name for f in schema.fields if f.name in loaded_set and f.name not in hidden)
            whole_meta = whole_meta or dynamic_loaded
        elif name == DYNAMIC_FIELD:
            if not dynamic_loaded:
                raise UnexpectedError(f"field {name} is not loaded")
            whole_meta = True
        elif (sub_path := struct_sub_field(schema, name)) is not None:
            struct_name, sub = sub_path
            if struct_name not in loaded_set:
                raise UnexpectedError(f"field {name} is not loaded")
            fields.append(struct_name)
            subs.setdefault(struct_name, []).append(sub)
        elif schema.field(name) is not None:
            if name in hidden:
                raise UnexpectedError(f"not allowed to retrieve raw data of field {name}")
            if name not in loaded_set:
                raise UnexpectedError(f"field {name} is not loaded")
            fields.append(name)
        elif schema.enable_dynamic_field:
            explicit = _META_KEY.fullmatch(name)
            key = explicit.group(2) if explicit else name
            if not _DYNAMIC_KEY.fullmatch(key):
                raise invalid(f"parse output field name failed: {name}")
            if not dynamic_loaded:
                raise UnexpectedError(f"field {key} cannot be returned since dynamic field not loaded")
            keys.append(key)
        else:
            raise invalid(f"field {name} not exist")
    ordered = list(dict.fromkeys(fields))
    names = (
        [n for n in ordered if n != primary] if primary not in requested and "*" not in requested else ordered
    )
    columns = [primary, *(n for n in ordered if n != primary)]
    if whole_meta or keys:
        columns.append(DYNAMIC_FIELD)
    listed = [*names, *(k for k in dict.fromkeys(keys))]
    if whole_meta and DYNAMIC_FIELD not in listed:
        listed.append(DYNAMIC_FIELD)
    stored = schema.arrow_schema()
    whole = {n for n in requested if schema.field(n) is not None} | (
        set(ordered) if "*" in requested else set()
    )
    return OutputPlan(
        tuple(columns),
        tuple(listed),
        None if whole_meta else tuple(dict.fromkeys(keys)),
        tuple(stored.field(c).type for c in columns),
        tuple((s, tuple(dict.fromkeys(names))) for s, names in subs.items() if s not in whole),
    )


def struct_sub_field(schema: CollectionSchema, name: str) -> tuple[str, str] | None:
    """``(struct, sub)`` when ``name`` is ``struct[sub]`` of a struct array field of the schema."""
    split = split_struct_path(name)
    if split is None:
        return None
    struct = schema.field(split[0])
    if struct is None or not any(s.name == split[1] for s in struct.struct_fields):
        return None
    return split


def gather(
    sources: Sequence[RowSource], source_ids: np.ndarray, rows: np.ndarray, plan: OutputPlan
) -> pa.Table:
    """The plan's columns of the rows ``(sources[source_ids[i]], rows[i])``, in that order.

    Column by column: a numeric column is filled with numpy from each source's view; any
    other is one Arrow ``take`` per source, concatenated and put back in order with one more.
    """
    if len(rows) and len(sources) == 1:
        # One source (the common case): column by column, already in order.
        source = sources[0]
        columns = [
            _take_column(source, name, kind, rows)
            for name, kind in zip(plan.columns, plan.types, strict=True)
        ]
        return _cut_meta(pa.Table.from_arrays(columns, names=list(plan.columns)), plan)
    picks = [(sources[int(sid)], np.flatnonzero(source_ids == sid)) for sid in np.unique(source_ids)]
    if not picks:
        empty = [pa.array([], type=kind) for kind in plan.types]
        return pa.Table.from_arrays(empty, names=list(plan.columns))
    taken = [(source, positions, rows[positions]) for source, positions in picks]
    inverse = np.empty(len(rows), dtype=np.int64)
    inverse[np.concatenate([positions for _, positions in picks])] = np.arange(len(rows))
    columns = [
        _gather_column(taken, name, kind, len(rows), inverse)
        for name, kind in zip(plan.columns, plan.types, strict=True)
    ]
    return _cut_meta(pa.Table.from_arrays(columns, names=list(plan.columns)), plan)


def _gather_column(
    taken: Sequence[tuple[RowSource, np.ndarray, np.ndarray]],
    name: str,
    kind: pa.DataType,
    total: int,
    inverse: np.ndarray,
) -> pa.Array:
    """Column ``name`` of ``total`` rows from several sources: (source, positions, its rows)."""
    views = [source.numeric_column(name) for source, _, _ in taken]
    if all(view is not None for view in views) and len({v.dtype for v in views}) == 1:  # type: ignore[union-attr]
        values = np.empty(total, dtype=views[0].dtype)  # type: ignore[union-attr]
        for view, (_, positions, source_rows) in zip(views, taken, strict=True):
            values[positions] = view[source_rows]  # type: ignore[index]
        return pa.array(values)
    # A field added after a segment was sealed reads as nulls of its type.
    pieces = [
        source.table.column(name).take(pa.array(source_rows)).combine_chunks()
        if name in source.table.column_names
        else pa.nulls(len(source_rows), kind)
        for source, _, source_rows in taken
    ]
    return pa.concat_arrays(pieces).take(pa.array(inverse))


def _take_column(
    source: RowSource, name: str, kind: pa.DataType, rows: np.ndarray
) -> pa.Array | pa.ChunkedArray:
    # The kept numeric view first: a column that has one is present (no name list built).
    view = source.numeric_column(name)
    if view is not None:
        return pa.array(view[rows])
    table = source.table
    if name not in table.column_names:
        return pa.nulls(len(rows), kind)  # a field added after the segment was sealed
    return table.column(name).take(pa.array(rows))


def _cut_meta(table: pa.Table, plan: OutputPlan) -> pa.Table:
    """``$meta`` reduced to the dynamic keys the plan names (unchanged when it wants it whole),
    struct array fields to the sub-fields named."""
    for struct_name, subs in plan.struct_subs:
        at = table.column_names.index(struct_name)
        table = table.set_column(at, struct_name, cut_struct(table.column(at), subs))
    if plan.dynamic_keys is None or DYNAMIC_FIELD not in plan.columns:
        return table
    return table.set_column(
        table.column_names.index(DYNAMIC_FIELD),
        DYNAMIC_FIELD,
        cut_dynamic(table.column(DYNAMIC_FIELD), plan.dynamic_keys),
    )


def cut_dynamic(meta: pa.ChunkedArray | pa.Array, keys: Sequence[str]) -> pa.Array:
    """``$meta`` JSON objects reduced to ``keys``. One parse per returned row (O(result))."""
    wanted = set(keys)
    out = []
    for text in meta.to_pylist():
        obj = json.loads(text) if text else {}
        out.append(json.dumps({k: v for k, v in obj.items() if k in wanted}))
    return pa.array(out, type=pa.string())


def cut_struct(column: pa.ChunkedArray | pa.Array, subs: Sequence[str]) -> pa.Array:
    """A ``list<struct>`` column keeping only the struct children ``subs``."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    array = pa.concat_arrays([array]) if array.offset else array
    elements = array.values
    kept = pa.StructArray.from_arrays(
        [elements.field(name) for name in subs], fields=[elements.type.field(name) for name in subs]
    )
    return pa.ListArray.from_arrays(array.offsets, kept, mask=array.is_null() if array.null_count else None)
