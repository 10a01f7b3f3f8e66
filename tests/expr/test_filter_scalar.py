"""Scalar filters against a plain-Python oracle with Milvus's null semantics (Kleene, null = false)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheafdb.expr import compile_filter
from sheafdb.schema import CollectionSchema

from .expr_fixtures import OPS, make_schema

Row = dict[str, Any]
Truth = bool | None
Oracle = Callable[[Row], Truth]

SCHEMA = make_schema()
WORDS = ["", "a", "ab", "abc", "b", "ba", "cab", "x%y", "a_c"]


def _and(x: Truth, y: Truth) -> Truth:
    if x is False or y is False:
        return False
    return None if x is None or y is None else True


def _or(x: Truth, y: Truth) -> Truth:
    if x is True or y is True:
        return True
    return None if x is None or y is None else False


def _not(x: Truth) -> Truth:
    return None if x is None else not x


def _cmp(op: str, value: Any, literal: Any) -> Truth:
    return None if value is None else OPS[op](value, literal)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _like(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.S)


ints = st.integers(-20, 20)
op = st.sampled_from(list(OPS))


@st.composite
def atoms(draw: st.DrawFn) -> tuple[str, Oracle]:
    kind = draw(st.integers(0, 12))
    if kind == 0:
        o, v = draw(op), draw(ints)
        return f"a {o} {v}", lambda r: _cmp(o, r["a"], v)
    if kind == 1:
        o, v = draw(op), draw(st.floats(-20, 20, allow_nan=False).map(lambda x: round(x, 2)))
        return f"b {o} {v!r}", lambda r: _cmp(o, r["b"], v)
    if kind == 2:
        o, v = draw(op), draw(st.sampled_from(WORDS))
        return f's {o} "{v}"', lambda r: _cmp(o, r["s"], v)
    if kind == 3:
        values = draw(st.lists(ints, max_size=4))
        negate = draw(st.booleans())
        text = f"a {'not in' if negate else 'in'} {values}"
        return text, lambda r: None if r["a"] is None else (r["a"] in values) != negate
    if kind == 4:
        values = draw(st.lists(st.sampled_from(WORDS), max_size=3))
        return f"s in {values!r}", lambda r: None if r["s"] is None else r["s"] in values
    if kind == 5:
        stem = draw(st.sampled_from(["a", "b", "ab", "c"]))
        pattern = draw(st.sampled_from([f"{stem}%", f"%{stem}", f"%{stem}%", f"{stem}_", f"_{stem}%"]))
        rx = _like(pattern)
        return f's like "{pattern}"', lambda r: None if r["s"] is None else bool(rx.fullmatch(r["s"]))
    if kind == 6:
        negate = draw(st.booleans())
        name = draw(st.sampled_from(["a", "b", "s", "flag"]))
        text = f"{name} is {'not ' if negate else ''}null"
        return text, lambda r: (r[name] is None) != negate
    if kind == 7:
        lo, hi = sorted(draw(st.lists(ints, min_size=2, max_size=2)))
        o1, o2 = draw(st.sampled_from(["<", "<="])), draw(st.sampled_from(["<", "<="]))
        return (
            f"{lo} {o1} a {o2} {hi}",
            lambda r: None if r["a"] is None else (OPS[o1](lo, r["a"]) and OPS[o2](r["a"], hi)),
        )
    if kind == 8:
        k, v, o = draw(ints), draw(ints), draw(op)
        return f"a + {k} {o} {v}", lambda r: None if r["a"] is None else OPS[o](r["a"] + k, v)
    if kind == 9:
        m, v = draw(st.integers(1, 7)), draw(st.integers(-6, 6))
        return (
            f"a % {m} == {v}",
            lambda r: None if r["a"] is None else r["a"] - m * _trunc_div(r["a"], m) == v,
        )
    if kind == 10:
        k, v, o = draw(st.integers(-3, 3)), draw(ints), draw(op)
        return f"a * {k} - 1 {o} {v}", lambda r: None if r["a"] is None else OPS[o](r["a"] * k - 1, v)
    if kind == 11:
        return "flag", lambda r: r["flag"]
    v = draw(st.booleans())
    return f"flag == {str(v).lower()}", lambda r: None if r["flag"] is None else r["flag"] == v


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> tuple[str, Oracle]:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(atoms())
    shape = draw(st.sampled_from(["and", "or", "not", "&&", "||", "!"]))
    left_text, left = draw(expressions(depth - 1))
    if shape in ("not", "!"):
        return f"{shape} ({left_text})", lambda r: _not(left(r))
    right_text, right = draw(expressions(depth - 1))
    combine = _and if shape in ("and", "&&") else _or
    return f"({left_text}) {shape} ({right_text})", lambda r: combine(left(r), right(r))


rows = st.lists(
    st.fixed_dictionaries(
        {
            "a": st.none() | ints,
            "b": st.none() | st.floats(-20, 20, allow_nan=False).map(lambda x: round(x, 1)),
            "s": st.none() | st.sampled_from(WORDS),
            "flag": st.none() | st.booleans(),
        }
    ),
    max_size=25,
)


def table_of(data: list[Row], schema: CollectionSchema = SCHEMA) -> pa.Table:
    return pa.table(
        {
            "a": pa.array([r["a"] for r in data], pa.int64()),
            "b": pa.array([r["b"] for r in data], pa.float64()),
            "s": pa.array([r["s"] for r in data], pa.string()),
            "flag": pa.array([r["flag"] for r in data], pa.bool_()),
        }
    )


@settings(max_examples=300, deadline=None)
@given(data=rows, expression=expressions())
def test_scalar_filters_match_the_oracle(data: list[Row], expression: tuple[str, Oracle]) -> None:
    text, oracle = expression
    mask = compile_filter(text, SCHEMA).evaluate(table_of(data))
    assert mask.dtype == np.bool_ and mask.shape == (len(data),)
    assert mask.tolist() == [oracle(r) is True for r in data], text


def test_multi_chunk_columns() -> None:
    chunked = pa.table({"a": pa.chunked_array([[1, 2], [3, None, 5]], pa.int64())})
    assert compile_filter("a >= 2 and a != 5", SCHEMA).evaluate(chunked).tolist() == [
        False,
        True,
        True,
        False,
        False,
    ]


def test_empty_filter_keeps_every_row_and_reads_nothing() -> None:
    for text in ("", "   "):
        flt = compile_filter(text, SCHEMA)
        assert flt.matches_all and flt.fields == frozenset() and flt.primary_keys() is None
        assert flt.evaluate(pa.table({"x": [1, 2, 3]})).tolist() == [True, True, True]


def test_float32_field_compares_in_float32() -> None:
    table = pa.table({"f32": pa.array([0.1, 0.2, 0.3], pa.float32())})
    assert compile_filter("f32 == 0.1", SCHEMA).evaluate(table).tolist() == [True, False, False]
    assert compile_filter("f32 in [0.2, 0.3]", SCHEMA).evaluate(table).tolist() == [False, True, True]
    assert compile_filter("f32 > 0.1", SCHEMA).evaluate(table).tolist() == [False, True, True]


def test_narrow_integer_field_against_out_of_range_literals() -> None:
    table = pa.table({"small": pa.array([-128, 0, 127], pa.int8())})
    assert compile_filter("small < 1000", SCHEMA).evaluate(table).tolist() == [True, True, True]
    assert compile_filter("small in [127, 1000]", SCHEMA).evaluate(table).tolist() == [False, False, True]


def test_arithmetic_operators() -> None:
    table = pa.table({"a": pa.array([-7, 0, 7, 9], pa.int64()), "b": pa.array([1.5, 2.0, -2.5, 3.0])})

    def keep(text: str) -> list[bool]:
        return compile_filter(text, SCHEMA).evaluate(table).tolist()

    assert keep("a / 2 == -3") == [True, False, False, False]  # truncates toward zero
    assert keep("a % 2 == -1") == [True, False, False, False]  # remainder takes the dividend's sign
    assert keep("a ** 2 > 48.5") == [True, False, True, True]
    assert keep("b * 2 == 3") == [True, False, False, False]
    assert keep("-a == 7") == [True, False, False, False]
    assert keep("a / b < 0") == [True, False, True, False]
    assert keep("a - a / a * a == 0") == [True, False, True, True]  # 0 / 0 is null: never matches
    assert keep("2 * 3 + 1 == a") == [False, False, True, False]  # folded constant


def test_constant_predicates() -> None:
    table = pa.table({"a": pa.array([1, None], pa.int64())})
    assert compile_filter("1 < 2", SCHEMA).evaluate(table).tolist() == [True, True]
    assert compile_filter("true", SCHEMA).evaluate(table).tolist() == [True, True]
    assert compile_filter("a > 0 and false", SCHEMA).evaluate(table).tolist() == [False, False]
    assert compile_filter("a > 0 or TRUE", SCHEMA).evaluate(table).tolist() == [True, True]


@pytest.mark.parametrize("text", ["flag == true", "flag != false", "flag"])
def test_bool_field(text: str) -> None:
    table = pa.table({"flag": pa.array([True, False, None])})
    assert compile_filter(text, SCHEMA).evaluate(table).tolist() == [True, False, False]


def test_large_integers_are_exact() -> None:
    big = 2**62 + 1
    table = pa.table({"a": pa.array([big, big - 1], pa.int64())})
    assert compile_filter(f"a == {big}", SCHEMA).evaluate(table).tolist() == [True, False]
    assert compile_filter(f"a in [{big}]", SCHEMA).evaluate(table).tolist() == [True, False]
    assert compile_filter("a == -9223372036854775808", SCHEMA).evaluate(table).tolist() == [False, False]
