"""ARRAY fields against a plain-Python oracle."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from sheafdb.expr import compile_filter

from .expr_fixtures import make_schema

SCHEMA = make_schema()
arrays = st.lists(st.none() | st.lists(st.integers(0, 5), max_size=4), max_size=20)


def tags_table(values: list[Any]) -> pa.Table:
    return pa.table({"tags": pa.array(values, pa.list_(pa.int64()))})


@settings(max_examples=150, deadline=None)
@given(values=arrays, wanted=st.lists(st.integers(0, 6), min_size=1, max_size=3), index=st.integers(0, 3))
def test_array_functions_match_the_oracle(values: list[Any], wanted: list[int], index: int) -> None:
    table = tags_table(values)

    def keep(text: str) -> list[bool]:
        return compile_filter(text, SCHEMA).evaluate(table).tolist()

    def rows(check: Any) -> list[bool]:
        return [v is not None and bool(check(v)) for v in values]

    assert keep(f"array_contains(tags, {wanted[0]})") == rows(lambda v: wanted[0] in v)
    assert keep(f"ARRAY_CONTAINS_ALL(tags, {wanted})") == rows(lambda v: all(w in v for w in wanted))
    assert keep(f"array_contains_any(tags, {wanted})") == rows(lambda v: any(w in v for w in wanted))
    assert keep(f"json_contains(tags, {wanted[0]})") == rows(lambda v: wanted[0] in v)
    assert keep(f"array_length(tags) == {index}") == rows(lambda v: len(v) == index)
    assert keep(f"tags[{index}] >= {wanted[0]}") == rows(lambda v: len(v) > index and v[index] >= wanted[0])
    assert keep(f"tags[{index}] in {wanted}") == rows(lambda v: len(v) > index and v[index] in wanted)
    # A null array is unknown, so negating keeps it out; a short array has no element.
    assert keep(f"not array_contains(tags, {wanted[0]})") == rows(lambda v: wanted[0] not in v)


def test_sliced_array_column() -> None:
    table = tags_table([[1], [2, 3], [4], [5, 6]]).slice(1, 2)
    assert compile_filter("tags[1] == 3", SCHEMA).evaluate(table).tolist() == [True, False]
    assert compile_filter("array_contains(tags, 4)", SCHEMA).evaluate(table).tolist() == [False, True]


def test_varchar_array() -> None:
    table = pa.table({"words": pa.array([["a", "b"], [], ["c"]], pa.list_(pa.string()))})
    assert compile_filter('array_contains(words, "b")', SCHEMA).evaluate(table).tolist() == [
        True,
        False,
        False,
    ]
    assert compile_filter('words[0] like "c%"', SCHEMA).evaluate(table).tolist() == [False, False, True]
