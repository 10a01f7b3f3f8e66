"""``serve --workers 1`` against ``--workers 2``: searches/s, p99, CPU and memory, in one run.

Builds a collection once (R x 128-d HNSW, M=16, efConstruction 100; one sealed segment) with
a server on a fresh data dir, then serves that same data dir (its load is restored at start)
with ``--workers 1`` and ``--workers 2`` in turn, each round:

- C concurrent clients (threads here, each its own gRPC connection, each sending the same
  pre-serialized nq=1 SearchRequest, k=10, replies left as bytes) for S seconds:
  searches/s, p99 latency, and the server's CPU per search (user + system of every process
  of the server: the primary and its workers);
- the server's memory once served: the sum over its processes of RSS (shared pages counted
  once per process), PSS (each shared page split among the processes mapping it: the
  machine's memory the server holds) and USS (pages only one process holds). Measured after
  the rounds by bench/server_memory.py, a process of its own that maps none of the server's
  libraries (this one does, and would take a share of their pages off the server's PSS).

Usage: .venv/bin/python bench/workers.py [--rows N] [--seconds S] [--clients 1,4,16] [--rounds N]
Compare rows of one run: the machine's load moves the absolute figures between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import grpc
import numpy as np
import psutil
from grpc_latency import COLLECTION, DIM, SERVICE, raw_requests
from pymilvus import DataType, MilvusClient
from pymilvus.grpc_gen import milvus_pb2
from search_cpu import faiss_cpu_us


def build(client: MilvusClient, rows: int) -> np.ndarray:
    """The collection, indexed and loaded (waits as long as a large HNSW build takes)."""
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("n", DataType.INT64)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="HNSW", metric_type="L2", params={"M": 16, "efConstruction": 100})
    client.create_collection(COLLECTION, schema=schema, index_params=index)
    vectors = np.random.default_rng(7).random((rows, DIM), dtype=np.float32)
    for start in range(0, rows, 5000):
        client.insert(
            COLLECTION,
            [{"id": i, "vec": vectors[i], "n": i % 1000} for i in range(start, min(start + 5000, rows))],
        )
    client.flush(COLLECTION)
    client.load_collection(COLLECTION)
    deadline = time.monotonic() + 3600
    while client.describe_index(COLLECTION, "vec").get("pending_index_rows", 0) > 0:
        if time.monotonic() > deadline:
            raise SystemExit("the HNSW index was not built within an hour")
        time.sleep(0.5)
    return vectors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(data_dir: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "sheafdb", "serve", "--data-dir", data_dir, "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit("the server exited during start") from None
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("the server did not start within 180 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def processes(server: psutil.Process) -> list[psutil.Process]:
    return [server, *server.children(recursive=True)]


def cpu_s(server: psutil.Process) -> float:
    total = 0.0
    for process in processes(server):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def channel(port: int) -> grpc.Channel:
    # Its own subchannel pool: otherwise grpc shares one connection among a process's channels.
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])


def run_clients(
    port: int, payload: bytes, clients: int, seconds: float, server: psutil.Process
) -> tuple[float, float, float]:
    """``clients`` threads searching for ``seconds``: searches/s, server CPU per search (us), p99 (ms)."""
    channels = [channel(port) for _ in range(clients)]
    stubs = [c.unary_unary(SERVICE + "Search") for c in channels]
    for stub in stubs:
        for _ in range(20):
            stub(payload)  # connect and warm (a worker loads what it serves on its first read)
    stop_flag = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(clients)]

    def loop(stub: Callable[[bytes], bytes], out: list[float]) -> None:
        while not stop_flag.is_set():
            begin = time.perf_counter()
            stub(payload)
            out.append(time.perf_counter() - begin)

    threads = [threading.Thread(target=loop, args=(s, out)) for s, out in zip(stubs, latencies, strict=True)]
    cpu_before, wall_before = cpu_s(server), time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop_flag.set()
    for thread in threads:
        thread.join()
    wall, cpu = time.perf_counter() - wall_before, cpu_s(server) - cpu_before
    for c in channels:
        c.close()
    samples = sorted(x for out in latencies for x in out)
    calls = len(samples)
    return calls / wall, cpu * 1e6 / calls, samples[int(0.99 * (calls - 1))] * 1000


def wait_loaded(port: int, payload: bytes) -> None:
    """Until a search answers (the restored load is done)."""
    deadline = time.monotonic() + 300
    while True:
        with channel(port) as probe:
            answer = milvus_pb2.SearchResults.FromString(probe.unary_unary(SERVICE + "Search")(payload))
        if answer.status.code == 0 and len(answer.results.ids.int_id.data) == 10:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the collection was not served within 300 s: {answer.status}")
        time.sleep(0.5)


def warm(port: int, server_pid: int, clients: int, seconds: float) -> None:
    """``--warm``: until the restored load answers, then ``clients`` clients for ``seconds``."""
    payload = raw_requests(np.random.default_rng(7).random((1, DIM), dtype=np.float32), [])["search"][1]
    wait_loaded(port, payload)
    run_clients(port, payload, clients, seconds, psutil.Process(server_pid))


def main() -> None:
    if sys.argv[1:2] == ["--warm"]:  # bench/server_memory.py's client, in a process of its own
        port, pid, clients, seconds = sys.argv[2:6]
        warm(int(port), int(pid), int(clients), float(seconds))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    concurrency = [int(c) for c in args.clients.split(",")]
    data_dir = tempfile.mkdtemp(prefix="sheafdb-workers-bench-")
    try:
        port = free_port()
        builder = start(data_dir, port, 1)
        try:
            client = MilvusClient(uri=f"http://127.0.0.1:{port}")
            vectors = build(client, args.rows)
            client.close()
        finally:
            stop(builder)
        queries = (vectors[:2000] + np.float32(0.01)).astype(np.float32)
        payload = raw_requests(queries[123:124], [])["search"][1]
        try:  # faiss alone on the segment's own index file (one sealed segment only)
            faiss_us: float | None = faiss_cpu_us(data_dir, queries)
        except ValueError:
            faiss_us = None
        results: dict[tuple[int, int], list[tuple[float, float, float]]] = {}
        for _ in range(args.rounds):
            for workers in (1, 2):
                port = free_port()
                server = start(data_dir, port, workers)
                try:
                    wait_loaded(port, payload)
                    process = psutil.Process(server.pid)
                    for clients in concurrency:
                        results.setdefault((workers, clients), []).append(
                            run_clients(port, payload, clients, args.seconds, process)
                        )
                finally:
                    stop(server)
        probe = [sys.executable, os.path.join(os.path.dirname(__file__), "server_memory.py"), data_dir]
        found = json.loads(
            subprocess.run([*probe, "--rounds", str(args.rounds)], check=True, capture_output=True).stdout
        )
        memories = {int(workers): rows for workers, rows in found.items()}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"{args.rows} x 128 HNSW M=16 efC=100, nq=1 k=10; {os.cpu_count()} cores; "
          f"{args.rounds} round(s) of {args.seconds:g} s per row; medians")  # fmt: skip
    if faiss_us is not None:
        print(f"faiss alone (1 thread, ef=64, the segment's index file): {faiss_us:.0f} us CPU per search")
    print("\n| clients | workers | searches/s | p99 (ms) | server CPU per search (us) | searches/s vs 1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for clients in concurrency:
        base = statistics.median(r[0] for r in results[(1, clients)])
        for workers in (1, 2):
            qps, cpu, p99 = (statistics.median(r[i] for r in results[(workers, clients)]) for i in range(3))
            print(f"| {clients} | {workers} | {qps:,.0f} | {p99:.2f} | {cpu:,.0f} | {qps / base:.2f}x |")
    print("\n| workers | RSS sum (MiB) | PSS sum (MiB) | USS sum (MiB) | PSS vs 1 worker |")
    print("| --- | --- | --- | --- | --- |")
    base_pss = statistics.median(m[1] for m in memories[1])
    for workers in (1, 2):
        rss, pss, uss = (statistics.median(m[i] for m in memories[workers]) for i in range(3))
        mib = 1 << 20
        print(
            f"| {workers} | {rss / mib:,.0f} | {pss / mib:,.0f} | {uss / mib:,.0f} | {pss / base_pss:.2f}x |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
