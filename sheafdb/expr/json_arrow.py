"""Typed JSON projections parsed by Arrow's C++ JSON reader instead of ``json.loads`` per row.

The text column is turned into newline-delimited JSON without a Python loop (each row wrapped
as ``{"v": <row>}``; raw newlines in JSON text can only be whitespace, so they become spaces)
and read with an explicit schema holding only the asked paths, every other key ignored. A
value of another type than the view's makes the reader fail for the whole column: the caller
then falls back to ``json.loads``, which nulls such values one by one. So this path serves the
common case (a key holding one type across rows) and never changes a result.

Only scalar views (number, string, bool) of paths made of object keys go this way; list,
exists and array-index paths are left to the Python parser.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from sheafdb.expr.plan import JsonPath, JsonView

ViewKey = tuple[JsonPath, JsonView]

# Below this many rows building a reader costs more than json.loads.
MIN_ARROW_ROWS = 64
_ROW_KEY = "v"
_VIEW_TYPES = {JsonView.NUMBER: pa.float64(), JsonView.STRING: pa.string(), JsonView.BOOL: pa.bool_()}

# A tree of the asked paths: object key -> subtree, or the leaf's Arrow type.
_Tree = dict[str, Any]


def split_views(keys: Sequence[ViewKey]) -> tuple[list[ViewKey], list[ViewKey]]:
    """(keys Arrow can project together, keys left to json.loads)."""
    tree: _Tree = {}
    arrow: list[ViewKey] = []
    rest: list[ViewKey] = []
    for path, view in keys:
        leaf = _VIEW_TYPES.get(view)
        if leaf is not None and path and all(isinstance(step, str) for step in path):
            if _add_leaf(tree, [str(step) for step in path], leaf):
                arrow.append((path, view))
                continue
        rest.append((path, view))
    return arrow, rest


def _add_leaf(tree: _Tree, steps: list[str], leaf: pa.DataType) -> bool:
    """Add a path; False when it clashes with one already there (a key both leaf and object)."""
    node = tree
    for step in steps[:-1]:
        child = node.setdefault(step, {})
        if not isinstance(child, dict):
            return False
        node = child
    if steps[-1] in node:
        return False  # the same path with another view, or a prefix of a deeper path
    node[steps[-1]] = leaf
    return True


def project_with_arrow(text: pa.Array, keys: Sequence[ViewKey]) -> dict[ViewKey, pa.Array] | None:
    """The projections of ``keys`` (from ``split_views``), or None when Arrow cannot read them."""
    tree: _Tree = {}
    for path, view in keys:
        _add_leaf(tree, [str(step) for step in path], _VIEW_TYPES[view])
    schema = pa.schema([(_ROW_KEY, _struct_of(tree))])
    data = _ndjson(text)
    try:
        table = pa_json.read_json(
            pa.BufferReader(data),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=max(1 << 20, data.size + 1)),
            parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # a key holding several types, unreadable text, ...: json.loads decides
    if table.num_rows != len(text):
        return None
    rows = table.column(_ROW_KEY).combine_chunks()
    out: dict[ViewKey, pa.Array] = {}
    for path, view in keys:
        column: pa.Array = rows
        for step in path:
            # pc.struct_field keeps the parent's nulls (a missing object nulls its keys).
            column = pc.struct_field(column, [column.type.get_field_index(str(step))])
        out[(path, view)] = column
    return out


def _struct_of(tree: _Tree) -> pa.DataType:
    return pa.struct(
        [(name, _struct_of(sub) if isinstance(sub, dict) else sub) for name, sub in tree.items()]
    )


def _ndjson(text: pa.Array) -> pa.Buffer:
    """Every row as ``{"v": <row>}`` on its own line, in one buffer (null rows as JSON null)."""
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        text = text.cast(pa.string())  # e.g. an all-null column typed null
    text = pc.fill_null(text, "null")
    if pc.any(pc.match_substring_regex(text, "[\r\n]")).as_py():
        text = pc.replace_substring_regex(text, "[\r\n]", " ")
    wrapped = pc.binary_join_element_wise('{"' + _ROW_KEY + '":', text, "}\n", "")
    offset_type = np.int64 if pa.types.is_large_string(wrapped.type) else np.int32
    offsets = np.frombuffer(wrapped.buffers()[1], dtype=offset_type)[
        wrapped.offset : wrapped.offset + len(wrapped) + 1
    ]
    return wrapped.buffers()[2][int(offsets[0]) : int(offsets[-1])]
