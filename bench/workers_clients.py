"""The client side of bench/workers.py: builds the collection, runs the clients, measures
searches/s, p99 and the server's CPU, in a process of its own (it imports grpc, numpy and
pymilvus; bench/workers.py does not, so that it can read the server's memory without holding
a share of the server's library pages, bench/server_memory.py).

``--throughput DATA_DIR ROWS SECONDS CLIENTS ROUNDS``: builds the collection in DATA_DIR, then
each round serves it with ``--workers 1`` and ``--workers 2``; prints JSON
``{"faiss_us": .., "results": [[workers, clients, [searches/s, cpu us, p99 ms]], ...]}``.
``--warm PORT SERVER_PID CLIENTS SECONDS``: waits until the server answers a search, then
runs the clients (bench/server_memory.py's warm-up).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import grpc
import numpy as np
import psutil
from grpc_latency import COLLECTION, DIM, SERVICE, raw_requests
from h2_load import H2Load
from pymilvus import DataType, MilvusClient
from pymilvus.grpc_gen import milvus_pb2
from search_cpu import faiss_cpu_us
from server_memory import free_port, start


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
    for first in range(0, rows, 5000):
        client.insert(
            COLLECTION,
            [{"id": i, "vec": vectors[i], "n": i % 1000} for i in range(first, min(first + 5000, rows))],
        )
    client.flush(COLLECTION)
    client.load_collection(COLLECTION)
    deadline = time.monotonic() + 3600
    while client.describe_index(COLLECTION, "vec").get("pending_index_rows", 0) > 0:
        if time.monotonic() > deadline:
            raise SystemExit("the HNSW index was not built within an hour")
        time.sleep(0.5)
    return vectors


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
    port: int, payload: bytes, clients: int, seconds: float, server: psutil.Process, method: str = "Search"
) -> tuple[float, float, float]:
    """``clients`` connections, each with one ``method`` call in flight, for ``seconds``: calls/s,
    server CPU per call (us), p99 (ms). The calls come from one lean loop (h2_load.py), not from
    grpcio client threads, so the clients leave the server its cores."""
    load = H2Load(port, SERVICE + method, payload, clients)
    try:
        load.run(0.5)  # connect and warm (a worker loads what it serves on its first read)
        cpu_before, wall_before = cpu_s(server), time.perf_counter()
        samples = sorted(load.run(seconds))
        wall, cpu = time.perf_counter() - wall_before, cpu_s(server) - cpu_before
    finally:
        load.close()
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


def throughput(data_dir: str, rows: int, seconds: float, concurrency: list[int], rounds: int) -> None:
    port = free_port()
    builder = start(data_dir, port, 1)
    try:
        client = MilvusClient(uri=f"http://127.0.0.1:{port}")
        vectors = build(client, rows)
        client.close()
    finally:
        stop(builder)
    queries = (vectors[:2000] + np.float32(0.01)).astype(np.float32)
    payload = raw_requests(queries[123:124], [])["search"][1]
    try:  # faiss alone on the segment's own index file (one sealed segment only)
        faiss_us: float | None = faiss_cpu_us(data_dir, queries)
    except ValueError:
        faiss_us = None
    results = []
    for _ in range(rounds):
        for workers in (1, 2):
            port = free_port()
            server = start(data_dir, port, workers)
            try:
                wait_loaded(port, payload)
                process = psutil.Process(server.pid)
                for clients in concurrency:
                    results.append([workers, clients, run_clients(port, payload, clients, seconds, process)])
            finally:
                stop(server)
    print(json.dumps({"faiss_us": faiss_us, "results": results}))


if __name__ == "__main__":
    if sys.argv[1] == "--warm":
        port, pid, clients, seconds = sys.argv[2:6]
        warm(int(port), int(pid), int(clients), float(seconds))
    elif sys.argv[1] == "--throughput":
        data_dir, rows, seconds, concurrency, rounds = sys.argv[2:7]
        throughput(data_dir, int(rows), float(seconds), [int(c) for c in concurrency.split(",")], int(rounds))
