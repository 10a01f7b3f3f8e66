"""``serve --workers 2`` with the shared change counter (storage/change_counter.py): the query
workers skip their checks while the primary announces nothing, and still read every
acknowledged change (writes, deletes, upserts, seals, DDL, credentials), also after the
primary was killed and started again. Real server, real pymilvus clients."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import grpc
import psutil
import pytest
from pymilvus import MilvusClient

from sheafdb.storage.change_counter import ChangeCounter, Slot
from tests.e2e.conftest import stop_server
from tests.e2e.test_workers import WORKERS, Served, _create, _rows, serve


def _ids(
    client: MilvusClient, name: str, ids: list[int], partitions: list[str] | None = None
) -> dict[int, str]:
    got = client.query(
        name,
        filter=f"id in {ids}",
        output_fields=["tag"],
        partition_names=partitions,
        consistency_level="Strong",
    )
    return {int(row["id"]): str(row["tag"]) for row in got}


def _readers_on_every_worker(served: Served, count: int) -> list[MilvusClient]:
    readers = [served.client() for _ in range(count)]
    for reader in readers:
        reader.list_collections()
    held = served.connections_held()
    assert held[served.process.pid] == 0 and all(held[w.pid] > 0 for w in served.workers()), held
    return readers


def test_every_acknowledged_change_is_read_on_a_worker(tmp_path: Path) -> None:
    served, process = serve(tmp_path, WORKERS)
    try:
        writer = served.client()
        readers = _readers_on_every_worker(served, 2 * WORKERS)
        _create(writer, "rounds")
        expected: dict[int, str] = {}
        for i in range(160):
            reader = readers[i % len(readers)]
            writer.insert("rounds", _rows(range(i, i + 1), seed=i))
            expected[i] = f"t{i % 3}"
            if i % 4 == 3:  # an upsert of an earlier row
                row = _rows(range(i - 2, i - 1), seed=i)[0] | {"tag": f"u{i}"}
                writer.upsert("rounds", [row])
                expected[i - 2] = f"u{i}"
            if i % 5 == 4:
                writer.delete("rounds", ids=[i - 1])
                expected.pop(i - 1, None)
            if i % 40 == 39:  # a seal: the catalog changes and the log is trimmed
                writer.flush("rounds")
            window = list(range(max(0, i - 6), i + 1))
            assert _ids(reader, "rounds", window) == {k: expected[k] for k in window if k in expected}
            if i % 50 == 25:  # DDL: a new partition, written to and read at once
                writer.create_partition("rounds", f"p{i}")
                writer.insert("rounds", _rows(range(10_000 + i, 10_001 + i), seed=i), partition_name=f"p{i}")
                assert _ids(reader, "rounds", [10_000 + i], [f"p{i}"]) == {10_000 + i: f"t{(10_000 + i) % 3}"}
                writer.delete("rounds", ids=[10_000 + i])
        count = readers[0].query("rounds", output_fields=["count(*)"], consistency_level="Strong")
        assert count[0]["count(*)"] == len(expected)
    finally:
        stop_server(process)  # type: ignore[arg-type]


def test_a_revoked_privilege_is_refused_on_a_worker_at_once(tmp_path: Path) -> None:
    served, process = serve(tmp_path, WORKERS)
    try:
        root = served.client()
        _create(root, "guarded")
        root.insert("guarded", _rows(range(5)))
        root.create_user("ann", "Secret-123")
        root.create_role("readers")
        root.grant_role("ann", "readers")
        users = [
            MilvusClient(uri=served.uri, token="ann:Secret-123", dedicated=True,
                         grpc_options={"grpc.use_local_subchannel_pool": 1})
            for _ in range(2 * WORKERS)
        ]  # fmt: skip
        for user in users:
            user.list_collections()
        held = served.connections_held()
        assert all(held[w.pid] > 0 for w in served.workers()), held
        for round_ in range(4):
            root.grant_privilege("readers", "Collection", "Query", "guarded")
            for user in users:
                assert set(_ids(user, "guarded", [0, 1])) == {0, 1}
            root.revoke_privilege("readers", "Collection", "Query", "guarded")
            for user in users:
                with pytest.raises(grpc.RpcError) as refused:
                    _ids(user, "guarded", [0])
                assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED, round_  # type: ignore[attr-defined]
    finally:
        stop_server(process)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_restarted_primary_is_followed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    served, process = serve(tmp_path, WORKERS)
    try:
        writer = served.client()
        _create(writer, "again")
        writer.insert("again", _rows(range(20)))
        assert len(_ids(served.client(), "again", list(range(20)))) == 20
        before = ChangeCounter.follow(data_dir, Slot.DATA)
        seen = before.value()
        workers = served.workers()
        os.kill(served.process.pid, signal.SIGKILL)  # mid-life: nothing is stopped in order
        process.wait()  # type: ignore[attr-defined]
        psutil.wait_procs(workers, timeout=10)  # they end with their handoff sockets
    finally:
        stop_server(process)  # type: ignore[arg-type]
    served, process = serve(tmp_path, WORKERS)
    try:
        # The new primary moved the counter past every value read before, in the same file.
        assert before.value() > seen
        before.close()
        writer = served.client()
        readers = _readers_on_every_worker(served, 2 * WORKERS)
        assert len(_ids(readers[0], "again", list(range(20)))) == 20
        for i in range(20, 80):
            writer.insert("again", _rows(range(i, i + 1), seed=i))
            reader = readers[i % len(readers)]
            assert set(_ids(reader, "again", [i - 1, i])) == {i - 1, i}
    finally:
        stop_server(process)  # type: ignore[arg-type]
