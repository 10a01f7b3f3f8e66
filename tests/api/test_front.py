"""One port, both protocols: real sockets, a gRPC server on pymilvus's stubs, an ASGI app."""

from __future__ import annotations

import socket
import threading

import grpc
import httpx
import pytest
import uvicorn
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sheafdb.api.front import FrontThread, ProtocolFront, check_bind_safety
from sheafdb.errors import UnsafeBindRefused

from .grpc_echo import start_echo_server


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"path": request.url.path, "body": (await request.body()).decode()})


HTTP_APP = Starlette(routes=[Route("/{rest:path}", _echo, methods=["GET", "POST"])])


@pytest.fixture
def grpc_unix(tmp_path):
    address = f"unix:{tmp_path}/grpc.sock"
    server, _ = start_echo_server(address)
    yield address
    server.stop(None)


@pytest.fixture(params=["in_place", "spliced"])
def front_port(request, grpc_unix, tmp_path):
    rest_server = None
    if request.param == "in_place":
        front = ProtocolFront(grpc_unix, rest_app=HTTP_APP)
    else:
        rest_socket = f"{tmp_path}/rest.sock"
        rest_server = FrontlessUvicorn(rest_socket)
        front = ProtocolFront(grpc_unix, rest_target=f"unix:{rest_socket}")
    runner = FrontThread(front, "127.0.0.1", 0)
    yield runner.start()
    runner.stop()
    if rest_server is not None:
        rest_server.stop()


class FrontlessUvicorn:
    """uvicorn serving HTTP_APP on a unix socket, in a thread of its own."""

    def __init__(self, path: str) -> None:
        self.server = uvicorn.Server(uvicorn.Config(HTTP_APP, uds=path, lifespan="off", log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            self.thread.join(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_grpc_and_http_share_one_port(front_port):
    with grpc.insecure_channel(f"127.0.0.1:{front_port}") as channel:
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        for _ in range(3):
            assert stub.GetVersion(milvus_pb2.GetVersionRequest()).version == "echo:None"
        reply = stub.LoadCollection(milvus_pb2.LoadCollectionRequest(collection_name="c" * 100_000))
        assert reply.reason == "loaded " + "c" * 100_000  # larger than one read: back-pressure path
    with httpx.Client(base_url=f"http://127.0.0.1:{front_port}") as client:
        for i in range(3):  # keep-alive: several requests on one connection
            response = client.post("/v2/vectordb/collections/list", content=f"body {i}")
            assert response.json() == {"path": "/v2/vectordb/collections/list", "body": f"body {i}"}


def test_a_short_first_packet_still_routes(front_port):
    """The HTTP/2 preface split over several packets, then an HTTP/1 request one byte at a time."""
    with socket.create_connection(("127.0.0.1", front_port)) as sock:
        sock.sendall(b"GE")
        sock.sendall(b"T /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b'"path":"/x"' in data


def test_client_closing_early_does_not_break_the_front(front_port):
    with socket.create_connection(("127.0.0.1", front_port)) as sock:
        sock.sendall(b"PRI * HTTP")  # a partial preface, then gone
    with grpc.insecure_channel(f"127.0.0.1:{front_port}") as channel:
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        assert stub.GetVersion(milvus_pb2.GetVersionRequest()).version == "echo:None"


def test_public_bind_without_auth_is_refused():
    check_bind_safety("127.0.0.1", auth_enabled=False, insecure=False)
    check_bind_safety("::1", auth_enabled=False, insecure=False)
    check_bind_safety("localhost", auth_enabled=False, insecure=False)
    check_bind_safety("0.0.0.0", auth_enabled=True, insecure=False)
    check_bind_safety("0.0.0.0", auth_enabled=False, insecure=True)
    with pytest.raises(UnsafeBindRefused, match="authentication off"):
        check_bind_safety("0.0.0.0", auth_enabled=False, insecure=False)
    with pytest.raises(UnsafeBindRefused):
        check_bind_safety("192.168.1.10", auth_enabled=False, insecure=False)


def test_large_messages_both_ways_through_the_front(front_port):
    """A ~3 MB request and a ~3 MB reply: many relay reads, growing buffers, full socket buffers."""
    name = "n" * 3_000_000
    with grpc.insecure_channel(f"127.0.0.1:{front_port}") as channel:
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        for _ in range(2):
            assert (
                stub.LoadCollection(milvus_pb2.LoadCollectionRequest(collection_name=name)).reason
                == "loaded " + name
            )


def test_many_concurrent_connections(front_port):
    """Each thread its own channel (its own spliced connection) and its own REST connection."""
    failures: list[BaseException] = []

    def client(i: int) -> None:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{front_port}") as channel:
                stub = milvus_pb2_grpc.MilvusServiceStub(channel)
                payload = f"{i}-" * 20_000
                for _ in range(3):
                    reply = stub.LoadCollection(milvus_pb2.LoadCollectionRequest(collection_name=payload))
                    assert reply.reason == "loaded " + payload
            with httpx.Client(base_url=f"http://127.0.0.1:{front_port}") as rest:
                assert rest.post("/p", content=f"c{i}").json() == {"path": "/p", "body": f"c{i}"}
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_client_vanishing_mid_request_leaves_the_front_serving(front_port):
    """Half a large gRPC frame, then a reset: the relay ends that connection only."""
    with socket.create_connection(("127.0.0.1", front_port)) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\xff\xff\x00" + b"x" * 200_000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with grpc.insecure_channel(f"127.0.0.1:{front_port}") as channel:
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        assert stub.GetVersion(milvus_pb2.GetVersionRequest()).version == "echo:None"


def test_the_front_stops_with_connections_open(grpc_unix):
    runner = FrontThread(ProtocolFront(grpc_unix, rest_app=HTTP_APP), "127.0.0.1", 0)
    port = runner.start()
    idle_http = socket.create_connection(("127.0.0.1", port))
    idle_http.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = milvus_pb2_grpc.MilvusServiceStub(channel)
    assert stub.GetVersion(milvus_pb2.GetVersionRequest()).version == "echo:None"
    runner.stop()
    # The relayed gRPC connection ended with the front: no relay thread outlives it.
    assert [t for t in threading.enumerate() if t.name.startswith("sheafdb-relay")] == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    channel.close()
    idle_http.close()
