"""Run a typed plan over an Arrow table: vectorised with pyarrow.compute, never a loop per row.

Predicates produce boolean arrays that may hold nulls (Kleene logic for nullable fields);
predicates that read JSON fill their nulls at once (false, or true for ``!=``), as Milvus's
JSON comparisons do. The final mask turns every remaining null into false.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.errors import UnexpectedError
from sheafdb.expr import plan
from sheafdb.expr.arithmetic import apply_arithmetic
from sheafdb.expr.indexed import ScalarLookup, indexed_ranges, indexed_result
from sheafdb.expr.text_match import text_match
from sheafdb.text.match_index import MatchIndexes

JsonViews = Mapping[tuple[str, plan.JsonPath, plan.JsonView], pa.Array]

_COMPARE_FUNCTIONS = {
    "==": "equal",
    "!=": "not_equal",
    "<": "less",
    "<=": "less_equal",
    ">": "greater",
    ">=": "greater_equal",
}


def evaluate_plan(
    predicate: plan.Predicate,
    table: pa.Table,
    json_views: JsonViews,
    indexes: ScalarLookup | None = None,
    match_indexes: MatchIndexes | None = None,
) -> np.ndarray:
    """The rows of ``table`` the predicate keeps, as a numpy bool mask. ``indexes`` (a sealed
    segment's scalar indexes) answer the leaves they can (indexed.py); the rest scan.
    ``match_indexes``: the segment's kept text match indexes, when ``table`` is a loaded
    segment's."""
    result = _Evaluator(table, json_views, indexes, match_indexes).predicate(predicate)
    return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False), dtype=bool)


class _Evaluator:
    def __init__(
        self,
        table: pa.Table,
        json_views: JsonViews,
        indexes: ScalarLookup | None,
        match_indexes: MatchIndexes | None,
    ) -> None:
        self._table = table
        self._indexes = indexes
        self._rows = table.num_rows
        self._json_views = json_views
        self._match_indexes = match_indexes
        self._columns: dict[str, pa.Array] = {}

    def column(self, name: str) -> pa.Array:
        if name not in self._columns:
            if name not in self._table.column_names:
                raise UnexpectedError(f"filter reads column {name}, which the table does not hold")
            chunked = self._table.column(name)
            self._columns[name] = chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()
        return self._columns[name]

    # -- predicates -------------------------------------------------------------------------
    def predicate(self, node: plan.Predicate) -> pa.Array:
        if self._indexes is not None and isinstance(
            node, (plan.Compare, plan.IsIn, plan.Like, plan.Contains)
        ):
            answered = indexed_result(node, self._indexes, self.value)
            if answered is not None:
                return answered
        match node:
            case plan.Compare(op, left, right, reads_json):
                result = pc.call_function(_COMPARE_FUNCTIONS[op], [self.value(left), self.value(right)])
                return self._broadcast(_settle_json(result, op == "!=") if reads_json else result)
            case plan.IsIn(operand, values, arrow_type, reads_json):
                return self._is_in(self.value(operand), values, arrow_type, reads_json)
            case plan.Like(operand, pattern, reads_json):
                result = pc.match_like(self.value(operand), pattern)
                return _settle_json(result, False) if reads_json else result
            case plan.IsNull(operand, negate):
                return self._is_null(operand, negate)
            case plan.Contains(source, values, arrow_type, mode):
                return self._contains(source, values, arrow_type, mode)
            case plan.TextMatch(column, query, params, slop, minimum):
                kept = None if self._match_indexes is None else (self._match_indexes, column)
                return pa.array(text_match(self.column(column), query, params, slop, minimum, kept))
            case plan.Truth(operand, reads_json):
                result = self.value(operand)
                return _settle_json(result, False) if reads_json else result
            case plan.Constant(value):
                return pa.array(np.full(self._rows, value, dtype=bool))
            case plan.And(operands) if self._indexes is not None:
                answered, rest = indexed_ranges(operands, self._indexes)
                results = [*answered, *(self.predicate(operand) for operand in rest)]
                result = results[0]
                for other in results[1:]:
                    result = pc.and_kleene(result, other)
                return result
            case plan.And(operands):
                return self._fold(pc.and_kleene, operands)
            case plan.Or(operands):
                return self._fold(pc.or_kleene, operands)
            case plan.Not(operand):
                return pc.invert(self.predicate(operand))
            case plan.Sample(factor):
                return pa.array(np.random.default_rng().random(self._rows) < factor)
        raise TypeError(f"not a predicate: {node!r}")

    def _fold(self, combine: Callable[..., pa.Array], operands: tuple[plan.Predicate, ...]) -> pa.Array:
        result = self.predicate(operands[0])
        for operand in operands[1:]:
            result = combine(result, self.predicate(operand))
        return result

    def _broadcast(self, result: pa.Array | pa.Scalar) -> pa.Array:
        # Only a comparison of two constants is a scalar, and the planner folds those; this
        # covers constant-valued array expressions such as `array_length(a) - array_length(a)`.
        if isinstance(result, pa.Scalar):
            return pa.array(np.full(self._rows, result.as_py() is True, dtype=bool))
        return result

    def _is_in(
        self, operand: pa.Array, values: tuple[object, ...], arrow_type: pa.DataType, reads_json: bool
    ) -> pa.Array:
        if operand.type != arrow_type:
            operand = pc.cast(operand, arrow_type)
        found = pc.is_in(operand, value_set=pa.array(values, arrow_type))
        if reads_json or operand.null_count == 0:
            return found
        # is_in calls a null "not found"; for a nullable field it must stay unknown.
        return pc.if_else(pc.is_valid(operand), found, pa.scalar(None, pa.bool_()))

    def _is_null(self, operand: plan.FieldColumn | plan.JsonValue, negate: bool) -> pa.Array:
        if isinstance(operand, plan.JsonValue):
            exists = self.value(operand)  # the EXISTS view: never null
            return exists if negate else pc.invert(exists)
        column = self.column(operand.name)
        return pc.is_valid(column) if negate else pc.is_null(column)

    def _contains(
        self,
        source: plan.FieldColumn | plan.JsonValue,
        values: tuple[object, ...],
        arrow_type: pa.DataType,
        mode: str,
    ) -> pa.Array:
        lists = self.value(source)
        flat = pc.list_flatten(lists)
        if flat.type != arrow_type:
            flat = pc.cast(flat, arrow_type)
        owners = pc.list_parent_indices(lists).to_numpy()
        if mode == "all":
            found = np.ones(len(lists), dtype=bool)
            for wanted in set(values):
                found &= _rows_with(owners, pc.equal(flat, pa.scalar(wanted, arrow_type)), len(lists))
        else:
            found = _rows_with(owners, pc.is_in(flat, value_set=pa.array(values, arrow_type)), len(lists))
        result = pa.array(found)
        if isinstance(source, plan.JsonValue) or lists.null_count == 0:
            return result  # JSON: a value that is not a list contains nothing
        return pc.if_else(pc.is_valid(lists), result, pa.scalar(None, pa.bool_()))

    # -- values -----------------------------------------------------------------------------
    def value(self, node: plan.Value) -> pa.Array | pa.Scalar:
        match node:
            case plan.FieldColumn(name):
                return self.column(name)
            case plan.JsonValue(column, path, view):
                return self._json_views[(column, path, view)]
            case plan.Const(value, arrow_type):
                return pa.scalar(value, arrow_type)
            case plan.ArrayElement(column, index):
                return _element(self.column(column), index)
            case plan.ArrayLength(source):
                return pc.cast(pc.list_value_length(self.value(source)), pa.int64())
            case plan.Arithmetic(op, left, right):
                return apply_arithmetic(op, self.value(left), self.value(right))
        raise TypeError(f"not a value: {node!r}")


def _settle_json(result: pa.Array | pa.Scalar, missing: bool) -> pa.Array | pa.Scalar:
    """A JSON predicate is two-valued: a missing key or another type decides ``missing``."""
    return pc.fill_null(result, missing)


def _rows_with(owners: np.ndarray, hits: pa.Array, rows: int) -> np.ndarray:
    """Which rows own at least one hit, from the per-element hits and their owning rows."""
    found = np.zeros(rows, dtype=bool)
    hit = np.asarray(pc.fill_null(hits, False).to_numpy(zero_copy_only=False), dtype=bool)
    found[owners[hit]] = True
    return found


def _element(lists: pa.ListArray, index: int) -> pa.Array:
    """``lists[i][index]`` for every row; null where the list is null or too short."""
    offsets = lists.offsets.to_numpy()
    starts, lengths = offsets[:-1], np.diff(offsets)
    valid = lengths > index
    if lists.null_count:
        valid &= np.asarray(lists.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    element_type = lists.type.value_type
    if not valid.any():
        return pa.nulls(len(lists), element_type)
    positions = np.where(valid, starts + index, 0)
    taken = lists.values.take(pa.array(positions))
    return pc.if_else(pa.array(valid), taken, pa.scalar(None, element_type))
