"""Access control across the cluster: a writer and a proxy with ``--auth``, query workers as Ray
actors (each on a state dir of its own), one PostgreSQL catalog holding the users. A user
created through the proxy (relayed to the writer) is authenticated and authorized by the
workers that answer its searches, and a changed password or a revoked privilege reaches them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymilvus import MilvusClient, MilvusException

from tests.cluster.conftest import kill_worker_actors
from tests.cluster.test_proxy_cluster import (
    SEGMENT_ROWS,
    Process,
    make_collection,
    nearest,
    serve,
    vectors_of,
    wait_loaded,
)
from tests.e2e.conftest import ROOT_TOKEN
from tests.services import S3Server

pytestmark = pytest.mark.cluster


@pytest.fixture
def proxy(tmp_path: Path, postgres_database: str, s3_server: S3Server, ray_cluster: Any) -> Iterator[Process]:
    import os

    objects = s3_server.url("sheafdb-store-tests", f"auth-{uuid.uuid4().hex}") + "&allow_bucket_creation=true"
    env = {**os.environ, **s3_server.credentials_env(), "PYTHONUNBUFFERED": "1"}
    flags = ["--cluster", ray_cluster.address, "--catalog", postgres_database, "--objects", objects, "--auth"]
    writer = serve(flags, "writer", tmp_path, env)
    try:
        front = serve(flags, "proxy", tmp_path, env)
        try:
            yield front
        finally:
            front.stop()
    finally:
        writer.stop()
        kill_worker_actors(ray_cluster.address)


def _client(proxy: Process, token: str) -> MilvusClient:
    return MilvusClient(uri=f"http://{proxy.address}", token=token, timeout=120)


def _refused(call: Any, code: int, message: str) -> None:
    """The worker's refusal, relayed by the proxy with Milvus's code (never 65535)."""
    with pytest.raises(MilvusException) as raised:
        call()
    assert raised.value.code == code and message in raised.value.message


def test_workers_serve_a_user_created_through_the_proxy_and_follow_its_changes(proxy: Process) -> None:
    admin = _client(proxy, ROOT_TOKEN)
    make_collection(admin, "c", 1)
    admin.load_collection("c")
    wait_loaded(admin, "c")
    admin.create_user("alice", "secret-1")
    admin.create_role("searcher")
    admin.grant_privilege("searcher", "Collection", "Search", "c")
    admin.grant_role("alice", "searcher")
    everything = vectors_of(0, SEGMENT_ROWS)
    queries = everything[[3, 9]]
    alice = _client(proxy, "alice:secret-1")
    assert [hits[0] for hits in nearest(alice, "c", queries)] == [3, 9]

    admin.update_password("alice", "secret-1", "secret-2")
    _refused(lambda: nearest(alice, "c", queries), 1400, "auth check failure")
    again = _client(proxy, "alice:secret-2")
    assert [hits[0] for hits in nearest(again, "c", queries)] == [3, 9]
    admin.revoke_privilege("searcher", "Collection", "Search", "c")
    _refused(lambda: nearest(again, "c", queries), 1401, "Search: permission deny to alice")
