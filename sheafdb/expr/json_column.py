"""JSON text columns seen through typed projections, parsed once and cached.

A JSON field or ``$meta`` is stored as JSON text (``pa.string()``). Filters on JSON paths need
typed columns (numbers, strings, ...): ``JsonColumn`` parses the text once for every path that
is asked for together, and keeps each projection as a compact Arrow array. Whoever owns a
loaded segment keeps one ``JsonColumn`` per JSON column for as long as the segment is loaded
and passes it to ``Filter.evaluate``; later filters on the same paths then cost only
vectorised compute. Parsing is the only per-row Python work in the filter language.

Concurrency: one lock per ``JsonColumn`` guards its projection cache; it is held while
missing projections are built, so concurrent searches never parse the same text twice.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import pyarrow as pa

from sheafdb.expr.json_arrow import MIN_ARROW_ROWS, project_with_arrow, split_views
from sheafdb.expr.plan import JsonPath, JsonView

# Stands for "no value at this path" (distinct from JSON null, which is None).
_MISSING = object()
# Beyond 2**53 a float no longer holds every integer; such integers keep their exact text.
_EXACT_FLOAT_LIMIT = 2**53

ViewKey = tuple[JsonPath, JsonView]


class JsonProjections(Protocol):
    """What ``Filter.evaluate`` needs of a prepared JSON column (a JsonColumn or several chained)."""

    def __len__(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    def views(self, wanted: Iterable[ViewKey]) -> Mapping[ViewKey, pa.Array]: ...


class JsonColumn:
    """Typed projections of one JSON text column (a segment's JSON field or ``$meta``)."""

    def __init__(self, text: pa.Array | pa.ChunkedArray) -> None:
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks() if text.num_chunks != 1 else text.chunk(0)
        self._text = text
        self._lock = threading.Lock()
        self._views: dict[ViewKey, pa.Array] = {}

    def __len__(self) -> int:
        return len(self._text)

    @property
    def nbytes(self) -> int:
        """Bytes of the projections built so far (the text itself is the segment's)."""
        with self._lock:
            return sum(view.nbytes for view in self._views.values())

    @property
    def projections_built(self) -> int:
        """How many projections exist (they are only ever added): a cheap "did it grow"."""
        return len(self._views)

    def views(self, wanted: Iterable[ViewKey]) -> Mapping[ViewKey, pa.Array]:
        """The projections asked for; the text is parsed at most once for all missing ones."""
        wanted = list(wanted)
        with self._lock:
            missing = [key for key in wanted if key not in self._views]
            if missing:
                self._views.update(_project(self._text, missing))
            return {key: self._views[key] for key in wanted}


class ChainedJsonColumn:
    """One JSON column made of immutable pieces, each prepared once (a growing table's batches).

    A new batch adds a piece; the pieces already parsed are reused, so appending rows never
    re-parses old ones. Views are the pieces' views concatenated (vectorised, no parsing).
    """

    def __init__(self, pieces: Sequence[JsonColumn]) -> None:
        self._pieces = tuple(pieces)

    def __len__(self) -> int:
        return sum(len(piece) for piece in self._pieces)

    @property
    def nbytes(self) -> int:
        return sum(piece.nbytes for piece in self._pieces)

    def views(self, wanted: Iterable[ViewKey]) -> Mapping[ViewKey, pa.Array]:
        wanted = list(wanted)
        per_piece = [piece.views(wanted) for piece in self._pieces]
        return {key: pa.concat_arrays([views[key] for views in per_piece]) for key in wanted}


def element_token(value: object) -> str:
    """A JSON value as a type-tagged string, so list membership is one string comparison.

    Numbers compare by value (``1`` and ``1.0`` give the same token), never equal to strings
    or booleans, like Milvus's JSON comparisons.
    """
    if isinstance(value, bool):
        return "b:" + ("true" if value else "false")
    if isinstance(value, int):
        if abs(value) <= _EXACT_FLOAT_LIMIT:
            return "n:" + repr(float(value))
        return "n:" + str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) > _EXACT_FLOAT_LIMIT:
            return "n:" + str(int(value))
        return "n:" + repr(value)
    if isinstance(value, str):
        return "s:" + value
    return "j:" + json.dumps(value, sort_keys=True, separators=(",", ":"))


def _project(text: pa.Array, keys: list[ViewKey]) -> dict[ViewKey, pa.Array]:
    out: dict[ViewKey, pa.Array] = {}
    if len(text) >= MIN_ARROW_ROWS:
        fast, keys = split_views(keys)
        projected = project_with_arrow(text, fast) if fast else {}
        if projected is None:
            keys = [*fast, *keys]  # Arrow refused (mixed types): every key goes through json.loads
        else:
            out.update(projected)
    if keys:
        out.update(_project_in_python(text, keys))
    return out


def _project_in_python(text: pa.Array, keys: list[ViewKey]) -> dict[ViewKey, pa.Array]:
    documents = [_load(s) for s in text.to_pylist()]
    by_path: dict[JsonPath, list[Any]] = {}
    out: dict[ViewKey, pa.Array] = {}
    for path, view in keys:
        if path not in by_path:
            by_path[path] = [_walk(doc, path) for doc in documents]
        out[(path, view)] = _BUILDERS[view](by_path[path])
    return out


def _load(text: str | None) -> Any:
    if text is None:
        return _MISSING
    try:
        return json.loads(text)
    except ValueError:
        # Stored rows were validated on insert; unreadable text behaves as an absent value.
        return _MISSING


def _walk(doc: Any, path: JsonPath) -> Any:
    for step in path:
        if isinstance(step, str):
            if not isinstance(doc, dict) or step not in doc:
                return _MISSING
            doc = doc[step]
        else:
            if not isinstance(doc, list) or not 0 <= step < len(doc):
                return _MISSING
            doc = doc[step]
    return doc


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    try:
        return float(v)
    except OverflowError:
        return None


def _numbers(values: list[Any]) -> pa.Array:
    return pa.array([_number(v) for v in values], pa.float64())


def _strings(values: list[Any]) -> pa.Array:
    return pa.array([v if isinstance(v, str) else None for v in values], pa.string())


def _bools(values: list[Any]) -> pa.Array:
    return pa.array([v if isinstance(v, bool) else None for v in values], pa.bool_())


def _lists(values: list[Any]) -> pa.Array:
    tokens = [[element_token(e) for e in v] if isinstance(v, list) else None for v in values]
    return pa.array(tokens, pa.list_(pa.string()))


def _exists(values: list[Any]) -> pa.Array:
    return pa.array([v is not _MISSING and v is not None for v in values], pa.bool_())


_BUILDERS = {
    JsonView.NUMBER: _numbers,
    JsonView.STRING: _strings,
    JsonView.BOOL: _bools,
    JsonView.LIST: _lists,
    JsonView.EXISTS: _exists,
}
