"""The server's CPU per nq=1 search, against what faiss itself takes for that search.

Starts ``python -m sheafdb serve`` on a free port, builds a 20k x 128-d HNSW collection (M=16,
efConstruction 100; one sealed segment) with pymilvus, then, in one run:

- faiss alone: the segment's own index file, read with faiss in this process, one thread,
  nq=1 searches (k=10, efSearch=64): thread CPU per search;
- the server under C concurrent clients (threads here, each sending the same pre-serialized
  SearchRequest on its own gRPC channel, replies left as bytes: the clients cost little):
  searches/s, and the server's CPU per search (user + system of its process, all threads);
- the same for GetVersion, the cheapest RPC: what the gRPC path alone costs per call.
  Search CPU - GetVersion CPU - faiss CPU is what the engine and the codecs add.

Usage: .venv/bin/python bench/search_cpu.py [--rows N] [--seconds S] [--clients 1,16] [--rounds N]
The CPU figures hardly move with the machine's load; searches/s does: compare within a run.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable

import faiss
import grpc
import numpy as np
import psutil
from grpc_latency import (
    COLLECTION,
    DIM,
    SERVICE,
    build_collection,
    raw_requests,
    running_server,
    server_cpu_s,
)
from pymilvus import MilvusClient
from pymilvus.grpc_gen import milvus_pb2

EF_SEARCH = 64


def faiss_cpu_us(data_dir: str, queries: np.ndarray) -> float:
    """Thread CPU per nq=1 search on the segment's own HNSW file (median of 5 passes)."""
    (path,) = [p for p in glob.glob(f"{data_dir}/collections/**/*", recursive=True) if p.endswith(".faiss")]
    index = faiss.read_index(path)
    faiss.omp_set_num_threads(1)
    params = faiss.SearchParametersHNSW(efSearch=EF_SEARCH)
    rows = [q.reshape(1, -1) for q in queries]
    for row in rows[:100]:
        index.search(row, 10, params=params)  # warm
    passes = []
    for _ in range(5):
        start = time.thread_time_ns()
        for row in rows:
            index.search(row, 10, params=params)
        passes.append((time.thread_time_ns() - start) / 1000 / len(rows))
    return statistics.median(passes)


def run_clients(
    port: int, method: str, payload: bytes, clients: int, seconds: float, server: psutil.Process
) -> tuple[float, float, float]:
    """``clients`` threads calling for ``seconds``: calls/s, server CPU per call (us), p99 (ms)."""
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for _ in range(clients)]
    stubs = [channel.unary_unary(SERVICE + method) for channel in channels]
    for stub in stubs:
        stub(payload)  # connect and warm
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(clients)]

    def loop(stub: Callable[[bytes], bytes], out: list[float]) -> None:
        while not stop.is_set():
            start = time.perf_counter()
            stub(payload)
            out.append(time.perf_counter() - start)

    threads = [threading.Thread(target=loop, args=(s, out)) for s, out in zip(stubs, latencies, strict=True)]
    cpu_before, wall_before = server_cpu_s(server), time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    wall, cpu = time.perf_counter() - wall_before, server_cpu_s(server) - cpu_before
    for channel in channels:
        channel.close()
    samples = sorted(x for out in latencies for x in out)
    calls = len(samples)
    return calls / wall, cpu * 1e6 / calls, samples[int(0.99 * (calls - 1))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--clients", default="1,16", help="concurrent clients, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    concurrency = [int(c) for c in args.clients.split(",")]
    with contextlib.ExitStack() as stack:
        server, data_dir, port = stack.enter_context(running_server(auth=False))
        client = MilvusClient(uri=f"http://127.0.0.1:{port}")
        stack.callback(client.close)
        vectors = build_collection(client, args.rows, 100, np.random.default_rng(7))
        rng = np.random.default_rng(11)
        queries = (vectors[rng.integers(0, len(vectors), 2000)] + np.float32(0.01)).astype(np.float32)
        requests = raw_requests(queries[:1], [])
        process = psutil.Process(server.pid)
        check = milvus_pb2.SearchResults.FromString(
            grpc.insecure_channel(f"127.0.0.1:{port}").unary_unary(SERVICE + "Search")(requests["search"][1])
        )
        if check.status.code != 0 or len(check.results.ids.int_id.data) != 10:
            raise SystemExit(f"the search failed: {check.status}")
        rows: dict[str, list[tuple[float, float, float]]] = {}
        faiss_runs = []
        for _ in range(args.rounds):
            faiss_runs.append(faiss_cpu_us(data_dir, queries))
            for clients in concurrency:
                for name in ("search", "get_version"):
                    method, payload = requests[name]
                    label = f"{name}, {clients} client(s)"
                    rows.setdefault(label, []).append(
                        run_clients(port, method, payload, clients, args.seconds, process)
                    )
        faiss_us = statistics.median(faiss_runs)
    print(f"{args.rows} x {DIM} HNSW M=16 efC=100, {COLLECTION}, nq=1 k=10 ef={EF_SEARCH}; "
          f"{os.cpu_count()} cores; {args.rounds} round(s) of {args.seconds:g} s; medians")  # fmt: skip
    print(f"faiss alone (1 thread, the segment's index file): {faiss_us:.0f} us CPU per search\n")
    print("| workload | calls/s | server CPU per call (us) | / faiss | p99 (ms) |")
    print("| --- | --- | --- | --- | --- |")
    for label, runs in rows.items():
        qps, cpu, p99 = (statistics.median(r[i] for r in runs) for i in range(3))
        ratio = f"{cpu / faiss_us:.1f}x" if label.startswith("search") else "—"
        print(f"| {label} | {qps:,.0f} | {cpu:,.0f} | {ratio} | {p99:.2f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
