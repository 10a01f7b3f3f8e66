"""Which predicates a loaded scalar index answers, and how its rows become a filter result.

A sealed segment's scalar indexes are offered to the evaluator as a ``ScalarLookup``; before
evaluating a leaf predicate the evaluator asks ``indexed_result`` here. A leaf is answered by
an index when it compares one field (or one JSON path read as the index's cast type) with
constants:

- ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` and ``in``: sorted postings (INVERTED,
  STL_SORT, TRIE, JSON paths) and, for ``==`` / ``!=`` / ``in``, bitmaps;
- ``like 'abc%'``: the sorted keys' prefix run;
- ``like`` with a literal of at least ``min_gram`` characters: the NGRAM index's candidates,
  verified with Arrow's ``match_like`` on those rows only;
- ``array_contains`` / ``array_contains_any`` / ``array_contains_all`` on an ARRAY field, and
  ``json_contains`` / ``_any`` / ``_all`` on a JSON path indexed as ARRAY_*: the element
  postings (a union of rows, or an intersection for ``_all``).

Ranges on one operand joined by ``and`` (``a >= 1 and a < 5``, ``1 < a <= 5``) are asked as
one interval (``indexed_ranges``): each bound alone may hold most rows, the interval few.

Anything else, or an answer bigger than ``SCAN_FRACTION`` of the segment (then the column
scan is as cheap), is left to the scan. The result has the scan's exact shape: nulls where
the field is null (three-valued logic), and for JSON paths the settled two-valued answer
(``!=`` holds where the path is missing or of another type).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.expr import plan

# An index answers when its rows are at most this share of the segment's rows.
SCAN_FRACTION = 0.5

_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


class IndexedColumn(Protocol):
    """What a scalar index structure answers (index/scalar/structures.py implements it)."""

    num_rows: int
    valid: np.ndarray | None

    def rows_equal(self, values: Sequence[object], limit: int) -> np.ndarray | None: ...
    def rows_range(
        self, low: object | None, low_inclusive: bool, high: object | None, high_inclusive: bool, limit: int
    ) -> np.ndarray | None: ...
    def rows_prefix(self, prefix: str, limit: int) -> np.ndarray | None: ...
    def rows_containing(self, literals: Sequence[str], limit: int) -> np.ndarray | None: ...
    def rows_with_elements(self, values: Sequence[object], every: bool, limit: int) -> np.ndarray | None: ...


class ScalarLookup(Protocol):
    """A segment's loaded scalar indexes, found by what a predicate reads."""

    def for_field(self, name: str) -> Sequence[IndexedColumn]: ...
    def for_json(self, column: str, path: plan.JsonPath, view: plan.JsonView) -> Sequence[IndexedColumn]: ...


def indexed_result(
    node: plan.Predicate, lookup: ScalarLookup, values_of: Callable[[plan.Value], pa.Array]
) -> pa.Array | None:
    """The predicate's result from an index, or None to evaluate it by scanning."""
    match node:
        case plan.Compare(
            op, plan.Const(value), (plan.FieldColumn() | plan.JsonValue()) as operand, reads_json
        ):
            return _compare(_FLIPPED[op], operand, value, reads_json, lookup)
        case plan.Compare(
            op, (plan.FieldColumn() | plan.JsonValue()) as operand, plan.Const(value), reads_json
        ):
            return _compare(op, operand, value, reads_json, lookup)
        case plan.IsIn((plan.FieldColumn() | plan.JsonValue()) as operand, values, _, reads_json):
            return _answer(operand, reads_json, lookup, lambda ix, limit: ix.rows_equal(values, limit))
        case plan.Like((plan.FieldColumn() | plan.JsonValue()) as operand, pattern, reads_json):
            return _like(operand, pattern, reads_json, lookup, values_of)
        case plan.Contains((plan.FieldColumn() | plan.JsonValue()) as operand, values, _, mode) if values:
            # An ARRAY field: null where the array is null, as the scan's three-valued result;
            # a JSON path's list view (type-tagged tokens): two-valued.
            every = mode == "all"
            return _answer(
                operand,
                isinstance(operand, plan.JsonValue),
                lookup,
                lambda ix, limit: ix.rows_with_elements(values, every, limit),
            )
    return None


def indexed_ranges(
    operands: Sequence[plan.Predicate], lookup: ScalarLookup
) -> tuple[list[pa.Array], list[plan.Predicate]]:
    """For the operands of an ``and``: the results of the ranges an index answers as one
    interval per operand, and the operands left to evaluate one by one."""
    bounds: dict[plan.FieldColumn | plan.JsonValue, list[tuple[str, object, bool]]] = {}
    for operand in operands:
        found = _range_bound(operand)
        if found is not None:
            target, op, value, reads_json = found
            bounds.setdefault(target, []).append((op, value, reads_json))
    answered: list[pa.Array] = []
    used: set[plan.FieldColumn | plan.JsonValue] = set()
    for target, found_bounds in bounds.items():
        if len(found_bounds) < 2 or len({reads for _, _, reads in found_bounds}) != 1:
            continue
        interval = _interval(found_bounds)
        if interval is None:
            continue
        result = _answer(target, found_bounds[0][2], lookup, _in_interval(*interval))
        if result is not None:
            answered.append(result)
            used.add(target)
    rest = [o for o in operands if (found := _range_bound(o)) is None or found[0] not in used]
    return answered, rest


def _in_interval(
    low: object, low_inclusive: bool, high: object, high_inclusive: bool
) -> Callable[[IndexedColumn, int], np.ndarray | None]:
    return lambda index, limit: index.rows_range(low, low_inclusive, high, high_inclusive, limit)


def _range_bound(node: plan.Predicate) -> tuple[plan.FieldColumn | plan.JsonValue, str, object, bool] | None:
    match node:
        case plan.Compare(
            op, (plan.FieldColumn() | plan.JsonValue()) as target, plan.Const(value), reads_json
        ):
            pass
        case plan.Compare(
            op, plan.Const(value), (plan.FieldColumn() | plan.JsonValue()) as target, reads_json
        ):
            op = _FLIPPED[op]
        case _:
            return None
    if op not in ("<", "<=", ">", ">=") or value is None or isinstance(value, bool):
        return None
    return target, op, value, reads_json


def _interval(bounds: list[tuple[str, object, bool]]) -> tuple[object, bool, object, bool] | None:
    """The tightest (low, inclusive, high, inclusive) of the bounds; None if they do not compare."""
    low: tuple[object, bool] | None = None
    high: tuple[object, bool] | None = None
    try:
        for op, value, _ in bounds:
            if op in (">", ">="):
                if low is None or value > low[0] or (value == low[0] and op == ">"):  # type: ignore[operator]
                    low = (value, op == ">=")
            elif high is None or value < high[0] or (value == high[0] and op == "<"):  # type: ignore[operator]
                high = (value, op == "<=")
    except TypeError:
        return None
    if low is None or high is None:
        return None
    return low[0], low[1], high[0], high[1]


def _indexes(operand: plan.FieldColumn | plan.JsonValue, lookup: ScalarLookup) -> Sequence[IndexedColumn]:
    if isinstance(operand, plan.FieldColumn):
        return lookup.for_field(operand.name)
    return lookup.for_json(operand.column, operand.path, operand.view)


def _answer(
    operand: plan.FieldColumn | plan.JsonValue,
    reads_json: bool,
    lookup: ScalarLookup,
    ask: Callable[[IndexedColumn, int], np.ndarray | None],
    *,
    negate: bool = False,
) -> pa.Array | None:
    for index in _indexes(operand, lookup):
        limit = int(index.num_rows * SCAN_FRACTION)
        rows = ask(index, limit)
        if rows is None:
            continue
        mask = np.zeros(index.num_rows, dtype=bool)
        mask[rows] = True
        if negate:
            mask = ~mask
        if reads_json or index.valid is None:
            return pa.array(mask)  # a JSON path's answer is already settled (two-valued)
        return pa.array(mask, mask=~index.valid)
    return None


def _compare(
    op: str, operand: plan.FieldColumn | plan.JsonValue, value: object, reads_json: bool, lookup: ScalarLookup
) -> pa.Array | None:
    if value is None:
        return None
    if op in ("==", "!="):
        # != is the complement of == among the rows with a value (and, for JSON, the rest too).
        return _answer(
            operand, reads_json, lookup, lambda ix, limit: ix.rows_equal((value,), limit), negate=op == "!="
        )
    low, high = (value, None) if op in (">", ">=") else (None, value)
    inclusive = op in (">=", "<=")
    return _answer(
        operand, reads_json, lookup, lambda ix, limit: ix.rows_range(low, inclusive, high, inclusive, limit)
    )


def _like(
    operand: plan.FieldColumn | plan.JsonValue,
    pattern: str,
    reads_json: bool,
    lookup: ScalarLookup,
    values_of: Callable[[plan.Value], pa.Array],
) -> pa.Array | None:
    if "\\" in pattern:
        return None  # escaped wildcards: the scan reads them
    runs = [run for part in pattern.split("%") for run in part.split("_") if run]
    prefix = pattern[:-1] if pattern.endswith("%") else None
    if prefix is not None and prefix and "%" not in prefix and "_" not in prefix:
        exact = _answer(operand, reads_json, lookup, lambda ix, limit: ix.rows_prefix(prefix, limit))
        if exact is not None:
            return exact
    for index in _indexes(operand, lookup):
        candidates = index.rows_containing(runs, int(index.num_rows * SCAN_FRACTION))
        if candidates is None:
            continue
        mask = np.zeros(index.num_rows, dtype=bool)
        if len(candidates):
            texts = values_of(operand).take(pa.array(candidates))
            hits = np.asarray(
                pc.fill_null(pc.match_like(texts, pattern), False).to_numpy(zero_copy_only=False)
            )
            mask[np.asarray(candidates)[hits]] = True
        if reads_json or index.valid is None:
            return pa.array(mask)
        return pa.array(mask, mask=~index.valid)
    return None
