"""JSON fields and dynamic keys against an oracle with Milvus's JSON rules:
a missing key or a value of another type is false (``!=`` true), numbers compare by value."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheafdb.expr import JsonColumn, JsonView, compile_filter

from .expr_fixtures import OPS, make_schema

SCHEMA = make_schema()
MISSING = object()

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.sampled_from([1.5, -2.5, 3.0])
    | st.sampled_from(["x", "y", ""])
)
json_values = json_scalars | st.lists(json_scalars, max_size=3)
documents = st.lists(st.just(MISSING) | json_values, max_size=20)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _same_type(v: Any, literal: Any) -> bool:
    if _is_number(literal):
        return _is_number(v)
    return type(v) is type(literal)


def meta_table(values: list[Any]) -> pa.Table:
    docs = [json.dumps({} if v is MISSING else {"k": v}) for v in values]
    return pa.table({"$meta": pa.array(docs, pa.string())})


literals = st.booleans() | st.integers(-5, 5) | st.sampled_from([1.5, -2.5]) | st.sampled_from(["x", "y"])


@settings(max_examples=200, deadline=None)
@given(values=documents, op=st.sampled_from(list(OPS)), literal=literals, negate=st.booleans())
def test_dynamic_key_comparisons(values: list[Any], op: str, literal: Any, negate: bool) -> None:
    if isinstance(literal, bool) and op not in ("==", "!="):
        op = "=="
    text = f"k {op} {json.dumps(literal)}"
    if negate:
        text = f"not ({text})"

    def oracle(v: Any) -> bool:
        if v is MISSING or not _same_type(v, literal):
            result = op == "!="
        else:
            result = OPS[op](v, literal)
        return result != negate

    mask = compile_filter(text, SCHEMA).evaluate(meta_table(values))
    assert mask.tolist() == [oracle(v) for v in values], text


@settings(max_examples=100, deadline=None)
@given(values=documents, items=st.lists(literals, max_size=4), negate=st.booleans())
def test_dynamic_key_membership(values: list[Any], items: list[Any], negate: bool) -> None:
    text = f"k {'not in' if negate else 'in'} {json.dumps(items)}"

    def oracle(v: Any) -> bool:
        found = v is not MISSING and any(_same_type(v, i) and v == i for i in items)
        return found != negate

    assert compile_filter(text, SCHEMA).evaluate(meta_table(values)).tolist() == [oracle(v) for v in values]


@settings(max_examples=100, deadline=None)
@given(values=documents, target=literals, mode=st.sampled_from(["", "_all", "_any"]), extra=literals)
def test_json_contains(values: list[Any], target: Any, mode: str, extra: Any) -> None:
    wanted = [target] if mode == "" else [target, extra]
    argument = json.dumps(target) if mode == "" else json.dumps(wanted)
    text = f"json_contains{mode}(k, {argument})"

    def has(lst: list[Any], t: Any) -> bool:
        return any(_same_type(e, t) and e == t for e in lst)

    def oracle(v: Any) -> bool:
        if not isinstance(v, list):
            return False
        return all(has(v, t) for t in wanted) if mode == "_all" else any(has(v, t) for t in wanted)

    assert compile_filter(text, SCHEMA).evaluate(meta_table(values)).tolist() == [oracle(v) for v in values]


@settings(max_examples=50, deadline=None)
@given(values=documents)
def test_exists_null_and_length(values: list[Any]) -> None:
    table = meta_table(values)
    present = [v is not MISSING and v is not None for v in values]
    assert compile_filter("exists k", SCHEMA).evaluate(table).tolist() == present
    assert compile_filter("k is null", SCHEMA).evaluate(table).tolist() == [not p for p in present]
    assert compile_filter("k IS NOT NULL", SCHEMA).evaluate(table).tolist() == present
    lengths = [len(v) == 2 if isinstance(v, list) else False for v in values]
    assert compile_filter("array_length(k) == 2", SCHEMA).evaluate(table).tolist() == lengths


def test_json_field_paths_nesting_and_elements() -> None:
    docs = [
        {"a": {"b": 1, "c": "hi"}, "arr": [10, 20]},
        {"a": {"b": 2.5}, "arr": [30]},
        {"a": 3},
        None,
    ]
    table = pa.table({"meta": pa.array([None if d is None else json.dumps(d) for d in docs], pa.string())})

    def keep(text: str) -> list[bool]:
        return compile_filter(text, SCHEMA).evaluate(table).tolist()

    assert keep('meta["a"]["b"] >= 1') == [True, True, False, False]
    assert keep('meta["a"]["c"] like "h%"') == [True, False, False, False]
    assert keep('meta["arr"][1] == 20') == [True, False, False, False]
    assert keep('meta["arr"][0] + 5 > 30') == [False, True, False, False]
    assert keep("meta is null") == [False, False, False, True]
    assert keep('meta["a"] == 3') == [False, False, True, False]
    assert keep('json_contains(meta["arr"], 30)') == [False, True, False, False]
    assert keep('exists meta["a"]["b"]') == [True, True, False, False]


def test_dynamic_key_spellings_agree() -> None:
    table = pa.table({"$meta": [json.dumps({"color": "red", "n": {"m": 1}}), json.dumps({"color": "blue"})]})
    for text in ['color == "red"', '$meta["color"] == "red"', 'n["m"] == 1', '$meta["n"]["m"] == 1']:
        flt = compile_filter(text, SCHEMA)
        assert flt.evaluate(table).tolist() == [True, False], text
        assert flt.dynamic_keys in (frozenset({"color"}), frozenset({"n"}))
        assert flt.fields == frozenset()


def test_numbers_compare_by_value_across_int_and_float() -> None:
    table = meta_table([1, 1.0, 2, "1", True])
    assert compile_filter("k == 1", SCHEMA).evaluate(table).tolist() == [True, True, False, False, False]
    assert compile_filter("json_contains(k, 1.0)", SCHEMA).evaluate(
        meta_table([[1], [1.0], ["1"]])
    ).tolist() == [
        True,
        True,
        False,
    ]


def test_prepared_json_column_is_parsed_once_and_reused() -> None:
    table = meta_table([1, 5, "x", MISSING])
    prepared = JsonColumn(table.column("$meta"))
    assert prepared.nbytes == 0
    first = compile_filter("k > 2", SCHEMA)
    assert first.evaluate(table, {"$meta": prepared}).tolist() == [False, True, False, False]
    after_first = prepared.nbytes
    assert after_first > 0
    views = prepared.views([(("k",), JsonView.NUMBER)])
    # Same projection object on the next call: nothing was parsed again.
    assert (
        prepared.views([(("k",), JsonView.NUMBER)])[(("k",), JsonView.NUMBER)]
        is views[(("k",), JsonView.NUMBER)]
    )
    assert compile_filter("k < 2", SCHEMA).evaluate(table, {"$meta": prepared}).tolist() == [
        True,
        False,
        False,
        False,
    ]
    assert prepared.nbytes == after_first
    compile_filter('k == "x"', SCHEMA).evaluate(table, {"$meta": prepared})
    assert prepared.nbytes > after_first  # a new projection (strings) was added


def test_prepared_column_must_match_the_table() -> None:
    from sheafdb.errors import UnexpectedError

    prepared = JsonColumn(pa.array(["{}"], pa.string()))
    with pytest.raises(UnexpectedError):
        compile_filter("k > 1", SCHEMA).evaluate(meta_table([1, 2]), {"$meta": prepared})


def test_unreadable_json_text_is_an_absent_value() -> None:
    table = pa.table({"$meta": pa.array(['{"k": 1}', "not json"], pa.string())})
    assert compile_filter("k == 1", SCHEMA).evaluate(table).tolist() == [True, False]
    assert compile_filter("k != 1", SCHEMA).evaluate(table).tolist() == [False, True]
