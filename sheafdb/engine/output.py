"""Which columns a read returns, checked against what is loaded, and how they are gathered.

Milvus's rules (milvus-behaviour.md §2.4): a schema field that is not loaded cannot be
returned ("field <f> is not loaded"); a dynamic key needs ``$meta`` loaded; ``["*"]`` means
every loaded field (and every dynamic key when ``$meta`` is loaded). Dynamic keys named
explicitly come back inside ``$meta`` cut to those keys.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sheafdb.engine.loaded_segment import RowSource
from sheafdb.errors import UnexpectedError
from sheafdb.schema import DYNAMIC_FIELD, CollectionSchema

COUNT_STAR = "count(*)"


@dataclass(frozen=True)
class OutputPlan:
    columns: tuple[str, ...]  # schema fields to gather (primary key first), "$meta" when needed
    names: tuple[str, ...]  # what the client lists: schema fields and dynamic keys
    dynamic_keys: tuple[str, ...] | None  # keys to keep in "$meta"; None: the whole object


def plan_output(
    schema: CollectionSchema, loaded: Sequence[str], requested: Sequence[str], *, dynamic_loaded: bool
) -> OutputPlan:
    primary = schema.primary_field.name
    loaded_set = set(loaded)
    fields: list[str] = []
    keys: list[str] = []
    whole_meta = False
    for name in requested:
        if name == "*":
            fields.extend(f.name for f in schema.fields if f.name in loaded_set)
            whole_meta = whole_meta or dynamic_loaded
        elif name == DYNAMIC_FIELD:
            if not dynamic_loaded:
                raise UnexpectedError(f"field {name} is not loaded")
            whole_meta = True
        elif schema.field(name) is not None:
            if name not in loaded_set:
                raise UnexpectedError(f"field {name} is not loaded")
            fields.append(name)
        elif schema.enable_dynamic_field:
            if not dynamic_loaded:
                raise UnexpectedError(f"field {name} cannot be returned since dynamic field not loaded")
            keys.append(name)
        else:
            raise UnexpectedError(f"field {name} not exist")
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
    return OutputPlan(tuple(columns), tuple(listed), None if whole_meta else tuple(dict.fromkeys(keys)))


def gather(
    sources: Sequence[RowSource], source_ids: np.ndarray, rows: np.ndarray, plan: OutputPlan
) -> pa.Table:
    """The plan's columns of the rows ``(sources[source_ids[i]], rows[i])``, in that order.

    One Arrow ``take`` per source, one concatenation, and one ``take`` to restore the order.
    """
    pieces: list[pa.Table] = []
    order_parts: list[np.ndarray] = []
    for sid in np.unique(source_ids):
        positions = np.flatnonzero(source_ids == sid)
        source = sources[int(sid)]
        available = [c for c in plan.columns if c in source.table.column_names]
        piece = source.table.select(available).take(pa.array(rows[positions]))
        pieces.append(_with_missing_columns(piece, plan.columns, source.table.schema))
        order_parts.append(positions)
    if not pieces:
        return pa.table({c: pa.array([], type=_column_type(sources, c)) for c in plan.columns})
    merged = pa.concat_tables(pieces, promote_options="permissive")
    inverse = np.empty(len(rows), dtype=np.int64)
    inverse[np.concatenate(order_parts)] = np.arange(len(rows))
    merged = merged.take(pa.array(inverse))
    if DYNAMIC_FIELD in merged.column_names and plan.dynamic_keys is not None:
        merged = merged.set_column(
            merged.column_names.index(DYNAMIC_FIELD),
            DYNAMIC_FIELD,
            cut_dynamic(merged.column(DYNAMIC_FIELD), plan.dynamic_keys),
        )
    return merged


def _with_missing_columns(piece: pa.Table, columns: Sequence[str], schema: pa.Schema) -> pa.Table:
    # A field added after a segment was sealed: its rows read as nulls.
    for name in columns:
        if name not in piece.column_names:
            piece = piece.append_column(name, pa.nulls(piece.num_rows))
    return piece.select(list(columns))


def _column_type(sources: Sequence[RowSource], name: str) -> pa.DataType:
    for source in sources:
        if name in source.table.column_names:
            return source.table.schema.field(name).type
    return pa.null()


def cut_dynamic(meta: pa.ChunkedArray | pa.Array, keys: Sequence[str]) -> pa.Array:
    """``$meta`` JSON objects reduced to ``keys``. One parse per returned row (O(result))."""
    wanted = set(keys)
    out = []
    for text in meta.to_pylist():
        obj = json.loads(text) if text else {}
        out.append(json.dumps({k: v for k, v in obj.items() if k in wanted}))
    return pa.array(out, type=pa.string())
