"""The public face of the filter language: compile once per request, evaluate per segment."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from sheafdb.errors import UnexpectedError
from sheafdb.expr import plan
from sheafdb.expr.evaluate import evaluate_plan
from sheafdb.expr.indexed import ScalarLookup
from sheafdb.expr.json_column import JsonColumn, JsonProjections
from sheafdb.expr.planner import PlannedFilter, plan_filter
from sheafdb.expr.syntax import parse
from sheafdb.schema import CollectionSchema
from sheafdb.text.match_index import MatchIndexes


def compile_filter(text: str, schema: CollectionSchema, params: Mapping[str, Any] | None = None) -> Filter:
    """Parse and type-check a Milvus filter; ParameterInvalid (1100) saying what and where.

    An empty (or blank) text is no filter: it keeps every row.
    """
    if not text.strip():
        return Filter(text, schema, PlannedFilter(plan.Constant(True), frozenset(), frozenset(), {}))
    return Filter(text, schema, plan_filter(text, parse(text), schema, params))


class Filter:
    """A compiled filter. Immutable and safe to share between threads."""

    def __init__(self, text: str, schema: CollectionSchema, planned: PlannedFilter) -> None:
        self.text = text
        self.predicate: plan.Predicate = planned.predicate
        self.fields: frozenset[str] = planned.fields  # schema fields it reads
        self.dynamic_keys: frozenset[str] = planned.dynamic_keys  # keys of "$meta" it reads
        # JSON columns (JSON fields and "$meta") -> the (path, view) projections it reads.
        self.json_views: Mapping[str, frozenset[tuple[plan.JsonPath, plan.JsonView]]] = planned.json_views
        primary = schema.primary_field
        self._primary_field = primary.name
        self._primary_is_int = primary.dtype.is_integer

    @property
    def matches_all(self) -> bool:
        """True when the filter keeps every row without reading anything (no filter)."""
        return self.predicate == plan.Constant(True)

    def evaluate(
        self,
        table: pa.Table,
        json_columns: Mapping[str, JsonProjections] | None = None,
        indexes: ScalarLookup | None = None,
        match_indexes: MatchIndexes | None = None,
    ) -> np.ndarray:
        """The rows the filter keeps, as a numpy bool mask of ``table.num_rows``.

        ``table`` holds the fields the filter reads and ``"$meta"`` when it reads dynamic
        keys. ``json_columns`` are prepared ``JsonColumn``s of those JSON columns (same rows
        as ``table``); a JSON column not given is parsed here, once for this call. ``indexes``
        (a sealed segment's loaded scalar indexes) answer what they can; the result is the
        same as without them. ``match_indexes`` keeps the text match indexes of a loaded
        segment's ``table``.
        """
        prepared: dict[str, JsonProjections] = {}
        for column in self.json_views:
            given: JsonProjections | None = (json_columns or {}).get(column)
            if given is None:
                given = JsonColumn(_json_text(table, column))
            elif len(given) != table.num_rows:
                raise UnexpectedError(
                    f"prepared JSON column {column} has {len(given)} rows, the table {table.num_rows}"
                )
            prepared[column] = given
        # Projections are taken when a leaf reads them: one an index answers is never parsed.
        views = _LazyViews(prepared, self.json_views)
        return evaluate_plan(self.predicate, table, views, indexes, match_indexes)

    def primary_keys(self) -> list[int] | list[str] | None:
        """The keys when the filter is exactly ``pk in [...]`` or ``pk == v``; else None."""
        keys: list[object] | None = None
        match self.predicate:
            case plan.IsIn(plan.FieldColumn(name), values, _, False) if name == self._primary_field:
                keys = list(dict.fromkeys(values))
            case plan.Compare("==", plan.FieldColumn(name), plan.Const(value), False) if (
                name == self._primary_field
            ):
                keys = [value]
            case plan.Compare("==", plan.Const(value), plan.FieldColumn(name), False) if (
                name == self._primary_field
            ):
                keys = [value]
        key_type = int if self._primary_is_int else str
        if keys is None or not all(type(k) is key_type for k in keys):
            return None  # e.g. `id == 1.0`: not a plain key list, evaluate it instead
        return keys  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"


class _LazyViews(Mapping[tuple[str, plan.JsonPath, plan.JsonView], pa.Array]):
    """JSON projections taken from the prepared columns when first read (for one evaluation):
    every projection the filter reads of that column at once, so its text is parsed once."""

    def __init__(
        self,
        prepared: Mapping[str, JsonProjections],
        wanted: Mapping[str, frozenset[tuple[plan.JsonPath, plan.JsonView]]],
    ) -> None:
        self._prepared = prepared
        self._wanted = wanted
        self._taken: dict[tuple[str, plan.JsonPath, plan.JsonView], pa.Array] = {}

    def __getitem__(self, key: tuple[str, plan.JsonPath, plan.JsonView]) -> pa.Array:
        if key not in self._taken:
            column = key[0]
            for (path, view), array in self._prepared[column].views(self._wanted[column]).items():
                self._taken[(column, path, view)] = array
        return self._taken[key]

    def __iter__(self) -> Iterator[tuple[str, plan.JsonPath, plan.JsonView]]:
        return iter(self._taken)

    def __len__(self) -> int:
        return len(self._taken)


def _json_text(table: pa.Table, column: str) -> pa.ChunkedArray:
    if column not in table.column_names:
        # The read plane refuses filters on unloaded fields before evaluating; reaching this
        # is a bug in the caller, not a client error.
        raise UnexpectedError(f"filter reads JSON column {column}, which the table does not hold")
    return table.column(column)
