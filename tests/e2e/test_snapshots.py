"""Collection snapshots through the real server and pymilvus 3.0's MilvusClient.

A snapshot holds the collection's flushed data at one moment; what is written, deleted,
upserted and compacted afterwards changes nothing in it, across a restart; restoring it makes
a new collection with exactly its rows; dropping it frees its files. Errors carry Milvus's code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException

from tests.e2e.conftest import (
    ROOT_TOKEN,
    compact_and_wait,
    free_port,
    start_server,
    stop_server,
    wait_ready,
)

DIM = 4


def _rows(ids: range, offset: float = 0.0) -> list[dict[str, object]]:
    return [{"id": i, "vector": [i + offset, 1.0, 2.0, 3.0], "tag": f"t{i}"} for i in ids]


def _wait_restored(client: MilvusClient, job_id: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        state = client.get_restore_snapshot_state(job_id=job_id)
        if state.state in ("RestoreSnapshotCompleted", "RestoreSnapshotFailed"):
            break
        assert time.monotonic() < deadline, f"restore job {job_id} never ended: {state}"
        time.sleep(0.05)
    assert state.state == "RestoreSnapshotCompleted", state.reason
    assert state.progress == 100


def _contents(client: MilvusClient, collection: str) -> dict[int, float]:
    client.load_collection(collection)
    rows = client.query(collection, filter="id >= 0", output_fields=["vector"], limit=16384)
    return {r["id"]: r["vector"][0] for r in rows}


class Server:
    def __init__(self, root: Path) -> None:
        self.data_dir = root / "data"
        self.log_path = root / "server.log"
        self.port = free_port()
        self.process = start_server(self.data_dir, self.port, self.log_path)
        wait_ready(self.process, self.log_path)

    def client(self) -> MilvusClient:
        return MilvusClient(uri=f"http://127.0.0.1:{self.port}", token=ROOT_TOKEN)

    def restart(self) -> None:
        stop_server(self.process)
        self.process = start_server(self.data_dir, self.port, self.log_path)
        wait_ready(self.process, self.log_path)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path)
    yield server
    stop_server(server.process)


def _snapshot_files(data_dir: Path) -> list[Path]:
    root = data_dir / "snapshots"
    return [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []


def test_restore_has_exactly_the_snapshot_rows_after_writes_compaction_and_restart(
    own_server: Server,
) -> None:
    client = own_server.client()
    client.create_collection("src", dimension=DIM)
    client.insert("src", _rows(range(100)))
    client.delete("src", ids=list(range(10)))
    client.flush("src")
    client.insert("src", _rows(range(100, 110)))  # not flushed: not in the snapshot (as Milvus)
    client.create_snapshot(snapshot_name="before", collection_name="src", description="first")

    # The snapshot's files are second names of the collection's: no byte was copied.
    files = _snapshot_files(own_server.data_dir)
    assert files and all(os.stat(f).st_nlink >= 2 for f in files if f.name != "deletes.arrow")

    # Everything after the snapshot: more rows, deletes, an upsert, a flush, a compaction.
    client.insert("src", _rows(range(200, 250)))
    client.delete("src", ids=list(range(10, 20)))
    client.upsert("src", _rows(range(20, 21), offset=0.5))
    client.flush("src")
    compact_and_wait(client, "src")

    own_server.restart()
    client = own_server.client()
    assert client.list_snapshots(collection_name="src") == ["before"]
    info = client.describe_snapshot(snapshot_name="before", collection_name="src")
    assert (info.name, info.description, info.collection_name) == ("before", "first", "src")
    assert info.partition_names == ["_default"]
    assert abs(info.create_ts - time.time() * 1000) < 24 * 3600 * 1000  # milliseconds

    job_id = client.restore_snapshot(
        snapshot_name="before", source_collection_name="src", target_collection_name="back"
    )
    _wait_restored(client, job_id)
    assert [j.job_id for j in client.list_restore_snapshot_jobs(collection_name="back")] == [job_id]

    restored = _contents(client, "back")
    assert sorted(restored) == list(range(10, 100))
    assert restored[20] == 20.0  # the old version: the upsert came later
    assert (
        client.describe_index("back", "vector")["index_type"]
        == client.describe_index("src", "vector")["index_type"]
    )
    source = _contents(client, "src")
    assert len(source) == 90 + 10 + 50 - 10 and source[20] == 20.5

    # Dropping the snapshot frees its files; the restored collection keeps its own names.
    client.drop_snapshot(snapshot_name="before", collection_name="src")
    assert _snapshot_files(own_server.data_dir) == []
    assert client.list_snapshots(collection_name="src") == []
    client.release_collection("back")
    assert sorted(_contents(client, "back")) == list(range(10, 100))
    own_server.restart()
    client = own_server.client()
    assert sorted(_contents(client, "back")) == list(range(10, 100))


def test_partitions_and_their_deletes_survive_the_restore(client: MilvusClient) -> None:
    client.create_collection("snap_parts", dimension=DIM)
    client.create_partition("snap_parts", "p1")
    client.insert("snap_parts", _rows(range(50)), partition_name="p1")
    client.insert("snap_parts", _rows(range(50, 80)))
    client.delete("snap_parts", ids=[1, 2, 3], partition_name="p1")
    client.delete("snap_parts", ids=[60])
    client.flush("snap_parts")
    client.create_snapshot(snapshot_name="parts", collection_name="snap_parts")
    job_id = client.restore_snapshot(
        snapshot_name="parts", source_collection_name="snap_parts", target_collection_name="snap_parts_back"
    )
    _wait_restored(client, job_id)
    assert set(client.list_partitions("snap_parts_back")) == {"_default", "p1"}
    client.load_collection("snap_parts_back")
    in_p1 = client.query("snap_parts_back", filter="id >= 0", partition_names=["p1"], limit=1000)
    assert sorted(r["id"] for r in in_p1) == [i for i in range(50) if i not in (1, 2, 3)]
    everything = _contents(client, "snap_parts_back")
    assert len(everything) == 80 - 3 - 1 and 60 not in everything


def test_errors_carry_milvus_codes(client: MilvusClient) -> None:
    client.create_collection("snap_err", dimension=DIM)
    client.create_snapshot(snapshot_name="s", collection_name="snap_err")

    def error(call: object, **kwargs: object) -> MilvusException:
        with pytest.raises(MilvusException) as caught:
            call(**kwargs)  # type: ignore[operator]
        return caught.value

    e = error(client.describe_snapshot, snapshot_name="nope", collection_name="snap_err")
    assert (e.code, e.message) == (1100, "snapshot not found[snapshot=nope]: invalid parameter")
    e = error(client.create_snapshot, snapshot_name="s", collection_name="snap_err")
    assert (e.code, e.message) == (1100, "snapshot already exists[snapshot=s]: invalid parameter")
    e = error(client.create_snapshot, snapshot_name="s", collection_name="no_such_collection")
    assert e.code == 100
    e = error(client.create_snapshot, snapshot_name="1s", collection_name="snap_err")
    assert e.code == 1100
    assert "the first character of a snapshot name must be an underscore or letter" in e.message
    e = error(
        client.restore_snapshot,
        snapshot_name="s",
        source_collection_name="snap_err",
        target_collection_name="snap_err",
    )
    assert e.code == 1100 and "already exists" in e.message
    e = error(client.get_restore_snapshot_state, job_id=123456789)
    assert e.code == 1100 and "restore snapshot job not found" in e.message

    e = error(client.pin_snapshot_data, snapshot_name="s", collection_name="snap_err", ttl_seconds=2**62)
    assert e.code == 1100 and "ttl_seconds must be between 0 and" in e.message
    pin_id = client.pin_snapshot_data(snapshot_name="s", collection_name="snap_err", ttl_seconds=600)
    e = error(client.drop_snapshot, snapshot_name="s", collection_name="snap_err")
    assert e.code == 1100 and "pinned" in e.message
    client.unpin_snapshot_data(pin_id=pin_id)
    e = error(client.unpin_snapshot_data, pin_id=pin_id)
    assert e.code == 1100
    client.drop_snapshot(snapshot_name="s", collection_name="snap_err")
    assert client.list_snapshots(collection_name="snap_err") == []


def test_snapshot_privileges_are_milvus_names(client: MilvusClient, server_uri: str) -> None:
    client.create_collection("snap_rbac", dimension=DIM)
    client.create_user("snap_user", "secret-1")
    client.create_role("snap_role")
    client.grant_role("snap_user", "snap_role")
    client.grant_privilege("snap_role", "Collection", "CreateSnapshot", "snap_rbac")
    client.grant_privilege("snap_role", "Collection", "ListSnapshots", "snap_rbac")
    user = MilvusClient(uri=server_uri, token="snap_user:secret-1")
    user.create_snapshot(snapshot_name="mine", collection_name="snap_rbac")
    assert user.list_snapshots(collection_name="snap_rbac") == ["mine"]
    with pytest.raises(grpc.RpcError) as denied:  # as every refused privilege (test_access.py)
        user.drop_snapshot(snapshot_name="mine", collection_name="snap_rbac")
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "DropSnapshot: permission deny to snap_user" in str(denied.value.details())
    client.drop_snapshot(snapshot_name="mine", collection_name="snap_rbac")
