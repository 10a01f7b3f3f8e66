"""Milvus filter expressions: parse (lark), type-check against a schema, evaluate (pyarrow).

``compile_filter(text, schema, params)`` gives a ``Filter``; ``Filter.evaluate(table)`` gives a
numpy bool mask. ``JsonColumn`` lets the owner of a loaded segment parse its JSON columns once.
"""

from __future__ import annotations

from sheafdb.expr.filter import Filter, compile_filter
from sheafdb.expr.json_column import ChainedJsonColumn, JsonColumn, JsonProjections
from sheafdb.expr.plan import JsonPath, JsonView

__all__ = [
    "ChainedJsonColumn",
    "Filter",
    "JsonColumn",
    "JsonProjections",
    "JsonPath",
    "JsonView",
    "compile_filter",
]
