"""Latency of the gRPC request path, end to end through ``python -m sheafdb serve``.

Starts a server on a free port with a temporary data dir, builds a 20k x 128-d HNSW
collection (pymilvus MilvusClient), then times sequential calls, p50 / p99 in microseconds:

- through pymilvus MilvusClient: search (nq=1, limit 10, ef 64), get_load_state, get by 10 ids,
  query with a range filter;
- through the raw generated stub with the request serialized once up front and the reply left
  as bytes (``grpc`` channel, no pymilvus): search, get_load_state, query, get_version —
  what remains is the server's cost plus grpcio's client core, without pymilvus's.

Usage: .venv/bin/python bench/grpc_latency.py [--calls N] [--rows N] [--rounds N]
Each round measures every workload once (interleaved, so drifting machine load hits all of
them alike); the table shows the median over rounds of each round's p50 / p99.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import grpc
import numpy as np
import psutil
from pymilvus import DataType, MilvusClient
from pymilvus.grpc_gen import common_pb2, milvus_pb2

COLLECTION = "latency"
DIM = 128
SERVICE = "/milvus.proto.milvus.MilvusService/"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(data_dir: str, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sheafdb", "serve", "--data-dir", data_dir, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit("the server exited during start") from None
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("the server did not start within 60 s")


def build_collection(client: MilvusClient, rows: int, rng: np.random.Generator) -> np.ndarray:
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("n", DataType.INT64)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="HNSW", metric_type="L2", params={"M": 16, "efConstruction": 100})
    client.create_collection(COLLECTION, schema=schema, index_params=index)
    vectors = rng.random((rows, DIM), dtype=np.float32)
    batch = 5000
    for start in range(0, rows, batch):
        data = [{"id": i, "vec": vectors[i], "n": i % 1000} for i in range(start, min(start + batch, rows))]
        client.insert(COLLECTION, data)
    client.flush(COLLECTION)
    client.load_collection(COLLECTION)
    deadline = time.monotonic() + 120
    # Index builds of sealed segments run in the background: time the indexed search.
    while client.describe_index(COLLECTION, "vec").get("pending_index_rows", 0) > 0:
        if time.monotonic() > deadline:
            raise SystemExit("the HNSW index was not built within 120 s")
        time.sleep(0.2)
    return vectors


def server_cpu_s(server: psutil.Process) -> float:
    times = server.cpu_times()
    return float(times.user + times.system)


def percentiles(call: Callable[[], object], calls: int, server: psutil.Process) -> tuple[float, float, float]:
    """p50 and p99 latency, and the server's CPU time per call (all in microseconds): the CPU
    figure hardly moves with the machine's load, the latencies do."""
    for _ in range(min(50, calls)):
        call()  # warm up (connection, caches)
    samples = []
    cpu_before = server_cpu_s(server)
    for _ in range(calls):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1000)
    cpu_us = (server_cpu_s(server) - cpu_before) * 1e6 / calls
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.99 * len(samples)))], cpu_us


def raw_calls(port: int, query_vector: np.ndarray) -> dict[str, Callable[[], object]]:
    """Pre-serialized requests on a bare channel: bytes in, bytes out."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=10)
    placeholder = common_pb2.PlaceholderGroup(
        placeholders=[
            common_pb2.PlaceholderValue(
                tag="$0", type=common_pb2.PlaceholderType.FloatVector, values=[query_vector.tobytes()]
            )
        ]
    ).SerializeToString()
    search = milvus_pb2.SearchRequest(
        collection_name=COLLECTION,
        dsl="",
        dsl_type=common_pb2.DslType.BoolExprV1,
        placeholder_group=placeholder,
        nq=1,
        search_params=[
            common_pb2.KeyValuePair(key="anns_field", value="vec"),
            common_pb2.KeyValuePair(key="topk", value="10"),
            common_pb2.KeyValuePair(key="metric_type", value="L2"),
            common_pb2.KeyValuePair(key="params", value='{"ef": 64}'),
            common_pb2.KeyValuePair(key="round_decimal", value="-1"),
        ],
    ).SerializeToString()
    load_state = milvus_pb2.GetLoadStateRequest(collection_name=COLLECTION).SerializeToString()
    query = milvus_pb2.QueryRequest(
        collection_name=COLLECTION,
        expr="id >= 1000 and id < 1010",
        output_fields=["id", "n"],
    ).SerializeToString()
    version = milvus_pb2.GetVersionRequest().SerializeToString()

    def call(method: str, payload: bytes) -> Callable[[], object]:
        stub = channel.unary_unary(SERVICE + method)  # no (de)serializers: bytes pass through
        return lambda: stub(payload)

    return {
        "raw search": call("Search", search),
        "raw get_load_state": call("GetLoadState", load_state),
        "raw query range": call("Query", query),
        "raw get_version": call("GetVersion", version),
    }


def client_calls(client: MilvusClient, query_vector: np.ndarray) -> dict[str, Callable[[], object]]:
    ten_ids = list(range(500, 510))
    return {
        "search nq=1 k=10": lambda: client.search(
            COLLECTION, [query_vector], limit=10, search_params={"params": {"ef": 64}}
        ),
        "get_load_state": lambda: client.get_load_state(COLLECTION),
        "get 10 ids": lambda: client.get(COLLECTION, ids=ten_ids),
        "query range": lambda: client.query(
            COLLECTION, filter="id >= 1000 and id < 1010", output_fields=["id", "n"]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per workload and round")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    data_dir = tempfile.mkdtemp(prefix="sheafdb-latency-")
    port = free_port()
    server = start_server(data_dir, port)
    try:
        client = MilvusClient(uri=f"http://127.0.0.1:{port}")
        built = time.perf_counter()
        vectors = build_collection(client, args.rows, rng)
        print(
            f"server pid {server.pid}; {args.rows} x {DIM} HNSW built and loaded in "
            f"{time.perf_counter() - built:.1f} s",
            file=sys.stderr,
        )
        query_vector = vectors[123] + np.float32(0.01)
        workloads = {**client_calls(client, query_vector), **raw_calls(port, query_vector)}
        process = psutil.Process(server.pid)
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in workloads}
        for _ in range(args.rounds):
            for name, call in workloads.items():
                results[name].append(percentiles(call, args.calls, process))
        print(
            f"{'workload':<22}{'p50 us':>10}{'p99 us':>10}{'server CPU us':>15}"
            f"   ({args.rounds} rounds x {args.calls} calls)"
        )
        for name, rounds in results.items():
            p50, p99, cpu = (statistics.median(r[i] for r in rounds) for i in range(3))
            print(f"{name:<22}{p50:>10.0f}{p99:>10.0f}{cpu:>15.0f}")
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
