"""Where a served search's time goes: py-spy on a real ``python -m sheafdb serve`` while one
pymilvus client loops one search for a while.

The collection is bench/run.py's (grpc_insert.py's rows: pk, 128-d vector, VARCHAR tag, INT64
num, dynamic ``color``), HNSW M=16 efConstruction=200, flushed, indexed and loaded. The loop is
``MilvusClient.search`` (nq=1, limit 10, ef 64) with ``--filter`` as its expression (none by
default; give --filter several times to profile each in turn on the same collection, '' for
none). For each: the client's p50, then the inclusive share of the server's busy samples of
every sheafdb / grpc / faiss / pyarrow / protobuf function (py-spy from .bench-venv, threads
on a CPU only).

Run: .venv/bin/python bench/search_profile.py [--rows 100000] [--seconds 10] [--filter ''
    --filter 'tag == "a"' ...]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pymilvus import MilvusClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grpc_insert import COLLECTION, create, make_batches, start_py_spy, summarize_profile  # noqa: E402
from harness.servers import RunningServer, sheafdb_kind  # noqa: E402

PROFILED = ("sheafdb/", "grpc", "faiss", "pyarrow", "protobuf")


def build(client: MilvusClient, rows: int) -> np.ndarray:
    """Insert, flush, wait for the HNSW builds, load; returns a query vector near row 123."""
    create(client, index_first=True)
    batches = make_batches(rows)
    for batch in batches:
        client.insert(COLLECTION, batch)
    client.flush(COLLECTION)
    deadline = time.monotonic() + 600
    while client.describe_index(COLLECTION, "vector").get("pending_index_rows", 0) > 0:
        if time.monotonic() > deadline:
            raise SystemExit("the HNSW index was not built within 600 s")
        time.sleep(0.2)
    client.load_collection(COLLECTION)
    return np.asarray(batches[0][123]["vector"]) + np.float32(0.01)


def profile(
    client: MilvusClient, pid: int, query: np.ndarray, expression: str, seconds: float, tmp: Path
) -> None:
    def search() -> None:
        hits = client.search(
            COLLECTION, [query], filter=expression, limit=10, search_params={"params": {"ef": 64}}
        )
        if len(hits[0]) != 10:
            raise SystemExit(f"the search returned {len(hits[0])} hits, not 10")

    for _ in range(100):
        search()  # warm up
    profile_path = tmp / "profile.txt"
    profile_path.unlink(missing_ok=True)
    spy = start_py_spy(pid, profile_path, idle=False)
    time.sleep(1.0)  # py-spy attaching
    samples = []
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        began = time.perf_counter_ns()
        search()
        samples.append((time.perf_counter_ns() - began) / 1e6)
    print(f"\nfilter {expression!r}: {len(samples)} searches, p50 {statistics.median(samples):.3f} ms")
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        spy.wait(30)
        if profile_path.exists():
            summarize_profile(profile_path, top=30, modules=PROFILED)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to loop under py-spy")
    parser.add_argument("--filter", action="append", help="a filter expression (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="search-profile-") as tmp:
        server = RunningServer(sheafdb_kind(), Path(tmp) / "data", Path(tmp) / "server.log")
        try:
            client, _ = server.wait_serving()
            query = build(client, args.rows)

            for expression in args.filter or [""]:
                profile(client, server.pid, query, expression, args.seconds, Path(tmp))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
