"""``ExportSnapshot`` / ``GetExportSnapshotState`` through the real server (raw gRPC: pymilvus
3.0's MilvusClient has no call for them).

An export copies every file of a snapshot and a manifest to a directory under the import root
(embedded) or a key prefix of the server's bucket (``--objects``); the job is polled to its end;
the manifest lists every file with its size, and the files are there with those sizes. Bad
names and targets get Milvus's code 1100 with a text that says what is wrong.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pyarrow.fs as pafs
import pytest
from pymilvus import MilvusClient
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready
from tests.services import S3Server

DIM = 4
ROWS = 120


class Rpc:
    def __init__(self, port: int, token: str = ROOT_TOKEN) -> None:
        self.port = port
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = milvus_pb2_grpc.MilvusServiceStub(self._channel)
        self.metadata = [("authorization", base64.b64encode(token.encode()).decode())]

    def export(
        self, target: str, name: str = "s", collection: str = "src"
    ) -> milvus_pb2.ExportSnapshotResponse:
        request = milvus_pb2.ExportSnapshotRequest(
            name=name, collection_name=collection, target_s3_path=target
        )
        return self.stub.ExportSnapshot(request, metadata=self.metadata)

    def state(self, job_id: int) -> milvus_pb2.GetExportSnapshotStateResponse:
        request = milvus_pb2.GetExportSnapshotStateRequest(job_id=job_id)
        return self.stub.GetExportSnapshotState(request, metadata=self.metadata)

    def wait(self, job_id: int) -> milvus_pb2.ExportSnapshotInfo:
        deadline = time.monotonic() + 60
        while True:
            response = self.state(job_id)
            assert response.status.code == common_pb2.Success, response.status.reason
            info = response.info
            if info.state in (milvus_pb2.ExportSnapshotCompleted, milvus_pb2.ExportSnapshotFailed):
                return info
            assert time.monotonic() < deadline, f"export job {job_id} never ended: {info}"
            time.sleep(0.05)

    def close(self) -> None:
        self._channel.close()


def _fill(client: MilvusClient) -> None:
    """Two flushed segments, an index, a partition and deletes: every kind of file a snapshot has."""
    client.create_collection("src", dimension=DIM)
    client.create_partition("src", "extra")
    rows = [{"id": i, "vector": [float(i), 1.0, 2.0, 3.0]} for i in range(ROWS)]
    client.insert("src", rows[:60])
    client.flush("src")
    client.insert("src", rows[60:], partition_name="extra")
    client.delete("src", ids=[1, 2, 3])
    client.flush("src")
    client.create_snapshot(snapshot_name="s", collection_name="src")


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[MilvusClient, Rpc, Path]]:
    root = tmp_path / "exports"
    port = free_port()
    process = start_server(
        tmp_path / "data", port, tmp_path / "server.log", extra=("--import-root", str(root))
    )
    wait_ready(process, tmp_path / "server.log")
    rpc = Rpc(port)
    try:
        yield MilvusClient(uri=f"http://127.0.0.1:{port}", token=ROOT_TOKEN), rpc, root
    finally:
        rpc.close()
        stop_server(process)


def _check_manifest(manifest: dict, info: milvus_pb2.ExportSnapshotInfo, sizes: dict[str, int]) -> None:
    """The manifest describes the collection and names exactly the files there, sizes matching."""
    assert manifest["snapshot_name"] == "s" and manifest["collection_name"] == "src"
    assert [f["name"] for f in manifest["schema"]["fields"]][:2] == ["id", "vector"]
    assert manifest["partitions"] == ["_default", "extra"]
    assert [i["field_name"] for i in manifest["indexes"]] == ["vector"]
    assert sum(s["num_rows"] for s in manifest["segments"]) == ROWS
    assert {s["partition"] for s in manifest["segments"]} == {"_default", "extra"}
    assert manifest["deletes"]["count"] == 3
    assert manifest["create_ts"] > 0
    listed = {f["path"]: f["size"] for f in manifest["files"]}
    named = {p for s in manifest["segments"] for p in s["columns"].values()}
    named |= {f["path"] for s in manifest["segments"] for f in s["index_files"].values()}
    named.add(manifest["deletes"]["path"])
    assert named == set(listed)
    assert sizes == {**listed, "manifest.json": sizes["manifest.json"]}
    assert info.total_files == len(listed) + 1 == info.copied_files
    assert info.total_bytes == sum(listed.values())


def test_an_export_copies_every_file_of_the_snapshot_and_a_manifest(
    embedded: tuple[MilvusClient, Rpc, Path],
) -> None:
    client, rpc, root = embedded
    _fill(client)
    client.insert("src", [{"id": 999, "vector": [0.0] * DIM}])  # after the snapshot: not exported
    client.flush("src")

    response = rpc.export("backups/first")
    assert response.status.code == common_pb2.Success, response.status.reason
    target = (root / "backups" / "first").resolve()
    assert response.snapshot_metadata_uri == str(target / "manifest.json")
    info = rpc.wait(response.job_id)
    assert info.state == milvus_pb2.ExportSnapshotCompleted, info.reason
    assert (info.progress, info.snapshot_name, info.collection_name) == (100, "s", "src")
    assert info.snapshot_metadata_uri == response.snapshot_metadata_uri

    manifest = json.loads((target / "manifest.json").read_text())
    sizes = {str(p.relative_to(target)): p.stat().st_size for p in target.rglob("*") if p.is_file()}
    _check_manifest(manifest, info, sizes)

    # The same target again: refused, the first export untouched.
    again = rpc.export(str(target))
    assert again.status.code == 1100
    assert "already holds an exported snapshot" in again.status.reason


@pytest.mark.parametrize(
    ("name", "target", "text"),
    [
        ("nope", "x", "snapshot not found[snapshot=nope]"),
        ("s", "", "target_s3_path is empty"),
        ("s", "../outside", "is outside the import root"),
        ("s", "/etc/sheafdb-export", "is outside the import root"),
        ("s", "s3://bucket/prefix", "needs object storage: this server runs without --objects"),
    ],
)
def test_bad_exports_are_refused_with_1100(
    embedded: tuple[MilvusClient, Rpc, Path], name: str, target: str, text: str
) -> None:
    client, rpc, root = embedded
    _fill(client)
    response = rpc.export(target, name=name)
    assert response.status.code == 1100
    assert text in response.status.reason
    assert response.job_id == 0
    assert not (root / "x").exists()


def test_an_unknown_export_job_is_1100(embedded: tuple[MilvusClient, Rpc, Path]) -> None:
    _, rpc, _ = embedded
    response = rpc.state(424242)
    assert response.status.code == 1100
    assert "export snapshot job not found[jobID=424242]" in response.status.reason


def test_export_privileges_are_milvus_names(embedded: tuple[MilvusClient, Rpc, Path]) -> None:
    client, rpc, _ = embedded
    _fill(client)
    client.create_user("exporter", "secret-1")
    client.create_role("export_role")
    client.grant_role("exporter", "export_role")
    user = Rpc(rpc.port, "exporter:secret-1")
    try:
        with pytest.raises(grpc.RpcError) as denied:  # as every refused privilege (test_access.py)
            user.export("by-user")
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "ExportSnapshot: permission deny to exporter" in str(denied.value.details())
        client.grant_privilege("export_role", "Collection", "ExportSnapshot", "src")
        response = user.export("by-user")
        assert response.status.code == common_pb2.Success, response.status.reason
        with pytest.raises(grpc.RpcError) as denied:  # the state is a global object's
            user.state(response.job_id)
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "ExportSnapshot: permission deny to exporter" in str(denied.value.details())
        client.grant_privilege("export_role", "Global", "ExportSnapshot", "*")
        assert user.wait(response.job_id).state == milvus_pb2.ExportSnapshotCompleted
    finally:
        user.close()


@pytest.mark.cluster
def test_an_export_to_a_key_prefix_of_the_servers_bucket(
    tmp_path: Path, postgres_database: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_server.credentials_env().items():
        monkeypatch.setenv(key, value)
    bucket = f"sheafdb-export-{uuid.uuid4().hex[:8]}"
    objects = s3_server.url(bucket, "deployment-1") + "&allow_bucket_creation=true"
    port = free_port()
    log_path = tmp_path / "server.log"
    process = start_server(
        tmp_path / "data", port, log_path, extra=("--catalog", postgres_database, "--objects", objects)
    )
    wait_ready(process, log_path)
    rpc = Rpc(port)
    try:
        _fill(MilvusClient(uri=f"http://127.0.0.1:{port}", token=ROOT_TOKEN))
        refused = [rpc.export(t).status for t in ("s3://elsewhere/x", "/tmp/x", "deployment-1/x")]
        assert [s.code for s in refused] == [1100, 1100, 1100]
        assert "writes only to bucket" in refused[0].reason
        assert "is a local path" in refused[1].reason
        assert "inside the server's own objects" in refused[2].reason

        response = rpc.export(f"s3://{bucket}/exports/one")
        assert response.status.code == common_pb2.Success, response.status.reason
        assert response.snapshot_metadata_uri == f"s3://{bucket}/exports/one/manifest.json"
        info = rpc.wait(response.job_id)
        assert info.state == milvus_pb2.ExportSnapshotCompleted, info.reason
    finally:
        rpc.close()
        assert stop_server(process) == 0
    s3 = pafs.S3FileSystem(
        endpoint_override=s3_server.endpoint,
        scheme="http",
        region="us-east-1",
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
    )
    base = f"{bucket}/exports/one"
    found = s3.get_file_info(pafs.FileSelector(base, recursive=True))
    sizes = {i.path.removeprefix(f"{base}/"): int(i.size) for i in found if i.type == pafs.FileType.File}
    with s3.open_input_stream(f"{base}/manifest.json") as f:
        manifest = json.loads(f.read())
    _check_manifest(manifest, info, sizes)
