"""`sheafdb serve --catalog postgresql://... --objects s3://...`: the real server on a real
PostgreSQL and a real S3 server (SeaweedFS), driven by pymilvus.

What is written before a restart is found after it with nothing of it in the data dir but the
read cache: the catalog and the log are in PostgreSQL, the segments in the bucket.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest
from pymilvus import MilvusClient

from tests.services import S3Server

from .conftest import ROOT_TOKEN, compact_and_wait, free_port, start_server, stop_server, wait_ready

pytestmark = pytest.mark.cluster

DIM = 8
ROWS = 300


def _serve(data_dir: Path, catalog: str, objects: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = start_server(data_dir, port, log_path, extra=("--catalog", catalog, "--objects", objects))
    wait_ready(process, log_path)
    return process, f"http://127.0.0.1:{port}"


def _refused(data_dir: Path, flags: tuple[str, ...], log_path: Path) -> str:
    """Start a server that must not start; returns its log."""
    process = start_server(data_dir, free_port(), log_path, extra=flags)
    try:
        assert process.wait(60) == 2
    finally:
        stop_server(process)
    return log_path.read_text()


def _wait_loaded(client: MilvusClient, name: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if str(client.get_load_state(name)["state"]) == "Loaded":
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} did not load: {client.get_load_state(name)}")


def test_a_server_on_postgres_and_s3_keeps_its_data_there(
    tmp_path: Path, postgres_database: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_server.credentials_env().items():
        monkeypatch.setenv(key, value)  # the server inherits them: credentials never go in the URL
    bucket, prefix = f"sheafdb-e2e-{uuid.uuid4().hex[:8]}", "deployment-1"
    objects = s3_server.url(bucket, prefix) + "&allow_bucket_creation=true"
    data_dir = tmp_path / "data"
    vectors = np.random.default_rng(7).random((ROWS, DIM), dtype=np.float32)

    process, uri = _serve(data_dir, postgres_database, objects, tmp_path / "first.log")
    try:
        client = MilvusClient(uri=uri, token=ROOT_TOKEN)
        client.create_collection("docs", dimension=DIM, metric_type="L2")
        rows = [{"id": i, "vector": vectors[i].tolist(), "title": f"t{i}"} for i in range(ROWS)]
        assert client.insert("docs", rows)["insert_count"] == ROWS
        client.flush("docs")
    finally:
        assert stop_server(process) == 0

    # Nothing of the catalog, the log or the segments is in the data dir; segments are in the bucket.
    assert not (data_dir / "catalog.db").exists() and not (data_dir / "collections").exists()
    assert not (data_dir / "wal").exists()
    s3 = pafs.S3FileSystem(
        endpoint_override=s3_server.endpoint,
        scheme="http",
        region="us-east-1",
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
    )
    stored = s3.get_file_info(pafs.FileSelector(f"{bucket}/{prefix}/collections", recursive=True))
    assert any(info.path.endswith("/vector.arrow") for info in stored)
    # A cold cache: what the next start loads comes from S3.
    shutil.rmtree(data_dir / "object-cache")
    gets_before = s3_server.get_requests(bucket)

    process, uri = _serve(data_dir, postgres_database, objects, tmp_path / "second.log")
    try:
        client = MilvusClient(uri=uri, token=ROOT_TOKEN)
        assert client.list_collections() == ["docs"]
        _wait_loaded(client, "docs")  # loaded again after the restart, as before it
        client.release_collection("docs")
        client.load_collection("docs")
        _wait_loaded(client, "docs")
        assert s3_server.get_requests(bucket) > gets_before
        hits = client.search("docs", [vectors[42].tolist()], limit=3, output_fields=["title"])[0]
        assert hits[0]["id"] == 42 and hits[0]["entity"]["title"] == "t42"
        assert client.query("docs", filter="", output_fields=["count(*)"])[0]["count(*)"] == ROWS
        # And it still takes writes, sealed into the bucket as well.
        client.insert("docs", [{"id": ROWS, "vector": vectors[0].tolist(), "title": "new"}])
        client.flush("docs")
        assert client.get("docs", ids=[ROWS], output_fields=["title"])[0]["title"] == "new"
    finally:
        assert stop_server(process) == 0

    # Another data dir (another machine) on this catalog and bucket serves the same data: the
    # log is in PostgreSQL too, the data dir is only a cache.
    process, uri = _serve(tmp_path / "elsewhere", postgres_database, objects, tmp_path / "third.log")
    try:
        client = MilvusClient(uri=uri, token=ROOT_TOKEN)
        client.insert("docs", [{"id": ROWS + 1, "vector": vectors[1].tolist(), "title": "newer"}])
        _wait_loaded(client, "docs")
        got = client.query("docs", filter="", output_fields=["count(*)"], consistency_level="Strong")
        assert got[0]["count(*)"] == ROWS + 2
    finally:
        assert stop_server(process) == 0
    # Another catalog (here the embedded one) on this prefix: it would delete the data as orphans.
    log = _refused(tmp_path / "other", ("--objects", objects), tmp_path / "y.log")
    assert "the object store holds the data of another catalog" in log
    assert any(
        info.path.endswith("/vector.arrow")
        for info in s3.get_file_info(pafs.FileSelector(f"{bucket}/{prefix}/collections", recursive=True))
    )


def test_snapshots_on_postgres_and_s3_are_server_side_copies_that_outlive_compaction(
    tmp_path: Path, postgres_database: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_server.credentials_env().items():
        monkeypatch.setenv(key, value)
    bucket, prefix = f"sheafdb-snap-{uuid.uuid4().hex[:8]}", "deployment-1"
    objects = s3_server.url(bucket, prefix) + "&allow_bucket_creation=true"
    data_dir = tmp_path / "data"
    vectors = np.random.default_rng(3).random((ROWS, DIM), dtype=np.float32)
    rows = [{"id": i, "vector": vectors[i].tolist()} for i in range(ROWS)]

    process, uri = _serve(data_dir, postgres_database, objects, tmp_path / "first.log")
    try:
        client = MilvusClient(uri=uri, token=ROOT_TOKEN)
        client.create_collection("docs", dimension=DIM, metric_type="L2")
        client.insert("docs", rows[:200])
        client.flush("docs")
        client.insert("docs", rows[200:])
        client.flush("docs")
        client.create_snapshot(snapshot_name="s", collection_name="docs")
        client.delete("docs", ids=list(range(50)))
        client.flush("docs")
        compact_and_wait(client, "docs")
    finally:
        assert stop_server(process) == 0

    process, uri = _serve(data_dir, postgres_database, objects, tmp_path / "second.log")
    try:
        client = MilvusClient(uri=uri, token=ROOT_TOKEN)
        job_id = client.restore_snapshot(
            snapshot_name="s", source_collection_name="docs", target_collection_name="back"
        )
        deadline = time.monotonic() + 60
        while (state := client.get_restore_snapshot_state(job_id=job_id)).state != "RestoreSnapshotCompleted":
            assert state.state != "RestoreSnapshotFailed", state.reason
            assert time.monotonic() < deadline
            time.sleep(0.1)
        client.load_collection("back")
        _wait_loaded(client, "back")
        assert client.query("back", filter="", output_fields=["count(*)"])[0]["count(*)"] == ROWS
        client.drop_snapshot(snapshot_name="s", collection_name="docs")
    finally:
        assert stop_server(process) == 0
    s3 = pafs.S3FileSystem(
        endpoint_override=s3_server.endpoint,
        scheme="http",
        region="us-east-1",
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
    )
    left = s3.get_file_info(
        pafs.FileSelector(f"{bucket}/{prefix}/snapshots", allow_not_found=True, recursive=True)
    )
    assert [i.path for i in left if i.type == pafs.FileType.File] == []
