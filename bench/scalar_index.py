"""Scalar indexes against the column scan: one selective filter per index type, query and
filtered search, on two collections holding the same rows, one with the indexes, in one run.

Rows (seeded): INT64 ``n_sort`` and ``n_inv`` (uniform over the row count: STL_SORT and
INVERTED), VARCHAR ``color`` (100 values: BITMAP), VARCHAR ``name`` (random hex words: TRIE),
VARCHAR ``note`` (random letters: NGRAM, min_gram = max_gram = 3), JSON ``meta`` with an
integer ``price`` (a JSON path index cast to DOUBLE), an ARRAY of 4 INT64 ``tags`` (uniform
over the row count: INVERTED, element postings), an 8-d FLOAT_VECTOR (FLAT). Everything is
sealed; both collections are loaded in one in-process Engine. Every request uses another
literal, so neither the compiled-filter cache nor a segment's mask cache answers it: each
request evaluates its filter (the index, or the scan). Prints a markdown table of per-request
medians and the indexed / scan ratio.

    .venv/bin/python bench/scalar_index.py --rows 1000000 --requests 40 --data-dir /tmp/sib
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sheafdb.engine.config import EngineConfig  # noqa: E402
from sheafdb.engine.engine import Engine  # noqa: E402
from sheafdb.engine.models import QueryRequest, SearchRequest  # noqa: E402
from sheafdb.schema import CollectionSchema, DataType, FieldSchema  # noqa: E402

DB = "default"
DIM = 8
COLORS = 100
SCALAR_INDEXES = (
    ("n_sort", "STL_SORT", {}),
    ("n_inv", "INVERTED", {}),
    ("color", "BITMAP", {}),
    ("name", "TRIE", {}),
    ("note", "NGRAM", {"min_gram": "3", "max_gram": "3"}),
    ("meta", "INVERTED", {"json_path": 'meta["price"]', "json_cast_type": "DOUBLE"}),
    ("tags", "INVERTED", {}),
)
TAGS = 4


def schema() -> CollectionSchema:
    return CollectionSchema(
        fields=(
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("n_sort", DataType.INT64),
            FieldSchema("n_inv", DataType.INT64),
            FieldSchema("color", DataType.VARCHAR, max_length=16),
            FieldSchema("name", DataType.VARCHAR, max_length=16),
            FieldSchema("note", DataType.VARCHAR, max_length=32),
            FieldSchema("meta", DataType.JSON),
            FieldSchema("tags", DataType.ARRAY, element_type=DataType.INT64, max_capacity=TAGS),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
        )
    )


def batch(rng: np.random.Generator, lo: int, hi: int, rows: int) -> pa.Table:
    count = hi - lo
    letters = np.array(list(string.ascii_lowercase))
    notes = ["".join(w) for w in rng.choice(letters, size=(count, 16))]
    names = [f"{v:08x}" for v in rng.integers(0, 2**32, count)]
    prices = rng.integers(0, rows, count)
    return pa.table(
        {
            "id": pa.array(np.arange(lo, hi, dtype=np.int64)),
            "n_sort": pa.array(rng.integers(0, rows, count)),
            "n_inv": pa.array(rng.integers(0, rows, count)),
            "color": pa.array([f"c{v}" for v in rng.integers(0, COLORS, count)]),
            "name": pa.array(names),
            "note": pa.array(notes),
            "meta": pa.array([json.dumps({"price": int(p)}) for p in prices]),
            "tags": pa.ListArray.from_arrays(
                pa.array(np.arange(0, (count + 1) * TAGS, TAGS, dtype=np.int32)),
                pa.array(rng.integers(0, rows, count * TAGS)),
            ),
            "vec": pa.FixedSizeListArray.from_arrays(
                pa.array(rng.random(count * DIM, dtype=np.float32)), DIM
            ),
        }
    )


def build(engine: Engine, rows: int) -> dict[str, float]:
    timings = {}
    for name in ("scan", "indexed"):
        engine.create_collection(DB, name, schema())
        rng = np.random.default_rng(42)  # the same rows in both
        step = 50_000
        for lo in range(0, rows, step):
            engine.insert(DB, name, batch(rng, lo, min(rows, lo + step), rows))
        engine.flush(DB, [name])
        engine.create_index(DB, name, "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
        engine.wait_for_index_builds(3600)
    for field, index_type, params in SCALAR_INDEXES:
        start = time.perf_counter()
        engine.create_index(DB, "indexed", field, f"{field}_idx", {"index_type": index_type, **params})
        engine.wait_for_index_builds(3600)
        label = {"meta": "JSON path", "tags": "ARRAY INVERTED"}.get(field, index_type)
        timings[label] = time.perf_counter() - start
    for name in ("scan", "indexed"):
        engine.load_collection(DB, name)
        engine.wait_for_load(DB, name, timeout=3600)
    return timings


def filters(rng: np.random.Generator, rows: int) -> dict[str, Callable[[], str]]:
    width = max(1, rows // 1000)  # 0.1% of the rows
    letters = string.ascii_lowercase

    def lo() -> int:
        return int(rng.integers(0, rows - width))

    return {
        "STL_SORT: n_sort in a 0.1% range": lambda: f"n_sort >= {(s := lo())} and n_sort < {s + width}",
        "STL_SORT: n_sort == v": lambda: f"n_sort == {int(rng.integers(0, rows))}",
        "INVERTED: n_inv in [5 values]": lambda: f"n_inv in {[int(v) for v in rng.integers(0, rows, 5)]}",
        "BITMAP: color == c (1%)": lambda: f'color == "c{int(rng.integers(0, COLORS))}"',
        "TRIE: name like 'ab1%'": lambda: f'name like "{int(rng.integers(0, 4096)):03x}%"',
        "NGRAM: note like '%abc%'": lambda: f'note like "%{"".join(rng.choice(list(letters), 3))}%"',
        'JSON path: meta["price"] 0.1% range': lambda: (
            f'meta["price"] >= {(s := lo())} and meta["price"] < {s + width}'
        ),
        "ARRAY INVERTED: array_contains(tags, v)": lambda: (
            f"array_contains(tags, {int(rng.integers(0, rows))})"
        ),
        "ARRAY INVERTED: array_contains_any(tags, [5 values])": lambda: (
            f"array_contains_any(tags, {[int(v) for v in rng.integers(0, rows, 5)]})"
        ),
    }


def resident_mib(engine: Engine) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for block in engine.memory_view().blocks:
        if block.collection == "indexed":
            key = (block.kind, block.name)
            out[key] = out.get(key, 0.0) + block.nbytes / 2**20
    return out


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40, help="requests per filter, kind and collection")
    parser.add_argument("--data-dir", type=Path, required=True, help="emptied first")
    args = parser.parse_args()
    shutil.rmtree(args.data_dir, ignore_errors=True)
    engine = Engine(
        EngineConfig(args.data_dir, fsync=False, restore_loads=False, compaction_min_segments=None)
    )
    try:
        builds = build(engine, args.rows)
        memory = resident_mib(engine)
        rng = np.random.default_rng(7)
        query_vector = np.full((1, DIM), 0.5, dtype=np.float32)
        results: dict[tuple[str, str, str], list[float]] = {}
        for label, make in filters(rng, args.rows).items():
            for _ in range(args.requests):
                # A fresh text for each kind, the same on both collections, interleaved.
                query_expr, search_expr = make(), make()
                for name in ("scan", "indexed"):
                    q = QueryRequest(name, filter=query_expr, output_fields=("id",), limit=16384)
                    s = SearchRequest(name, query_vector, 10, filter=search_expr)
                    results.setdefault((label, "query", name), []).append(
                        timed(lambda q=q: engine.query(DB, q))
                    )
                    results.setdefault((label, "search", name), []).append(
                        timed(lambda s=s: engine.search(DB, s))
                    )
        print(f"rows={args.rows} requests={args.requests} (per-request median ms; ratio = indexed / scan)\n")
        print("| filter | query: scan | query: indexed | ratio | search: scan | search: indexed | ratio |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for label in filters(rng, args.rows):
            cells = []
            for kind in ("query", "search"):
                scan = statistics.median(results[(label, kind, "scan")])
                indexed = statistics.median(results[(label, kind, "indexed")])
                cells += [f"{scan:.2f}", f"{indexed:.2f}", f"{indexed / scan:.3f}"]
            print(f"| {label} | " + " | ".join(cells) + " |")
        print(
            "\nindex build (create_index until built, all segments), s: "
            + ", ".join(f"{k} {v:.1f}" for k, v in builds.items())
        )
        print(
            "resident MiB of the indexed collection (column -> its index): "
            + ", ".join(
                f"{field} {memory.get(('field', field), 0):.1f}"
                f" -> {memory.get(('scalar_index', f'{field}_idx'), 0):.1f}"
                for field, _, _ in SCALAR_INDEXES
            )
        )
    finally:
        engine.close()


if __name__ == "__main__":
    main()
