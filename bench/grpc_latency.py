"""Latency of the gRPC request path, end to end through ``python -m sheafdb serve``.

Starts a server on a free port with a temporary data dir, builds a 20k x 128-d HNSW
collection (pymilvus MilvusClient; M=16, efConstruction --ef-construction), then times
sequential calls, p50 / p99 in microseconds:

- through pymilvus MilvusClient: search (nq=1 or --nq, limit 10, ef 64), get_load_state, get by 10 ids,
  query with a range filter;
- through the raw generated stub with the request serialized once up front and the reply left
  as bytes (``grpc`` channel, no pymilvus): search, get_load_state, query, get_version —
  what remains is the server's cost plus grpcio's client core, without pymilvus's;
- with --unix, the same raw search and get_load_state sent straight to the internal gRPC
  socket (``<data dir>/grpc.sock``), skipping the one-port front: the front's share;
- with --filter EXPR (repeatable), the raw search again with that filter (and on the socket
  with --unix), e.g. --filter 'n < 100' (10% of rows) against the unfiltered search;
- with --rest, POST /v2/vectordb/entities/search (nq=1, limit 10, ef 64) on one keep-alive
  http.client connection through the shared port, the body serialized once.
With --auth on the server runs with ``--auth`` and every client sends the token root:Milvus;
--auth both starts one server of each kind and interleaves their rounds, for a ratio.
Every workload's reply is checked once before timing (a rejected call would look fast).

Usage: .venv/bin/python bench/grpc_latency.py [--calls N] [--rows N] [--rounds N]
    [--ef-construction N] [--auth off|on|both] [--unix] [--rest] [--nq N] [--filter EXPR ...]
Each round measures every workload once (interleaved, so drifting machine load hits all of
them alike); the table shows the median over rounds of each round's p50 / p99.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import psutil
from harness.servers import free_port
from pymilvus import DataType, MilvusClient
from pymilvus.grpc_gen import common_pb2, milvus_pb2

COLLECTION = "latency"
DIM = 128
SERVICE = "/milvus.proto.milvus.MilvusService/"
TOKEN = "root:Milvus"  # the default root login a server started with --auth accepts


def start_server(data_dir: str, port: int, auth: bool) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "sheafdb", "serve", "--data-dir", data_dir, "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--auth"] if auth else command,
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


def build_collection(
    client: MilvusClient, rows: int, ef_construction: int, rng: np.random.Generator
) -> np.ndarray:
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("n", DataType.INT64)
    index = client.prepare_index_params()
    hnsw = {"M": 16, "efConstruction": ef_construction}
    index.add_index("vec", index_type="HNSW", metric_type="L2", params=hnsw)
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


def raw_requests(queries: np.ndarray, filters: list[str]) -> dict[str, tuple[str, bytes]]:
    """Workload name -> (method, serialized request), built once; a search per filter too."""
    placeholder = common_pb2.PlaceholderGroup(
        placeholders=[
            common_pb2.PlaceholderValue(
                tag="$0", type=common_pb2.PlaceholderType.FloatVector, values=[q.tobytes() for q in queries]
            )
        ]
    ).SerializeToString()
    searches = {
        f"search [{expr}]" if expr else "search": milvus_pb2.SearchRequest(
            collection_name=COLLECTION,
            dsl=expr,
            dsl_type=common_pb2.DslType.BoolExprV1,
            placeholder_group=placeholder,
            nq=len(queries),
            search_params=[
                common_pb2.KeyValuePair(key="anns_field", value="vec"),
                common_pb2.KeyValuePair(key="topk", value="10"),
                common_pb2.KeyValuePair(key="metric_type", value="L2"),
                common_pb2.KeyValuePair(key="params", value='{"ef": 64}'),
                common_pb2.KeyValuePair(key="round_decimal", value="-1"),
            ],
        ).SerializeToString()
        for expr in ("", *filters)
    }
    load_state = milvus_pb2.GetLoadStateRequest(collection_name=COLLECTION).SerializeToString()
    query = milvus_pb2.QueryRequest(
        collection_name=COLLECTION,
        expr="id >= 1000 and id < 1010",
        output_fields=["id", "n"],
    ).SerializeToString()
    version = milvus_pb2.GetVersionRequest().SerializeToString()
    return {
        **{name: ("Search", search) for name, search in searches.items()},
        "get_load_state": ("GetLoadState", load_state),
        "query range": ("Query", query),
        "get_version": ("GetVersion", version),
    }


# Reply types, to check each raw workload once: its status must be Success.
REPLY_TYPES = {
    "Search": milvus_pb2.SearchResults,
    "GetLoadState": milvus_pb2.GetLoadStateResponse,
    "Query": milvus_pb2.QueryResults,
    "GetVersion": milvus_pb2.GetVersionResponse,
}


def raw_calls(
    target: str, label: str, requests: dict[str, tuple[str, bytes]], auth: bool
) -> dict[str, Callable[[], object]]:
    """Pre-serialized requests on a bare channel to ``target``: bytes in, bytes out."""
    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=10)
    # pymilvus sends the token base64-encoded in the ``authorization`` metadata; so do we.
    metadata = (("authorization", base64.b64encode(TOKEN.encode()).decode()),) if auth else None
    calls: dict[str, Callable[[], object]] = {}
    for name, (method, payload) in requests.items():
        stub = channel.unary_unary(SERVICE + method)  # no (de)serializers: bytes pass through
        reply = REPLY_TYPES[method].FromString(stub(payload, metadata=metadata))
        if reply.status.code != 0:
            raise SystemExit(f"{label} {name} failed: {reply.status.code} {reply.status.reason}")
        calls[f"{label} {name}"] = lambda stub=stub, payload=payload: stub(payload, metadata=metadata)
    return calls


def rest_search_call(port: int, queries: np.ndarray, auth: bool) -> Callable[[], object]:
    """One keep-alive HTTP/1.1 connection, the search body serialized once."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps(
        {
            "collectionName": COLLECTION,
            "data": queries.tolist(),
            "annsField": "vec",
            "limit": 10,
            "searchParams": {"metricType": "L2", "params": {"ef": 64}},
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {TOKEN}"

    def call() -> bytes:
        try:
            connection.request("POST", "/v2/vectordb/entities/search", body=body, headers=headers)
            return connection.getresponse().read()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # uvicorn closes a keep-alive connection idle for 5 s (while other workloads ran):
            # open a new one; this happens in the warm-up calls, before any timing.
            print("REST: the server closed the idle connection; reconnecting", file=sys.stderr)
            connection.close()
            connection.request("POST", "/v2/vectordb/entities/search", body=body, headers=headers)
            return connection.getresponse().read()

    reply = json.loads(call())
    if reply.get("code") != 0 or len(reply.get("data", [])) != 10 * len(queries):  # hits flattened
        raise SystemExit(f"REST search failed: {reply}")
    return call


def client_calls(client: MilvusClient, queries: np.ndarray) -> dict[str, Callable[[], object]]:
    ten_ids = list(range(500, 510))
    vectors = list(queries)
    hits = client.search(COLLECTION, vectors, limit=10, search_params={"params": {"ef": 64}})
    if len(hits) != len(queries) or len(hits[0]) != 10:
        raise SystemExit(
            f"pymilvus search returned {len(hits)} x {len(hits[0])} hits, not {len(queries)} x 10"
        )
    return {
        f"search nq={len(queries)} k=10": lambda: client.search(
            COLLECTION, vectors, limit=10, search_params={"params": {"ef": 64}}
        ),
        "get_load_state": lambda: client.get_load_state(COLLECTION),
        "get 10 ids": lambda: client.get(COLLECTION, ids=ten_ids),
        "query range": lambda: client.query(
            COLLECTION, filter="id >= 1000 and id < 1010", output_fields=["id", "n"]
        ),
    }


@contextlib.contextmanager
def running_server(auth: bool) -> Iterator[tuple[subprocess.Popen[bytes], str, int]]:
    """A server on a free port and a fresh data dir, stopped by its PID and removed on exit."""
    data_dir = tempfile.mkdtemp(prefix="sheafdb-latency-")
    port = free_port()
    server = start_server(data_dir, port, auth)
    try:
        yield server, data_dir, port
    finally:
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(data_dir, ignore_errors=True)


def prepare_workloads(
    stack: contextlib.ExitStack, auth: bool, args: argparse.Namespace
) -> tuple[dict[str, Callable[[], object]], psutil.Process]:
    """Start a server, build the collection (same seed every time) and return its workloads."""
    server, data_dir, port = stack.enter_context(running_server(auth))
    client = MilvusClient(uri=f"http://127.0.0.1:{port}", token=TOKEN if auth else "")
    stack.callback(client.close)
    built = time.perf_counter()
    vectors = build_collection(client, args.rows, args.ef_construction, np.random.default_rng(7))
    print(
        f"server pid {server.pid}; {args.rows} x {DIM} HNSW (M=16, efConstruction="
        f"{args.ef_construction}) built and loaded in {time.perf_counter() - built:.1f} s; "
        f"auth {'on' if auth else 'off'}",
        file=sys.stderr,
    )
    queries = vectors[123 : 123 + args.nq] + np.float32(0.01)
    requests = raw_requests(queries, args.filter)
    workloads = {
        **client_calls(client, queries),
        **raw_calls(f"127.0.0.1:{port}", "raw", requests, auth),
    }
    if args.unix:
        socket_path = os.path.join(data_dir, "grpc.sock")
        if not os.path.exists(socket_path):
            raise SystemExit(f"no internal gRPC socket at {socket_path}")
        direct = {
            name: r for name, r in requests.items() if name.startswith("search") or name == "get_load_state"
        }
        workloads.update(raw_calls(f"unix:{socket_path}", "unix", direct, auth))
    if args.rest:
        workloads["REST search"] = rest_search_call(port, queries, auth)
    return workloads, psutil.Process(server.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per workload and round")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ef-construction", type=int, default=100, help="HNSW efConstruction (M is 16)")
    parser.add_argument(
        "--auth",
        choices=("off", "on", "both"),
        default="off",
        help="serve with --auth (clients send root:Milvus); both: one server each, rounds interleaved",
    )
    parser.add_argument("--unix", action="store_true", help="also raw calls on the internal gRPC socket")
    parser.add_argument("--rest", action="store_true", help="also REST v2 search through the port")
    parser.add_argument("--nq", type=int, default=1, help="query vectors per search (every search workload)")
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        help="also raw searches with this filter (repeatable; n is i %% 1000: 'n < 100' keeps 10%%)",
    )
    args = parser.parse_args()
    modes = {"off": (False,), "on": (True,), "both": (False, True)}[args.auth]
    with contextlib.ExitStack() as stack:
        # (label, call, server process): with two servers each label says which one it hit.
        workloads: list[tuple[str, Callable[[], object], psutil.Process]] = []
        for auth in modes:
            calls, process = prepare_workloads(stack, auth, args)
            suffix = f" [auth {'on' if auth else 'off'}]" if len(modes) > 1 else ""
            workloads += [(name + suffix, call, process) for name, call in calls.items()]
        results: dict[str, list[tuple[float, float, float]]] = {label: [] for label, _, _ in workloads}
        for _ in range(args.rounds):
            for label, call, process in workloads:
                results[label].append(percentiles(call, args.calls, process))
        width = max(22, *(len(label) + 2 for label in results))
        print(
            f"{'workload':<{width}}{'p50 us':>10}{'p99 us':>10}{'server CPU us':>15}"
            f"   ({args.rounds} rounds x {args.calls} calls)"
        )
        for label, rounds in results.items():
            p50, p99, cpu = (statistics.median(r[i] for r in rounds) for i in range(3))
            print(f"{label:<{width}}{p50:>10.0f}{p99:>10.0f}{cpu:>15.0f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
