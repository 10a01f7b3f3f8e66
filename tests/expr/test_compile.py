"""compile_filter: name resolution, templates, primary keys and every refusal (1100, with position)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from sheafdb.errors import ParameterInvalid
from sheafdb.expr import compile_filter
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

from .expr_fixtures import make_schema

SCHEMA = make_schema()
STATIC = make_schema(dynamic=False)


@pytest.mark.parametrize(
    ("text", "detail", "position"),
    [
        ("s == 1", "comparisons between VarChar and Int64 are not supported", 0),
        ('a == "x"', "comparisons between Int64 and VarChar are not supported", 0),
        ("flag < true", "operator < is not supported on Bool", 0),
        ("a > 9223372036854775808", "integer 9223372036854775808 is out of range of Int64", 4),
        ("a > -9223372036854775809", "out of range of Int64", 4),
        ("a == 9223372036854775807 + 1", "constant arithmetic failed", 5),
        ("unknown_fn(a) > 1", "function unknown_fn is not supported", 0),
        ("vec > 1", "vector field vec cannot be used in a filter", 0),
        ("a in [1.5]", "cannot cast value 1.5 to Int64", 0),
        ('a in [1, "x"]', "cannot cast value 'x' to Int64", 0),
        ("s in [1]", "cannot cast value 1 to VarChar", 0),
        ("a in 3", "the right side of 'in' must be a list", 0),
        ('a like "x%"', "like operation on non-string field is unsupported: Int64", 0),
        ("s like s", "the pattern of 'like' must be a string literal", 0),
        ("s + 1 > 2", "operator + needs numbers, got VarChar", 0),
        ("a / 0 > 1", "division by zero", 0),
        ("a", "the filter must be a boolean expression, got Int64", 0),
        ("1 < a > 0", "invalid range", 0),
        ("a == 1 == 2", "invalid range", 0),
        ("exists a", "exists needs a JSON field or dynamic key", 0),
        ("(a > 1) + 1 > 0", "a boolean expression cannot be used as a value", 1),
        ("json_contains_all(tags, 1)", "must be a list", 0),
        ("array_contains(a, 1)", "needs an array or JSON field", 0),
        ("array_contains(tags, 1, 2)", "takes 2 arguments", 0),
        ('array_contains(tags, "x")', "cannot cast value 'x' to Int64", 0),
        ("tags[0][1] == 1", "array field tags takes one integer index", 0),
        ('a["k"] == 1', "field a of type Int64 cannot be indexed", 0),
        ("meta == 1", None, None),  # whole JSON compared: allowed as the root value
        ("k == meta", "comparisons between two JSON values are not supported", 0),
        ("tags == 1", "comparisons between Array and Int64 are not supported", 0),
        ("a in {missing}", "the value of expression template variable name missing is not found", 5),
        ("array_length(a) == 1", "array_length needs an array or JSON field", 0),
        ("a > 1 and", "syntax error: unexpected end of expression", 9),
    ],
)
def test_refusals_say_what_and_where(text: str, detail: str | None, position: int | None) -> None:
    if detail is None:
        compile_filter(text, SCHEMA)
        return
    with pytest.raises(ParameterInvalid) as info:
        compile_filter(text, SCHEMA)
    assert info.value.code == 1100
    message = info.value.message
    assert message.startswith(f"cannot parse expression: {text}, error: ")
    assert detail in message
    assert f"(at position {position})" in message
    assert message.endswith(": invalid parameter")


def test_unknown_name_without_dynamic_field() -> None:
    with pytest.raises(ParameterInvalid, match="field color not exist"):
        compile_filter('color == "red"', STATIC)
    with pytest.raises(ParameterInvalid, match=r"field \$meta not exist"):
        compile_filter('$meta["color"] == "red"', STATIC)


@pytest.mark.parametrize(
    ("text", "params", "expected"),
    [
        ("a in {ids}", {"ids": [1, 3]}, [True, False, True, None]),
        ("a > {low} and a < {high}", {"low": 1, "high": 4}, [False, True, True, None]),
        ("s == {name}", {"name": "two"}, [False, True, False, None]),
        ("b >= {x}", {"x": 2}, [False, True, True, None]),
        ("flag == {f}", {"f": False}, [False, True, False, None]),
        ("a in [{one}, 2]", {"one": 1}, [True, True, False, None]),
        ("k in {ks}", {"ks": ["p", 2]}, [True, False, True, None]),
        ("array_contains_any(tags, {t})", {"t": (7, 9)}, [True, False, False, None]),
    ],
)
def test_templates(text: str, params: dict[str, Any], expected: list[bool | None]) -> None:
    table = pa.table(
        {
            "a": pa.array([1, 2, 3, None], pa.int64()),
            "s": ["one", "two", "three", None],
            "b": [1.0, 2.0, 3.0, None],
            "flag": [True, False, None, None],
            "$meta": ['{"k": "p"}', '{"k": 1}', '{"k": 2}', "{}"],
            "tags": pa.array([[7], [8], [], None], pa.list_(pa.int64())),
        }
    )
    assert compile_filter(text, SCHEMA, params).evaluate(table).tolist() == [e is True for e in expected]


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"v": {"nested": 1}}, "unsupported value type dict for template variable v"),
        ({"v": None}, "unsupported value type NoneType"),
        ({"v": 2**64}, "out of range of Int64"),
        ({"v": "text"}, "comparisons between Int64 and VarChar"),
        ({"v": 3}, "the right side of 'in' must be a list"),
    ],
)
def test_template_values_are_checked(params: dict[str, Any], detail: str) -> None:
    text = "a in {v}" if params.get("v") == 3 else "a == {v}"
    with pytest.raises(ParameterInvalid, match=detail):
        compile_filter(text, SCHEMA, params)


def test_fields_and_dynamic_keys() -> None:
    flt = compile_filter('a > 1 and meta["x"] == 2 or color == "red" and array_length(tags) > 0', SCHEMA)
    assert flt.fields == frozenset({"a", "meta", "tags"})
    assert flt.dynamic_keys == frozenset({"color"})


@pytest.mark.parametrize(
    ("text", "params", "keys"),
    [
        ("id in [3, 1, 3]", None, [3, 1]),
        ("id == 7", None, [7]),
        ("7 == id", None, [7]),
        ("id in {ids}", {"ids": [5, 6]}, [5, 6]),
        ("id in []", None, []),
        ("id not in [1]", None, None),
        ("id == 1 and a > 0", None, None),
        ("id > 1", None, None),
        ("a in [1]", None, None),
        ("id == 1.0", None, None),
    ],
)
def test_primary_keys_int(text: str, params: dict[str, Any] | None, keys: list[int] | None) -> None:
    assert compile_filter(text, SCHEMA, params).primary_keys() == keys


def test_primary_keys_varchar() -> None:
    schema = CollectionSchema(
        fields=(
            FieldSchema("pk", DataType.VARCHAR, is_primary=True, max_length=16),
            FieldSchema("v", DataType.FLOAT_VECTOR, dim=2),
        )
    )
    assert compile_filter("pk in ['a', \"b\"]", schema).primary_keys() == ["a", "b"]
    assert compile_filter('pk == "z"', schema).primary_keys() == ["z"]
    assert compile_filter('pk like "z%"', schema).primary_keys() is None
