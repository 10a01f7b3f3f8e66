"""Filter evaluation over 100k rows: a range filter and a dynamic-key equality (prints timings)."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa

from sheafdb.expr import JsonColumn, compile_filter
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

ROWS = 100_000


def timed(label: str, fn: object, repeat: int = 5) -> None:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        kept = int(fn().sum())  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    print(f"{label:55} {best * 1000:8.2f} ms  ({kept} rows kept)")


def main() -> None:
    rng = np.random.default_rng(7)
    schema = CollectionSchema(
        fields=(
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("age", DataType.INT64),
            FieldSchema("price", DataType.DOUBLE),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=4),
        ),
        enable_dynamic_field=True,
    )
    colors = np.array(["red", "green", "blue", "cyan"])
    picks = rng.integers(0, 4, ROWS)
    meta = [json.dumps({"color": str(colors[i]), "n": int(i)}) for i in picks]
    table = pa.table(
        {
            "id": pa.array(np.arange(ROWS)),
            "age": pa.array(rng.integers(0, 100, ROWS)),
            "price": pa.array(rng.random(ROWS) * 100),
            "$meta": pa.array(meta, pa.string()),
        }
    )
    start = time.perf_counter()
    range_filter = compile_filter("18 <= age < 65 and price > 10.5", schema)
    print(f"{'compile (first, grammar built)':55} {(time.perf_counter() - start) * 1000:8.2f} ms")
    dynamic = compile_filter('color == "red"', schema)
    timed("range: 18 <= age < 65 and price > 10.5", lambda: range_filter.evaluate(table))
    timed('dynamic key: color == "red" (parse JSON each call)', lambda: dynamic.evaluate(table), repeat=2)
    prepared = JsonColumn(table.column("$meta"))
    timed(
        'dynamic key: color == "red" (prepared JsonColumn)',
        lambda: dynamic.evaluate(table, {"$meta": prepared}),
    )
    print(f"{'prepared projections held':55} {prepared.nbytes / 1e6:8.2f} MB")


if __name__ == "__main__":
    main()
