"""Scalar index structures answer filters exactly as the column scan does, and answer the
leaves they are meant for (the evaluator does not fall back to the scan for them)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.expr import JsonColumn, JsonPath, JsonView, compile_filter, plan
from sheafdb.expr.indexed import IndexedColumn, indexed_ranges, indexed_result
from sheafdb.index.scalar import ScalarIndexSpec, build_scalar_index, load_scalar_index, save_scalar_index
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.object_store import LocalStore

N = 2000
SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("age", DataType.INT16, nullable=True),
        FieldSchema("score", DataType.FLOAT, nullable=True),
        FieldSchema("color", DataType.VARCHAR, max_length=8, nullable=True),
        FieldSchema("name", DataType.VARCHAR, max_length=32),
        FieldSchema("flag", DataType.BOOL),
        FieldSchema("meta", DataType.JSON),
        FieldSchema("doc", DataType.JSON),
        FieldSchema("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=8, nullable=True),
        FieldSchema("nums", DataType.ARRAY, element_type=DataType.INT32, max_capacity=8),
        FieldSchema("ratios", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=8),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=2),
    )
)


def _doc(i: int) -> str:
    """A JSON list of mixed kinds at "l", or a string, or nothing there."""
    if i % 5 == 0:
        return '{"l": "not a list"}'
    if i % 5 == 1:
        return "{}"
    flag = "true" if i % 2 else "false"
    return f'{{"l": [{i % 7}, "x{i % 9}", {flag}, {1.5 if i % 3 else 2.0}, [1], {{"a": 1}}]}}'


def _table() -> pa.Table:
    rng = np.random.default_rng(7)
    ages = [None if i % 9 == 0 else int(v) for i, v in enumerate(rng.integers(-5, 120, N))]
    scores = [
        None if i % 17 == 0 else (float("nan") if i % 23 == 0 else float(v))
        for i, v in enumerate(rng.random(N))
    ]
    colors = [None if i % 5 == 0 else ("red", "green", "blue")[i % 3] for i in range(N)]
    names = [f"{('ab', 'abc', 'b', 'zeta', 'é')[i % 5]}-{i % 97}" for i in range(N)]
    metas = [f'{{"p": {i % 50}, "s": "k{i % 30}"}}' if i % 4 else f'{{"p": "{i % 50}"}}' for i in range(N)]
    return pa.table(
        {
            "id": pa.array(range(N), pa.int64()),
            "age": pa.array(ages, pa.int16()),
            "score": pa.array(scores, pa.float32()),
            "color": pa.array(colors, pa.string()),
            "name": pa.array(names, pa.string()),
            "flag": pa.array([i % 3 == 0 for i in range(N)]),
            "meta": pa.array(metas, pa.string()),
            "doc": pa.array([_doc(i) for i in range(N)], pa.string()),
            # Null arrays, empty arrays and repeated elements.
            "tags": pa.array(
                [None if i % 13 == 0 else [f"t{(i * k) % 40}" for k in range(i % 4)] for i in range(N)],
                pa.list_(pa.string()),
            ),
            "nums": pa.array([[i % 7, i % 11, i % 7] for i in range(N)], pa.list_(pa.int32())),
            "ratios": pa.array(
                [[(i % 20) / 10, float("nan")] if i % 3 else [] for i in range(N)], pa.list_(pa.float32())
            ),
        }
    )


class Lookup:
    def __init__(
        self,
        fields: dict[str, list[IndexedColumn]],
        paths: dict[tuple[str, JsonPath, JsonView], list[IndexedColumn]],
    ):
        self.fields, self.paths = fields, paths

    def for_field(self, name: str) -> Sequence[IndexedColumn]:
        return self.fields.get(name, [])

    def for_json(self, column: str, path: JsonPath, view: JsonView) -> Sequence[IndexedColumn]:
        return self.paths.get((column, path, view), [])


def _saved(index, tmp_path):  # type: ignore[no-untyped-def]
    store = LocalStore(tmp_path)
    save_scalar_index(index, store, "seg/index")
    return load_scalar_index(store, "seg/index")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, Lookup]:
    table = _table()
    tmp = tmp_path_factory.mktemp("scalar")
    meta = JsonColumn(table.column("meta"))
    views = meta.views([(("p",), JsonView.NUMBER), (("s",), JsonView.STRING)])
    lists = JsonColumn(table.column("doc")).views([(("l",), JsonView.LIST)])[(("l",), JsonView.LIST)]
    lookup = Lookup(
        {
            "age": [_saved(build_scalar_index(ScalarIndexSpec("sorted"), table.column("age")), tmp)],
            "score": [_saved(build_scalar_index(ScalarIndexSpec("sorted"), table.column("score")), tmp)],
            "color": [_saved(build_scalar_index(ScalarIndexSpec("bitmap"), table.column("color")), tmp)],
            "name": [
                _saved(build_scalar_index(ScalarIndexSpec("hybrid"), table.column("name")), tmp),
                _saved(build_scalar_index(ScalarIndexSpec("ngram", 2, 3), table.column("name")), tmp),
            ],
            "flag": [_saved(build_scalar_index(ScalarIndexSpec("hybrid"), table.column("flag")), tmp)],
            **{
                name: [_saved(build_scalar_index(ScalarIndexSpec("elements"), table.column(name)), tmp)]
                for name in ("tags", "nums", "ratios")
            },
        },
        {
            ("meta", ("p",), JsonView.NUMBER): [
                build_scalar_index(ScalarIndexSpec("sorted"), views[(("p",), JsonView.NUMBER)])
            ],
            ("meta", ("s",), JsonView.STRING): [
                build_scalar_index(ScalarIndexSpec("ngram", 1, 2), views[(("s",), JsonView.STRING)])
            ],
            # A path indexed as ARRAY_DOUBLE, ARRAY_VARCHAR and ARRAY_BOOL.
            ("doc", ("l",), JsonView.LIST): [
                _saved(build_scalar_index(ScalarIndexSpec("elements", token_prefix=kind), lists), tmp)
                for kind in ("n:", "s:", "b:")
            ],
        },
    )
    return table, lookup


ANSWERED = (
    "age == 7",
    "age != 7",
    "age in [1, 2, 300]",
    "age > 100",
    "age <= -3",
    "age < 2.5",
    "age == 7.5",
    "score > 0.97",
    "score <= 0.01",
    "score != 0.5",
    'color == "red"',
    'color in ["red", "nope"]',
    'color != "green"',
    'name like "abc%"',
    'name like "%c-1%"',
    'name like "é-%"',
    'name == "zeta-3"',
    'name >= "zeta-9"',
    "flag == true",
    'meta["p"] > 45',
    'meta["p"] != 3',
    'meta["p"] in [1, 2]',
    'meta["s"] like "%k2%"',
    'array_contains(tags, "t3")',
    'array_contains(tags, "nope")',
    'array_contains_any(tags, ["t1", "t9", "nope"])',
    'array_contains_all(tags, ["t2", "t4"])',
    'array_contains_all(tags, ["t2", "nope"])',
    "array_contains(nums, 3)",
    "array_contains_any(nums, [10, 12])",
    "array_contains_all(nums, [3, 4])",
    "array_contains(ratios, 0.3)",
    "array_contains_any(ratios, [0.1, 1.9])",
    'json_contains(doc["l"], 3)',
    'json_contains(doc["l"], 3.0)',
    'json_contains(doc["l"], "x4")',
    'json_contains(doc["l"], true)',
    'json_contains_any(doc["l"], [1, 2, 99])',
    'json_contains_all(doc["l"], [2, 1.5])',
    'json_contains_all(doc["l"], ["x1", "x1"])',
)
# Ranges joined by ``and`` are one interval of the index, with the other operands scanned.
INTERVALS = (
    "age > 10 and age <= 12",
    "20 <= age < 22",
    "age >= 100 and age < 110 and flag",
    "score > 0.5 and score < 0.51 and age > 3",
    'name >= "zeta-1" and name < "zeta-2"',
    'meta["p"] > 10 and meta["p"] <= 11',
    "age > 50 and age < 40",
)
SCANNED = (
    'json_contains_any(doc["l"], [3, "x4"])',
    'json_contains(doc["l"], [1])',
    "json_contains(doc, 1)",
    'tags[0] == "t1"',
    "array_length(tags) == 0",
    "array_contains_any(nums, [0, 1, 2, 3, 4])",
    "age + 1 == 8",
    "score > 0.1",
    'name like "%b%"',
    "flag",
    'color like "r_d"',
)


@pytest.mark.parametrize("expr", ANSWERED + INTERVALS + SCANNED)
def test_indexed_evaluation_equals_the_scan(setup: tuple[pa.Table, Lookup], expr: str) -> None:
    table, lookup = setup
    flt = compile_filter(expr, SCHEMA)
    for negated in (flt, compile_filter(f"not ({expr})", SCHEMA)):
        scanned = negated.evaluate(table)
        np.testing.assert_array_equal(negated.evaluate(table, indexes=lookup), scanned)


@pytest.mark.parametrize("expr", ANSWERED)
def test_the_index_answers(setup: tuple[pa.Table, Lookup], expr: str) -> None:
    table, lookup = setup
    flt = compile_filter(expr, SCHEMA)
    json = JsonColumn(table.column("meta"))

    def values_of(value):  # type: ignore[no-untyped-def]
        if hasattr(value, "path"):
            return json.views([(value.path, value.view)])[(value.path, value.view)]
        return table.column(value.name).combine_chunks()

    assert indexed_result(flt.predicate, lookup, values_of) is not None


def test_a_wide_answer_is_left_to_the_scan(setup: tuple[pa.Table, Lookup]) -> None:
    _, lookup = setup
    assert indexed_result(compile_filter("score > 0.1", SCHEMA).predicate, lookup, lambda v: None) is None


@pytest.mark.parametrize("expr", INTERVALS)
def test_ranges_joined_by_and_are_one_interval(setup: tuple[pa.Table, Lookup], expr: str) -> None:
    _, lookup = setup
    predicate = compile_filter(expr, SCHEMA).predicate
    assert isinstance(predicate, plan.And)
    answered, rest = indexed_ranges(predicate.operands, lookup)
    assert len(answered) == 1 and len(rest) == len(predicate.operands) - 2
