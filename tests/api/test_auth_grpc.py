"""The gRPC interceptor on a real server with pymilvus's stubs."""

from __future__ import annotations

import base64

import grpc
import pytest
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from sheafdb.api.auth import AuthInterceptor
from sheafdb.engine.access import AccessControl

from .grpc_echo import start_echo_server


def _metadata(token: str | None) -> list[tuple[str, str]]:
    return [] if token is None else [("authorization", base64.b64encode(token.encode()).decode())]


@pytest.fixture
def access(tmp_path):
    control = AccessControl(tmp_path / "credentials.db", enabled=True)
    yield control
    control.close()


@pytest.fixture
def stub(access):
    server, port = start_echo_server("127.0.0.1:0", (AuthInterceptor(access),))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield milvus_pb2_grpc.MilvusServiceStub(channel)
    channel.close()
    server.stop(None)


def _code(call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_missing_and_wrong_credentials_are_unauthenticated(stub):
    request = milvus_pb2.GetVersionRequest()
    assert _code(lambda: stub.GetVersion(request, metadata=_metadata(None))) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "missing authorization in header",
    )
    assert _code(lambda: stub.GetVersion(request, metadata=[("authorization", "***not base64***")])) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "invalid token format",
    )
    code, details = _code(lambda: stub.GetVersion(request, metadata=_metadata("root:wrong")))
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert details == "auth check failure, please check username and password are correct"


def test_valid_login_reaches_the_servicer_with_its_user(stub):
    reply = stub.GetVersion(milvus_pb2.GetVersionRequest(), metadata=_metadata("root:Milvus"))
    assert reply.version == "echo:root"


def test_load_is_denied_without_the_privilege(stub, access):
    access.create_user("alice", "secret-1")
    access.create_role("reader")
    access.grant_role("alice", "reader")
    access.grant("reader", "Collection", "books", "CollectionReadOnly", "default", "root")
    request = milvus_pb2.LoadCollectionRequest(collection_name="books")
    code, details = _code(lambda: stub.LoadCollection(request, metadata=_metadata("alice:secret-1")))
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert details == "Load: permission deny to alice in the `default` database"
    access.grant("reader", "Collection", "books", "CollectionReadWrite", "default", "root")
    status = stub.LoadCollection(request, metadata=_metadata("alice:secret-1"))
    assert status.reason == "loaded books"


def test_every_call_is_checked_again_and_runs_as_its_own_user(stub, access):
    """The interceptor reuses its wrapped handler per (method, user, database): the privilege
    check and the caller's identity still belong to each call."""
    access.create_user("alice", "secret-1")
    access.create_role("loader")
    access.grant_role("alice", "loader")
    access.grant("loader", "Collection", "*", "Load", "*", "root")
    request = milvus_pb2.LoadCollectionRequest(collection_name="books")
    assert stub.LoadCollection(request, metadata=_metadata("alice:secret-1")).reason == "loaded books"
    access.revoke("loader", "Collection", "*", "Load", "*")
    code, _ = _code(lambda: stub.LoadCollection(request, metadata=_metadata("alice:secret-1")))
    assert code is grpc.StatusCode.PERMISSION_DENIED
    version = milvus_pb2.GetVersionRequest()
    for user, token in (("root", "root:Milvus"), ("alice", "alice:secret-1"), ("root", "root:Milvus")):
        assert stub.GetVersion(version, metadata=_metadata(token)).version == f"echo:{user}"


def test_database_comes_from_the_dbname_header(stub, access):
    access.create_user("alice", "secret-1")
    access.create_role("r")
    access.grant_role("alice", "r")
    access.grant("r", "Collection", "*", "Load", "analytics", "root")
    request = milvus_pb2.LoadCollectionRequest(collection_name="books")
    metadata = [*_metadata("alice:secret-1"), ("dbname", "analytics")]
    assert stub.LoadCollection(request, metadata=metadata).reason == "loaded books"
    code, _ = _code(lambda: stub.LoadCollection(request, metadata=_metadata("alice:secret-1")))
    assert code is grpc.StatusCode.PERMISSION_DENIED


def test_disabled_access_passes_everything(tmp_path):
    control = AccessControl(tmp_path / "c.db", enabled=False)
    server, port = start_echo_server("127.0.0.1:0", (AuthInterceptor(control),))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = milvus_pb2_grpc.MilvusServiceStub(channel).GetVersion(milvus_pb2.GetVersionRequest())
    server.stop(None)
    control.close()
    assert reply.version == "echo:None"


def test_select_user_naming_nobody_needs_the_privilege(stub, access):
    access.create_user("alice", "secret-1")
    alice = _metadata("alice:secret-1")
    # Naming herself passes the interceptor (the echo server then does not implement it) ...
    own = milvus_pb2.SelectUserRequest(user=milvus_pb2.UserEntity(name="alice"))
    assert _code(lambda: stub.SelectUser(own, metadata=alice))[0] is grpc.StatusCode.UNIMPLEMENTED
    # ... naming nobody would list every user and their roles: denied.
    everyone = milvus_pb2.SelectUserRequest(include_role_info=True)
    assert _code(lambda: stub.SelectUser(everyone, metadata=alice))[0] is grpc.StatusCode.PERMISSION_DENIED
