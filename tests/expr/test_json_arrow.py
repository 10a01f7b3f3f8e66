"""The Arrow JSON fast path must give exactly what json.loads gives, or step aside."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from sheafdb.expr import ChainedJsonColumn, JsonColumn, JsonView
from sheafdb.expr.json_arrow import MIN_ARROW_ROWS, project_with_arrow, split_views
from sheafdb.expr.json_column import _project_in_python

SCALAR_VIEWS = (JsonView.NUMBER, JsonView.STRING, JsonView.BOOL)
KEYS = [(("color",), JsonView.STRING), (("n",), JsonView.NUMBER), (("ok",), JsonView.BOOL)]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
documents = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["color", "n", "ok", "inner", "other"]),
        st.one_of(scalars, st.dictionaries(st.sampled_from(["x", "y"]), scalars, max_size=2)),
        max_size=4,
    ),
)


def _text(docs: list[Any]) -> pa.Array:
    return pa.array(
        [None if d is None else json.dumps(d, indent=1 if i % 3 == 0 else None) for i, d in enumerate(docs)]
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(documents, min_size=1, max_size=80), st.sampled_from(["color", "n", "ok", "inner"]))
def test_arrow_projection_equals_python_or_declines(docs: list[Any], key: str) -> None:
    text = _text(docs)
    keys = [((key,), view) for view in SCALAR_VIEWS[:1]] + [((key, "x"), JsonView.NUMBER)]
    arrow_keys, rest = split_views(keys)
    assert rest == [] or rest == [((key, "x"), JsonView.NUMBER)]
    projected = project_with_arrow(text, arrow_keys)
    if projected is not None:
        expected = _project_in_python(text, arrow_keys)
        for k in arrow_keys:
            assert projected[k].to_pylist() == expected[k].to_pylist(), k


@settings(max_examples=30, deadline=None)
@given(st.lists(documents, min_size=MIN_ARROW_ROWS, max_size=MIN_ARROW_ROWS + 40))
def test_json_column_gives_python_results_through_either_path(docs: list[Any]) -> None:
    text = _text(docs)
    keys = [*KEYS, (("inner", "x"), JsonView.NUMBER), (("n",), JsonView.EXISTS)]
    got = JsonColumn(text).views(keys)
    expected = _project_in_python(text, keys)
    for k in keys:
        assert got[k].to_pylist() == expected[k].to_pylist(), k


def test_homogeneous_keys_are_read_by_arrow_and_mixed_ones_fall_back() -> None:
    rows = [{"color": ["red", "blue"][i % 2], "n": i, "ok": i % 3 == 0} for i in range(200)]
    rows[7] = {"n": 1.5, "inner": {"x": 2}}
    rows[9] = None
    text = _text(rows)
    projected = project_with_arrow(text, KEYS)
    assert projected is not None
    assert projected[KEYS[0]].to_pylist()[:3] == ["red", "blue", "red"]
    assert projected[KEYS[1]].to_pylist()[7] == 1.5 and projected[KEYS[1]].to_pylist()[9] is None
    rows[11] = {"color": 5}  # a key holding two types: Arrow declines, json.loads nulls that row
    mixed = _text(rows)
    assert project_with_arrow(mixed, KEYS) is None
    assert JsonColumn(mixed).views([KEYS[0]])[KEYS[0]].to_pylist()[11] is None


def test_clashing_paths_are_left_to_python() -> None:
    keys = [
        (("a",), JsonView.NUMBER),
        (("a",), JsonView.STRING),
        (("a", "b"), JsonView.BOOL),
        ((0,), JsonView.NUMBER),
    ]
    arrow_keys, rest = split_views(keys)
    assert arrow_keys == [(("a",), JsonView.NUMBER)]
    assert rest == keys[1:]


def test_chained_column_concatenates_its_pieces() -> None:
    first = JsonColumn(_text([{"n": i} for i in range(100)]))
    second = JsonColumn(_text([{"n": "x"}, {"n": 3}]))
    chained = ChainedJsonColumn([first, second])
    assert len(chained) == 102
    values = chained.views([KEYS[1]])[KEYS[1]].to_pylist()
    assert values[:2] == [0.0, 1.0] and values[100:] == [None, 3.0]
    assert chained.nbytes == first.nbytes + second.nbytes > 0
