"""Load / release / search inside the engine vs bare faiss: 100k x 128-d, HNSW (M=16, efConstruction=200).

Run: .venv/bin/python bench/engine_load.py [--rows 100000] [--queries 300]
Prints one JSON line: load seconds, RSS added by load and given back by release, and search
p50 (nq=1, limit 10, ef 64) through Engine.search vs faiss on the same index file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import psutil
import pyarrow as pa

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.load.memory import give_back_memory
from sheafdb.engine.models import LoadState, SearchRequest
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

DIM = 128


def rss_mib() -> float:
    give_back_memory()
    return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)  # measured faster on a busy 2-core machine (design notes)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.rows, DIM)).astype(np.float32)
    queries = rng.standard_normal((args.queries, DIM)).astype(np.float32)
    schema = CollectionSchema(
        (
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(EngineConfig(Path(tmp), fsync=False, restore_loads=False, seal_bytes=1 << 30))
        engine.create_collection("default", "bench", schema)
        for start in range(0, args.rows, 25_000):
            chunk = vectors[start : start + 25_000]
            engine.insert(
                "default",
                "bench",
                pa.table(
                    {
                        "id": pa.array(np.arange(start, start + len(chunk), dtype=np.int64)),
                        "vec": pa.FixedSizeListArray.from_arrays(pa.array(chunk.ravel()), DIM),
                    }
                ),
            )
        engine.flush("default", ["bench"])
        began = time.perf_counter()
        engine.create_index(
            "default",
            "bench",
            "vec",
            "",
            {"index_type": "HNSW", "metric_type": "L2", "M": "16", "efConstruction": "200"},
        )
        engine.wait_for_index_builds(3600)
        build_seconds = time.perf_counter() - began
        before = rss_mib()
        began = time.perf_counter()
        engine.load_collection("default", "bench")
        while engine.get_load_state("default", "bench") is not LoadState.LOADED:
            time.sleep(0.005)
        load_seconds = time.perf_counter() - began
        loaded = rss_mib()
        params = {"ef": 64}
        engine_ms = []
        for q in queries:
            t0 = time.perf_counter()
            engine.search("default", SearchRequest("bench", q.reshape(1, -1), 10, params=params))
            engine_ms.append((time.perf_counter() - t0) * 1000)
        index_paths = [p for p in Path(tmp).rglob("*") if p.is_file() and "index" in p.name.lower()]
        bare = faiss.read_index(str(max(index_paths, key=lambda p: p.stat().st_size)))
        search_params = faiss.SearchParametersHNSW(efSearch=64)
        faiss_ms = []
        for q in queries:
            t0 = time.perf_counter()
            bare.search(q.reshape(1, -1), 10, params=search_params)
            faiss_ms.append((time.perf_counter() - t0) * 1000)
        del bare
        freed_reported = engine.release_collection("default", "bench")
        released = rss_mib()
        engine.close()
    p50_engine, p50_faiss = statistics.median(engine_ms), statistics.median(faiss_ms)
    print(
        json.dumps(
            {
                "rows": args.rows,
                "index_build_s": round(build_seconds, 2),
                "load_s": round(load_seconds, 3),
                "rss_added_by_load_mib": round(loaded - before, 1),
                "rss_freed_by_release_mib": round(loaded - released, 1),
                "release_reported_mib": round(freed_reported / 2**20, 1),
                "search_p50_engine_ms": round(p50_engine, 3),
                "search_p50_faiss_ms": round(p50_faiss, 3),
                "overhead_ratio": round(p50_engine / p50_faiss, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
