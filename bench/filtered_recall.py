"""Filtered recall@10 and read-path latency of the engine, in process (no server, no transport).

One collection of clustered vectors (bench/harness/dataset.py) with ``num`` (INT64, a
permutation of 0..n-1, so ``num < s*n`` keeps exactly s) and the dynamic key ``color``,
HNSW M=18 efConstruction=240 (what AUTOINDEX builds), searched with ef=64 like bench/run.py.
Prints one table: recall and median latency per selectivity, then the dynamic-key filter,
get by 10 ids, count(*) and a range query; then the same with the read-path changes turned
off (no ef widening, JSON parsed per request) to show before/after (``--no-baseline`` skips).

    .venv/bin/python bench/filtered_recall.py --n 100000 --dim 128
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.dataset import clustered_vectors, exact_neighbours, recall_at_k  # noqa: E402

from sheafdb.engine.config import EngineConfig  # noqa: E402
from sheafdb.engine.engine import Engine  # noqa: E402
from sheafdb.engine.load import loaded_segment, search  # noqa: E402
from sheafdb.engine.models import LoadState, QueryRequest, SearchRequest  # noqa: E402
from sheafdb.expr import json_column  # noqa: E402
from sheafdb.schema import CollectionSchema, DataType, FieldSchema  # noqa: E402

SELECTIVITIES = (0.001, 0.01, 0.05, 0.1, 0.2, 0.5)
DB = "default"
HNSW = {"index_type": "HNSW", "metric_type": "L2", "M": "18", "efConstruction": "240"}
SEARCH_PARAMS = {"ef": 64}


def build(engine: Engine, n: int, dim: int, seed: int) -> None:
    schema = CollectionSchema(
        fields=(
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=dim),
            FieldSchema("num", DataType.INT64),
        ),
        enable_dynamic_field=True,
    )
    engine.create_collection(DB, "bench", schema)
    vectors = clustered_vectors(n, dim, seed)
    nums = np.random.default_rng(seed + 2).permutation(n).astype(np.int64)
    colors = np.where(nums % 10 == 0, "red", "blue")
    step = 20_000
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        engine.insert(
            DB,
            "bench",
            pa.table(
                {
                    "id": pa.array(np.arange(lo, hi, dtype=np.int64)),
                    "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors[lo:hi].ravel()), dim),
                    "num": pa.array(nums[lo:hi]),
                    "$meta": pa.array([json.dumps({"color": str(c)}) for c in colors[lo:hi]]),
                }
            ),
        )
    engine.flush(DB, ["bench"])
    engine.create_index(DB, "bench", "vec", "", HNSW)
    engine.wait_for_index_builds(3600)
    engine.load_collection(DB, "bench")
    while engine.get_load_state(DB, "bench") is not LoadState.LOADED:
        time.sleep(0.05)


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, result


def run(n: int, dim: int, nq: int, seed: int, baseline: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(EngineConfig(Path(tmp) / "data", fsync=False, restore_loads=False))
        try:
            build(engine, n, dim, seed)
            print(f"n={n} dim={dim} nq={nq} segments={len(engine._resolve(DB, 'bench').snapshot().sealed)}")
            print("== read path as it is now")
            measure(engine, n, dim, nq, seed)
            if baseline:
                print("== baseline: no ef widening, JSON parsed per request (release + reload first)")
                disable_read_path_changes()
                engine.release_collection(DB, "bench")
                engine.load_collection(DB, "bench")
                while engine.get_load_state(DB, "bench") is not LoadState.LOADED:
                    time.sleep(0.05)
                measure(engine, n, dim, nq, seed)
        finally:
            engine.close()


def measure(engine: Engine, n: int, dim: int, nq: int, seed: int) -> None:
    vectors = clustered_vectors(n, dim, seed)
    queries = clustered_vectors(nq, dim, seed + 1)
    nums = np.random.default_rng(seed + 2).permutation(n).astype(np.int64)
    print(f"{'filter':<26}{'kept':>8}{'recall@10':>11}{'ms/query':>10}")
    for selectivity in SELECTIVITIES:
        bound = max(1, round(selectivity * n))
        truth = exact_neighbours(vectors, queries, nums < bound)
        expr = f"num < {bound}"
        found = []
        times = []
        for q in queries:
            start = time.perf_counter()
            hits = engine.search(
                DB, SearchRequest("bench", q.reshape(1, -1), 10, filter=expr, params=SEARCH_PARAMS)
            )
            times.append(time.perf_counter() - start)
            found.append(hits.ids.to_pylist())
        recall = recall_at_k(found, truth)
        ms = statistics.median(times) * 1000
        print(f"{expr:<26}{selectivity:>8.1%}{recall:>11.4f}{ms:>10.2f}")
    one = queries[:1]
    color_first, _ = timed(
        lambda: engine.search(DB, SearchRequest("bench", one, 10, filter='color == "red"')), 1
    )
    color_ms, _ = timed(
        lambda: engine.search(DB, SearchRequest("bench", one, 10, filter='color == "red"')), 20
    )
    ids = [int(i) for i in np.random.default_rng(1).integers(0, n, 10)]
    get_ms, got = timed(lambda: engine.query(DB, QueryRequest("bench", ids=ids, output_fields=("*",))), 50)
    count_ms, _ = timed(lambda: engine.query(DB, QueryRequest("bench", output_fields=("count(*)",))), 20)
    range_ms, _ = timed(
        lambda: engine.query(DB, QueryRequest("bench", f"num < {n // 100}", output_fields=("id",))),
        20,
    )
    print(f'color == "red" search: first {color_first:.2f} ms, then {color_ms:.2f} ms')
    print(f"get 10 ids: {get_ms:.3f} ms ({got.table.num_rows} rows)")  # type: ignore[attr-defined]
    print(f"count(*): {count_ms:.3f} ms; num < 1% query: {range_ms:.3f} ms")


def disable_read_path_changes() -> None:
    """The read path as it was: the user's ef as given, JSON columns parsed on every request."""
    search.MAX_FILTERED_EF = 0
    json_column.MIN_ARROW_ROWS = 2**62  # json.loads per row, as before the Arrow reader path
    search.filtered_params = lambda params, k, allowed, total: params  # type: ignore[assignment]
    loaded_segment.LoadedSegment.json_columns = lambda self: {}  # type: ignore[method-assign]
    loaded_segment.GrowingRows.json_columns = lambda self: {}  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--nq", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-baseline", action="store_true", help="skip the before run")
    args = parser.parse_args()
    run(args.n, args.dim, args.nq, args.seed, not args.no_baseline)


if __name__ == "__main__":
    main()
