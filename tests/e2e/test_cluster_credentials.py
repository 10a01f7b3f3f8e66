"""Users, roles and grants are the cluster's, not one process's: with a PostgreSQL catalog the
credential store lives in that database. Real processes, driven by pymilvus with ``--auth``:
a user created through a writer logs in, with its grants, to the standby that took over from it
(its own data dir, another machine's); and ``--workers 2`` followers (read-only on PostgreSQL)
serve a user created through the writer and forget its old password once changed."""

from __future__ import annotations

import signal
from collections.abc import Callable

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException

from tests.e2e.conftest import wait_ready
from tests.e2e.test_writer_failover import (  # noqa: F401 - the fixtures, shared
    Node,
    _create,
    _rows,
    _serving,
    _standby,
    backends,
    nodes,
)

pytestmark = pytest.mark.cluster

PASSWORD = "secret-1"


def _login(node: Node, user: str, password: str) -> MilvusClient:
    return MilvusClient(
        uri=f"http://127.0.0.1:{node.port}",
        token=f"{user}:{password}",
        dedicated=True,
        grpc_options={"grpc.use_local_subchannel_pool": 1},
        timeout=30,
    )


def denied(call: Callable[[], object]) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "Search: permission deny" in str(raised.value.details())


def _search(client: MilvusClient) -> int:
    hits = client.search("c", data=[_rows(range(0, 60))[42]["v"]], limit=1, consistency_level="Strong")
    return int(hits[0][0]["id"])


def test_a_user_created_through_the_writer_logs_in_to_the_standby_that_took_over(nodes) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    first: Node = nodes("first")
    wait_ready(first.process, first.log_path)
    second = _standby(nodes, "second")
    admin = first.client()
    _create(admin, "c")
    admin.insert("c", _rows(range(0, 60)))
    admin.create_user("alice", PASSWORD)
    admin.create_user("bob", PASSWORD)
    admin.create_role("searcher")
    admin.grant_privilege("searcher", "Collection", "Search", "c")
    admin.grant_role("alice", "searcher")
    assert _search(_login(first, "alice", PASSWORD)) == 42

    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    _serving(second)
    assert _search(_login(second, "alice", PASSWORD)) == 42
    denied(lambda: _search(_login(second, "bob", PASSWORD)))  # known there, granted nothing
    with pytest.raises(MilvusException):
        _login(second, "alice", "wrong-password")
    # The new writer changes them as the old one did.
    new_admin = second.client()
    assert set(new_admin.list_users()) == {"root", "alice", "bob"}
    assert new_admin.describe_user("alice")["roles"] == ("searcher",)
    new_admin.grant_role("bob", "searcher")
    assert _search(_login(second, "bob", PASSWORD)) == 42


def test_workers_on_postgres_serve_the_writers_users_and_follow_their_changes(nodes) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    served: Node = nodes("primary", "--workers", "2")
    wait_ready(served.process, served.log_path)
    admin = served.client()
    _create(admin, "c")
    admin.insert("c", _rows(range(0, 60)))
    admin.flush("c")
    admin.create_user("alice", PASSWORD)
    admin.create_role("searcher")
    admin.grant_privilege("searcher", "Collection", "Search", "c")
    admin.grant_role("alice", "searcher")
    # Each client is a connection of its own: the kernel spreads them over the workers, which
    # answer searches (they would not know alice from their data dir's file).
    old = [_login(served, "alice", PASSWORD) for _ in range(8)]
    assert all(_search(client) == 42 for client in old)
    admin.update_password("alice", PASSWORD, "secret-2")
    for client in old:
        with pytest.raises(grpc.RpcError) as raised:
            _search(client)
        assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert all(_search(_login(served, "alice", "secret-2")) == 42 for _ in range(8))
    admin.revoke_privilege("searcher", "Collection", "Search", "c")
    for _ in range(8):
        denied(lambda: _search(_login(served, "alice", "secret-2")))
