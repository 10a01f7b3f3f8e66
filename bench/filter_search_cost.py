"""Filtered search in process: per-call cost and recall@10 of Engine.search, old vs new plan.

The bench's data and schema (bench/harness/dataset.py, like bench/run.py: INT64 pk,
FLOAT_VECTOR, VARCHAR tag, INT64 num, dynamic key color; HNSW M=16 efConstruction=200, ef=64,
limit 10), one sealed segment, loaded in a real Engine. For no filter and each bench filter,
A/B interleaved in one process: round after round, the "old" filtered-search plan (ef x
1/selectivity, exact only below 4096 rows, one gather) then the "new" one (the constants in
engine/search.py). Prints per-call median us (median over rounds), new/old, and recall of both.

    .venv/bin/python bench/filter_search_cost.py --data-dir /tmp/fsc   # built once, then reused
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.dataset import Dataset, make_dataset, recall_at_k  # noqa: E402

from sheafdb.engine.config import EngineConfig  # noqa: E402
from sheafdb.engine.engine import Engine  # noqa: E402
from sheafdb.engine.models import LoadState, SearchRequest  # noqa: E402
from sheafdb.engine.read import search  # noqa: E402
from sheafdb.index import exact  # noqa: E402
from sheafdb.schema import CollectionSchema, DataType, FieldSchema  # noqa: E402

DB, NAME = "default", "bench"
HNSW = {"index_type": "HNSW", "metric_type": "L2", "M": "16", "efConstruction": "200"}
# The plan's knobs: (module, constant) -> value; "old" is the plan before the filter work.
KNOBS = (
    (search, "FILTERED_EF_SHARE"),
    (search, "EXACT_ROWS_PER_EF"),
    (search, "MIN_GRAPH_SHARE"),
    (exact, "GATHER_BYTES"),
)
PLANS = {
    "old": dict(zip(KNOBS, (1.0, 0, 0.0, 2**62), strict=True)),
    "new": {(module, name): getattr(module, name) for module, name in KNOBS},
}


def build(engine: Engine, data: Dataset) -> None:
    schema = CollectionSchema(
        fields=(
            FieldSchema("pk", DataType.INT64, is_primary=True),
            FieldSchema("vector", DataType.FLOAT_VECTOR, dim=data.dim),
            FieldSchema("tag", DataType.VARCHAR, max_length=16),
            FieldSchema("num", DataType.INT64),
        ),
        enable_dynamic_field=True,
    )
    engine.create_collection(DB, NAME, schema)
    step = 20_000
    for lo in range(0, data.n, step):
        hi = min(data.n, lo + step)
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(data.vectors[lo:hi].ravel()), data.dim)
        meta = [json.dumps({"color": str(c)}) for c in data.colors[lo:hi]]
        engine.insert(
            DB,
            NAME,
            pa.table(
                {
                    "pk": pa.array(np.arange(lo, hi, dtype=np.int64)),
                    "vector": vectors,
                    "tag": pa.array(data.tags[lo:hi].tolist()),
                    "num": pa.array(data.nums[lo:hi]),
                    "$meta": pa.array(meta),
                }
            ),
        )
    engine.flush(DB, [NAME])
    engine.create_index(DB, NAME, "vector", "", HNSW)
    engine.wait_for_index_builds(3600)


def open_loaded(data_dir: Path, data: Dataset) -> Engine:
    fresh = not (data_dir / "catalog.db").exists()
    config = EngineConfig(data_dir, fsync=False, restore_loads=False, compaction_min_segments=None)
    engine = Engine(config)
    if fresh:
        build(engine, data)
    engine.load_collection(DB, NAME)
    while engine.get_load_state(DB, NAME) is not LoadState.LOADED:
        time.sleep(0.01)
    return engine


def one_pass(engine: Engine, data: Dataset, expr: str, nq: int) -> tuple[float, list[list[int]]]:
    times, found = [], []
    for q in data.queries[:nq]:
        request = SearchRequest(NAME, q.reshape(1, -1), 10, filter=expr, params={"ef": 64})
        start = time.perf_counter()
        hits = engine.search(DB, request)
        times.append(time.perf_counter() - start)
        found.append(hits.ids.to_pylist())
    return statistics.median(times) * 1e6, found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--nq", type=int, default=100, help="queries per filter, plan and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, required=True, help="built on first use, then reused")
    args = parser.parse_args()
    data = make_dataset(args.n, 128, args.nq)
    engine = open_loaded(args.data_dir, data)
    filters = {"none": ("", data.truth), **{k: (f.expr, f.truth) for k, f in data.filters.items()}}
    try:
        for expr, _ in filters.values():
            one_pass(engine, data, expr, 5)  # masks, compiled filters and selectors warm
        us: dict[tuple[str, str], list[float]] = {}
        recall: dict[tuple[str, str], float] = {}
        for _ in range(args.rounds):
            for name, (expr, truth) in filters.items():
                for plan, constants in PLANS.items():
                    for (module, constant), value in constants.items():
                        setattr(module, constant, value)
                    cost, found = one_pass(engine, data, expr, args.nq)
                    us.setdefault((name, plan), []).append(cost)
                    recall[(name, plan)] = recall_at_k(found, truth[: args.nq])
        print(f"n={args.n} nq={args.nq} rounds={args.rounds}  per-call median us, recall@10")
        print(f"{'filter':<14}{'old us':>9}{'new us':>9}{'new/old':>9}{'old recall':>12}{'new recall':>12}")
        for name in filters:
            old, new = (statistics.median(us[(name, plan)]) for plan in PLANS)
            print(
                f"{name:<14}{old:>9.1f}{new:>9.1f}{new / old:>9.2f}"
                f"{recall[(name, 'old')]:>12.4f}{recall[(name, 'new')]:>12.4f}"
            )
    finally:
        engine.close()


if __name__ == "__main__":
    main()
