"""The engine's own cost per search: Engine.search (nq=1, limit 10, ef 64) vs bare faiss.

An Engine on a temporary directory holds 20k x 128-d rows (INT64 pk, vector, INT64 ``num``,
VARCHAR ``tag``), flushed into one sealed segment, HNSW-indexed (M=16, efConstruction=200)
and loaded. Timed, each as a p50 over --queries searches: no output fields, with output
fields (num, tag), with a scalar filter (``num >= 100``, keeps ~99%), and faiss alone on the
segment's own index file with the same ef. The engine's overhead is engine p50 - faiss p50.

Run: .venv/bin/python bench/engine_search_overhead.py [--rows 20000] [--queries 2000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState, SearchRequest
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

DIM = 128
DB, NAME = "default", "bench"


def build(tmp: Path, rows: int) -> Engine:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((rows, DIM)).astype(np.float32)
    schema = CollectionSchema(
        (
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
            FieldSchema("num", DataType.INT64),
            FieldSchema("tag", DataType.VARCHAR, max_length=8),
        )
    )
    engine = Engine(EngineConfig(tmp, fsync=False, restore_loads=False, seal_bytes=1 << 30))
    engine.create_collection(DB, NAME, schema)
    ids = np.arange(rows, dtype=np.int64)
    engine.insert(
        DB,
        NAME,
        pa.table(
            {
                "id": pa.array(ids),
                "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
                "num": pa.array(ids % 10_000),
                "tag": pa.array([f"t{i % 7}" for i in range(rows)]),
            }
        ),
    )
    engine.flush(DB, [NAME])
    engine.create_index(
        DB, NAME, "vec", "", {"index_type": "HNSW", "metric_type": "L2", "M": "16", "efConstruction": "200"}
    )
    engine.wait_for_index_builds(3600)
    engine.load_collection(DB, NAME)
    while engine.get_load_state(DB, NAME) is not LoadState.LOADED:
        time.sleep(0.005)
    return engine


def p50_us(run: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    for q in queries[:50]:
        run(q)  # warm caches (hidden masks, compiled filters, faiss parameters)
    times = []
    for q in queries:
        t0 = time.perf_counter()
        run(q)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="cProfile the unfiltered search too")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)  # measured faster on a busy 2-core machine (design notes)
    queries = np.random.default_rng(1).standard_normal((args.queries, DIM)).astype(np.float32)
    params = {"ef": 64}
    with tempfile.TemporaryDirectory() as tmp:
        engine = build(Path(tmp), args.rows)

        def search(q: np.ndarray, **extra: object) -> object:
            return engine.search(DB, SearchRequest(NAME, q.reshape(1, -1), 10, params=params, **extra))

        cases: dict[str, Callable[[np.ndarray], object]] = {
            "plain": search,
            "output_fields": lambda q: search(q, output_fields=("num", "tag")),
            "filter": lambda q: search(q, filter="num >= 100"),
        }
        index_paths = [p for p in Path(tmp).rglob("*") if p.is_file() and "index" in p.name.lower()]
        bare = faiss.read_index(str(max(index_paths, key=lambda p: p.stat().st_size)))
        bare_params = faiss.SearchParametersHNSW(efSearch=64)
        result = {name: round(p50_us(run, queries), 1) for name, run in cases.items()}

        def faiss_search(q: np.ndarray) -> object:
            return bare.search(q.reshape(1, -1), 10, params=bare_params)

        result["faiss"] = round(p50_us(faiss_search, queries), 1)
        result["overhead_plain"] = round(result["plain"] - result["faiss"], 1)
        print(json.dumps({"rows": args.rows, "p50_us": result}))
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for q in queries:
                search(q)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        engine.close()


if __name__ == "__main__":
    main()
