"""The server in-process: gRPC and REST on one port behind auth, its internal socket, its
data-dir lock, its clean stop."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from sheafdb.api.server import MAX_UNIX_SOCKET_PATH, InternalSocket, Server, ServerConfig
from sheafdb.api.serving import StartupError

ROOT = base64.b64encode(b"root:Milvus").decode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(ServerConfig(data_dir=tmp_path / "data", port=0, auth_enabled=True, max_workers=4))
    running.start()
    yield running
    running.stop()


def version(port: int, metadata: list[tuple[str, str]]) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        return str(stub.GetVersion(milvus_pb2.GetVersionRequest(), metadata=metadata, timeout=10).version)


def test_grpc_and_rest_share_the_port_behind_auth(server: Server) -> None:
    assert version(server.port, [("authorization", ROOT)]).startswith("v2.")
    with pytest.raises(grpc.RpcError) as raised:
        version(server.port, [])
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
    url = f"http://127.0.0.1:{server.port}/v2/vectordb/collections/list"
    assert httpx.post(url, json={}, headers={"Authorization": "Bearer root:Milvus"}).json() == {
        "code": 0,
        "data": [],
    }
    assert httpx.post(url, json={}, headers={"Authorization": "Bearer root:nope"}).status_code == 401


def test_a_second_server_on_the_same_data_dir_is_refused(server: Server) -> None:
    second = Server(ServerConfig(data_dir=server.config.data_dir, port=0))
    with pytest.raises(StartupError, match="in use by another SheafDB"):
        second.start()
    # The first one is untouched (its socket was not taken over).
    assert version(server.port, [("authorization", ROOT)]).startswith("v2.")


def test_stop_is_idempotent_and_frees_the_socket(tmp_path: Path) -> None:
    running = Server(ServerConfig(data_dir=tmp_path, port=0, max_workers=2))
    running.start()
    assert (tmp_path / "grpc.sock").exists()
    running.stop()
    running.stop()
    assert not (tmp_path / "grpc.sock").exists()


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "grpc.sock").write_text("left by a crash")
    running = Server(ServerConfig(data_dir=tmp_path, port=0, max_workers=2))
    running.start()
    try:
        assert version(running.port, []).startswith("v2.")
    finally:
        running.stop()


def test_a_data_dir_too_deep_for_a_unix_socket_uses_a_private_temp_dir(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    socket_place = InternalSocket(deep)
    assert len(os.fsencode(deep / "grpc.sock")) > MAX_UNIX_SOCKET_PATH
    assert len(os.fsencode(socket_place.path)) <= MAX_UNIX_SOCKET_PATH
    temp_dir = socket_place.path.parent
    socket_place.remove()
    assert not temp_dir.exists()
    running = Server(ServerConfig(data_dir=deep, port=0, max_workers=2))
    running.start()
    try:
        assert version(running.port, []).startswith("v2.")
    finally:
        running.stop()
