"""Latency the one-port front adds: gRPC and REST round trips through it vs direct.

Runs a tiny MilvusService (pymilvus stubs, GetVersion) and a tiny ASGI app in this process
(the client too, so its Python shares the GIL with the front: compare rows, not absolutes),
then times sequential round trips (median and p90 in microseconds, median over rounds) for:
  gRPC direct over TCP, gRPC direct over the unix socket, gRPC through the front (to the
  unix socket, and to the TCP port);
  REST direct (uvicorn on TCP), REST through the front served in place, REST relayed to uvicorn.
Usage: .venv/bin/python bench/front_latency.py [calls per round] [rounds]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent import futures

import grpc
import httpx
import uvicorn
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sheafdb.api.front import FrontThread, ProtocolFront


class _Version(milvus_pb2_grpc.MilvusServiceServicer):
    def GetVersion(self, request, context):  # noqa: N802
        return milvus_pb2.GetVersionResponse(status=common_pb2.Status(), version="bench")


async def _ok(_request: Request) -> JSONResponse:
    return JSONResponse({"code": 0, "data": []})


APP = Starlette(routes=[Route("/v2/vectordb/collections/list", _ok, methods=["POST"])])


def _timed(call: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(min(200, n)):
        call()  # warm up
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * len(samples))]


def _uvicorn(**kwargs: object) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(APP, lifespan="off", log_level="warning", **kwargs))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server


def main(n: int, rounds: int) -> None:
    tmp = tempfile.mkdtemp()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(_Version(), grpc_server)
    tcp_port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.add_insecure_port(f"unix:{tmp}/grpc.sock")
    grpc_server.start()
    rest_tcp = _uvicorn(host="127.0.0.1", port=0)
    rest_tcp_port = rest_tcp.servers[0].sockets[0].getsockname()[1]
    rest_uds = _uvicorn(uds=f"{tmp}/rest.sock")
    in_place = FrontThread(ProtocolFront(f"unix:{tmp}/grpc.sock", rest_app=APP), "127.0.0.1", 0)
    spliced = FrontThread(
        ProtocolFront(f"unix:{tmp}/grpc.sock", rest_target=f"unix:{tmp}/rest.sock"), "127.0.0.1", 0
    )
    via_tcp = FrontThread(ProtocolFront(f"127.0.0.1:{tcp_port}", rest_app=APP), "127.0.0.1", 0)
    front_port, spliced_port, via_tcp_port = in_place.start(), spliced.start(), via_tcp.start()

    calls: dict[str, Callable[[], object]] = {}
    closers: list[Callable[[], None]] = []
    for label, target in (
        ("gRPC direct TCP", f"127.0.0.1:{tcp_port}"),
        ("gRPC direct unix", f"unix:{tmp}/grpc.sock"),
        ("gRPC via front", f"127.0.0.1:{front_port}"),
        ("gRPC via front, TCP backend", f"127.0.0.1:{via_tcp_port}"),
    ):
        channel = grpc.insecure_channel(target)
        closers.append(channel.close)
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        calls[label] = lambda stub=stub: stub.GetVersion(milvus_pb2.GetVersionRequest())
    for label, port in (
        ("REST direct uvicorn TCP", rest_tcp_port),
        ("REST via front, in place", front_port),
        ("REST via front, spliced", spliced_port),
    ):
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}")
        closers.append(client.close)
        calls[label] = lambda c=client: c.post("/v2/vectordb/collections/list", content=b"{}")
    # Every round times every workload once, so drifting machine load hits them alike; the
    # table shows the median over rounds of each round's median and p90.
    rounds_of: dict[str, list[tuple[float, float]]] = {label: [] for label in calls}
    for _ in range(rounds):
        for label, call in calls.items():
            rounds_of[label].append(_timed(call, n))
    results = {
        label: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
        for label, rs in rounds_of.items()
    }
    for close in closers:
        close()

    for label, (median, p90) in results.items():
        print(f"{label:28s} median {median:8.1f} us   p90 {p90:8.1f} us")
    base = results["gRPC direct TCP"][0]
    print(
        f"front adds {results['gRPC via front'][0] - base:+.1f} us to a gRPC round trip "
        f"({results['gRPC via front'][0] / base:.2f}x)"
    )

    in_place.stop()
    via_tcp.stop()
    spliced.stop()
    rest_tcp.should_exit = rest_uds.should_exit = True
    grpc_server.stop(None)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
