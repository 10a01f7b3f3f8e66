"""A server on PostgreSQL and S3 rides out a restart of PostgreSQL, driven by pymilvus.

While the database is down, calls that need it fail with Milvus's "service unavailable"
(code 2, which a client may retry), never an internal error; once it is back the same server
process writes and reads again, on new connections, with every write acknowledged before the
outage still there. The lease ttl is long here: an outage shorter than it keeps the writer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready
from tests.services import S3Server, halt_service, resume_service, start_service, stop_service

pytestmark = pytest.mark.cluster

DIM = 8
SERVICE_UNAVAILABLE = 2


@pytest.fixture
def postgres_state() -> Iterator[Path]:
    """A PostgreSQL server of this test's own (it is halted, which the session's must not be)."""
    state_dir = start_service("postgres")
    try:
        yield state_dir
    finally:
        stop_service("postgres", state_dir)


def _rows(ids: range) -> list[dict[str, object]]:
    vectors = np.random.default_rng(ids.start).random((len(ids), DIM), dtype=np.float32)
    return [{"id": i, "vector": vectors[k].tolist()} for k, i in enumerate(ids)]


def _ids(client: MilvusClient, name: str) -> list[int]:
    rows = client.query(name, filter="id >= 0", output_fields=["id"], consistency_level="Strong", limit=1000)
    return sorted(int(r["id"]) for r in rows)


def _unavailable(call: object, *args: object, **kwargs: object) -> MilvusException:
    with pytest.raises(MilvusException) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    error = caught.value
    assert error.code == SERVICE_UNAVAILABLE, error
    assert "psycopg" not in error.message and "Error" not in error.message, error.message
    return error


def test_a_postgres_restart_fails_calls_meanwhile_and_then_serves_again(
    tmp_path: Path, postgres_state: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_server.credentials_env().items():
        monkeypatch.setenv(key, value)  # the server inherits them
    catalog = (postgres_state / "url").read_text().strip()
    objects = (
        s3_server.url("sheafdb-store-tests", f"outage-{uuid.uuid4().hex}") + "&allow_bucket_creation=true"
    )
    port, log_path = free_port(), tmp_path / "server.log"
    flags = ("--catalog", catalog, "--objects", objects, "--lease-ttl", "300")
    process = start_server(tmp_path / "data", port, log_path, extra=flags)
    try:
        wait_ready(process, log_path)
        client = MilvusClient(uri=f"http://127.0.0.1:{port}", token=ROOT_TOKEN, timeout=60)
        client.create_collection("docs", dimension=DIM, metric_type="L2")
        client.insert("docs", _rows(range(0, 40)))
        client.flush("docs")  # some rows sealed in S3, the rest only in the log
        client.insert("docs", _rows(range(40, 60)))
        client.create_user("alice", "secret-1")
        assert _ids(client, "docs") == list(range(60))

        halt_service("postgres", postgres_state)
        _unavailable(client.insert, "docs", _rows(range(1000, 1010)))
        _unavailable(client.create_collection, "other", dimension=DIM)
        _unavailable(client.create_user, "bob", "secret-2")
        _unavailable(client.insert, "docs", _rows(range(1010, 1020)))  # still down: still code 2
        assert _ids(client, "docs") == list(range(60))  # loaded data is read as before
        # A user not yet verified cannot be checked now: code 2 as well, over gRPC and REST.
        _unavailable(MilvusClient, uri=f"http://127.0.0.1:{port}", token="alice:secret-1")
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v2/vectordb/collections/list",
            json={},
            headers={"Authorization": "Bearer alice:secret-1"},
        ).json()
        assert answer["code"] == SERVICE_UNAVAILABLE and "meta store" in answer["message"], answer

        resume_service("postgres", postgres_state)
        # The same process, with no restart: writes, catalog changes and user changes work again.
        assert client.insert("docs", _rows(range(60, 80)))["insert_count"] == 20
        client.create_collection("other", dimension=DIM, metric_type="L2")
        client.create_user("bob", "secret-2")
        assert sorted(client.list_users()) == ["alice", "bob", "root"]
        assert sorted(client.list_collections()) == ["docs", "other"]
        client.flush("docs")
        # Nothing acknowledged was lost; what failed during the outage never landed.
        assert _ids(client, "docs") == list(range(80))
        MilvusClient(uri=f"http://127.0.0.1:{port}", token="alice:secret-1").list_collections()
        assert process.poll() is None
    finally:
        assert stop_server(process) == 0
    # And a restart finds exactly that.
    process = start_server(tmp_path / "data", port, log_path.with_suffix(".again"), extra=flags)
    try:
        wait_ready(process, log_path.with_suffix(".again"))
        client = MilvusClient(uri=f"http://127.0.0.1:{port}", token=ROOT_TOKEN, timeout=60)
        client.load_collection("docs")
        assert _ids(client, "docs") == list(range(80))
    finally:
        assert stop_server(process) == 0
