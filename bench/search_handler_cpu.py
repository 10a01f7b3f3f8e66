"""Thread CPU of one nq=1 search through the gRPC servicer's Search handler, in one thread.

Builds a 20k x 128-d HNSW collection (M=16, efConstruction 100, one sealed segment; columns
id, vec, n as bench/cpu_per_search.py's) in an in-process Engine on a temporary data dir,
then measures in a fresh process per tree and round (the data dir reopened, its load
restored): N calls of ``MilvusServicer.Search`` with a pre-parsed SearchRequest (nq=1, k=10,
ef 64, a fresh query vector each call), thread CPU (``time.thread_time``) per call for

- faiss alone: the segment's index file, same parameters;
- the handler: the whole ``Search`` (decode, engine, encode);
- its parts, timed apart on the same requests: decode (``key_values`` + ``search_request``),
  engine (``Engine.search``), encode (``_search_results``); and "engine faiss": the faiss
  call's own share of ``Engine.search`` (the rest is the read path's Python around it).

``--baseline REV`` measures an old commit's tree too (``git archive`` of the repo into a
temporary dir, first on sys.path of its subprocess), interleaved with this tree round by
round; medians over rounds. ``--profile`` prints this tree's cProfile of the handler instead.

Usage: .venv/bin/python bench/search_handler_cpu.py [--rows N] [--calls N] [--rounds N]
       [--baseline REV] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DIM = 128
DB, NAME = "default", "bench"
EF = 64


def build(data_dir: Path, rows: int) -> None:
    """The collection, flushed into one sealed segment, HNSW-indexed and loaded."""
    import pyarrow as pa

    from sheafdb.engine.config import EngineConfig
    from sheafdb.engine.engine import Engine
    from sheafdb.schema import CollectionSchema, DataType, FieldSchema

    vectors = np.random.default_rng(7).random((rows, DIM), dtype=np.float32)
    schema = CollectionSchema(
        (
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
            FieldSchema("n", DataType.INT64),
        )
    )
    engine = Engine(EngineConfig(data_dir, fsync=False, seal_bytes=1 << 30, compaction_min_segments=None))
    engine.create_collection(DB, NAME, schema)
    ids = np.arange(rows, dtype=np.int64)
    engine.insert(
        DB,
        NAME,
        pa.table(
            {
                "id": pa.array(ids),
                "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
                "n": pa.array(ids % 1000),
            }
        ),
    )
    engine.flush(DB, [NAME])
    engine.create_index(
        DB, NAME, "vec", "", {"index_type": "HNSW", "metric_type": "L2", "M": "16", "efConstruction": "100"}
    )
    engine.wait_for_index_builds(3600)
    engine.load_collection(DB, NAME)
    engine.close()


def measure(data_dir: Path, calls: int, profile: bool) -> dict[str, float]:
    """Thread CPU per call (us) of faiss, the handler and its parts, on this process's tree."""
    import faiss
    from pymilvus.grpc_gen import common_pb2, milvus_pb2

    from sheafdb.api.grpc.requests import key_values, search_request
    from sheafdb.api.grpc.servicer import MilvusServicer
    from sheafdb.engine.config import EngineConfig
    from sheafdb.engine.engine import Engine
    from sheafdb.engine.models import LoadState

    engine = Engine(EngineConfig(data_dir, fsync=False, compaction_min_segments=None))
    deadline = time.monotonic() + 120
    while engine.get_load_state(DB, NAME) is not LoadState.LOADED:
        if time.monotonic() > deadline:
            raise SystemExit("the collection was not restored within 120 s")
        time.sleep(0.01)
    servicer = MilvusServicer(engine)
    faiss.omp_set_num_threads(1)
    queries = np.random.default_rng(11).random((calls, DIM), dtype=np.float32)

    def request(q: np.ndarray) -> milvus_pb2.SearchRequest:
        placeholder = common_pb2.PlaceholderGroup(
            placeholders=[
                common_pb2.PlaceholderValue(
                    tag="$0", type=common_pb2.PlaceholderType.FloatVector, values=[q.tobytes()]
                )
            ]
        ).SerializeToString()
        return milvus_pb2.SearchRequest(
            collection_name=NAME,
            dsl_type=common_pb2.DslType.BoolExprV1,
            placeholder_group=placeholder,
            nq=1,
            search_params=[
                common_pb2.KeyValuePair(key="anns_field", value="vec"),
                common_pb2.KeyValuePair(key="topk", value="10"),
                common_pb2.KeyValuePair(key="metric_type", value="L2"),
                common_pb2.KeyValuePair(key="params", value=json.dumps({"ef": EF})),
                common_pb2.KeyValuePair(key="round_decimal", value="-1"),
            ],
        )

    class Call:
        def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
            return ()

    requests = [request(q) for q in queries]
    context = Call()
    for r in requests[:200]:
        reply = servicer.Search(r, context)  # type: ignore[arg-type]
        if reply.status.code != 0 or len(reply.results.ids.int_id.data) != 10:
            raise SystemExit(f"the handler answered {reply.status} with {reply.results.ids}")
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for r in requests:
            servicer.Search(r, context)  # type: ignore[arg-type]
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(45)
        engine.close()
        return {}

    (index_path,) = [p for p in data_dir.rglob("*") if p.is_file() and p.name.endswith(".faiss")]
    index = faiss.read_index(str(index_path))
    params = faiss.SearchParametersHNSW(efSearch=EF)
    rows = [q.reshape(1, -1) for q in queries]

    def per_call(run: object, items: list[object]) -> float:
        start = time.thread_time_ns()
        for item in items:
            run(item)  # type: ignore[operator]
        return (time.thread_time_ns() - start) / 1000 / len(items)

    decoded = [search_request(r, key_values(r.search_params)) for r in requests]
    results = [engine.search(DB, s) for s in decoded]
    out = {
        "faiss": per_call(lambda row: index.search(row, 10, params=params), rows),  # type: ignore[arg-type]
        "handler": per_call(lambda r: servicer.Search(r, context), requests),  # type: ignore[arg-type]
        "decode": per_call(lambda r: search_request(r, key_values(r.search_params)), requests),  # type: ignore[arg-type]
        "engine": per_call(lambda s: engine.search(DB, s), decoded),  # type: ignore[arg-type]
        "encode": per_call(lambda res: servicer._search_results(DB, NAME, res, None), results),  # type: ignore[arg-type]
    }
    out["engine faiss"] = _faiss_inside_engine(lambda s: engine.search(DB, s), decoded)
    engine.close()
    return out


def _faiss_inside_engine(search: object, decoded: list[object]) -> float:
    """Thread CPU per call of faiss's own search inside ``Engine.search`` (the rest of
    ``engine`` is the read path's Python around it): DenseIndex's thread-count context
    around its faiss call, timed."""
    import sheafdb.index.dense as dense

    spent = [0]
    narrow = dense.search_threads

    class Timed:
        def __enter__(self) -> None:
            narrow(1).__enter__()
            self.start = time.thread_time_ns()

        def __exit__(self, *exc: object) -> None:
            spent[0] += time.thread_time_ns() - self.start

    timed = Timed()
    dense.search_threads = lambda nq: timed  # type: ignore[assignment]
    try:
        for item in decoded:
            search(item)  # type: ignore[operator]
    finally:
        dense.search_threads = narrow
    return spent[0] / 1000 / len(decoded)


def extract(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", rev], cwd=HERE, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def short(rev: str) -> str:
    done = subprocess.run(["git", "rev-parse", "--short", rev], cwd=HERE, capture_output=True, text=True)
    return done.stdout.strip() or rev


def run_tree(tree: Path, data_dir: Path, calls: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, str(HERE / "search_handler_cpu.py"), "--measure", str(data_dir)]
        + ["--calls", str(calls)],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=3000, help="calls per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", help="a commit measured in turn with this tree, every round")
    parser.add_argument("--profile", action="store_true", help="cProfile this tree's handler")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the subprocess's part
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.calls, profile=False)))
        return
    data_dir = Path(tempfile.mkdtemp(prefix="sheafdb-handler-bench-"))
    trees = {"this tree": HERE.parent}
    try:
        build(data_dir, args.rows)
        if args.profile:
            measure(data_dir, args.calls, profile=True)
            return
        if args.baseline:
            old = extract(args.baseline, Path(tempfile.mkdtemp(prefix="sheafdb-handler-baseline-")))
            trees = {f"before {short(args.baseline)}": old, f"after {short('HEAD')}+": HERE.parent}
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        loads = []
        for _ in range(args.rounds):
            for name, tree in trees.items():
                runs[name].append(run_tree(tree, data_dir, args.calls))
                loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        for tree in trees.values():
            if tree != HERE.parent:
                shutil.rmtree(tree, ignore_errors=True)
    print(
        f"{args.rows:,} x {DIM}-d HNSW, nq=1 k=10 ef={EF}; {args.calls} calls x {args.rounds} rounds, "
        f"medians; load average {min(loads):.1f}-{max(loads):.1f}"
    )
    parts = ("faiss", "handler", "decode", "engine", "encode", "engine faiss")
    print(f"{'tree':<22}" + "".join(f"{p:>13}" for p in parts) + f"{'handler/faiss':>15}")
    for name, rounds in runs.items():
        median = {p: statistics.median(r[p] for r in rounds) for p in parts}
        print(
            f"{name:<22}"
            + "".join(f"{median[p]:>13.1f}" for p in parts)
            + f"{median['handler'] / median['faiss']:>15.2f}"
        )


if __name__ == "__main__":
    main()
