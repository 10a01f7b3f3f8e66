"""``sheafdb serve --workers 2`` against the real server and pymilvus: query worker processes
serve reads with Strong consistency, follow seals, compactions, releases and drops, are
started again when killed, and share the loaded data's pages instead of copying them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from tests.e2e.conftest import ROOT_TOKEN, compact_and_wait, free_port, start_server, stop_server, wait_ready

DIM = 16
WORKERS = 2


class Served:
    def __init__(self, process: psutil.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.uri = f"http://127.0.0.1:{port}"

    def client(self) -> MilvusClient:
        """A client on its own connection (pymilvus shares one per address otherwise, and grpc
        one per target and options unless the channel keeps its own subchannels)."""
        return MilvusClient(
            uri=self.uri,
            token=ROOT_TOKEN,
            dedicated=True,
            grpc_options={"grpc.use_local_subchannel_pool": 1},
        )

    def workers(self) -> list[psutil.Process]:
        """The live query worker processes (a killed one not yet reaped is left out)."""
        found = []
        for child in self.process.children():
            try:
                if "sheafdb.api.query_worker_entry" in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.Error:
                continue
        return found

    def connections_held(self) -> dict[int, int]:
        """Established connections on the public port, by the pid holding them."""
        held: dict[int, int] = {}
        for process in [self.process, *self.workers()]:
            count = sum(
                1
                for c in process.net_connections(kind="tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port
            )
            held[process.pid] = count
        return held


def serve(root: Path, workers: int) -> tuple[Served, object]:
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "server.log"
    process = start_server(root / "data", port, log_path, extra=("--workers", str(workers)))
    wait_ready(process, log_path)
    return Served(psutil.Process(process.pid), port), process


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served, process = serve(tmp_path_factory.mktemp("workers"), WORKERS)
    yield served
    stop_server(process)  # type: ignore[arg-type]


def _create(client: MilvusClient, name: str) -> None:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index("v", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
    client.create_collection(name, schema=schema, index_params=index)


def _rows(ids: range, seed: int = 0) -> list[dict[str, object]]:
    vectors = np.random.default_rng(seed).random((len(ids), DIM), dtype=np.float32)
    return [{"id": i, "tag": f"t{i % 3}", "v": vectors[k].tolist()} for k, i in enumerate(ids)]


def _count(client: MilvusClient, name: str) -> int:
    return int(client.query(name, output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"])


def test_workers_hold_the_connections(served: Served) -> None:
    readers = [served.client() for _ in range(4)]
    for reader in readers:
        reader.list_collections()
    held = served.connections_held()
    assert len(served.workers()) == WORKERS
    assert held[served.process.pid] == 0, held  # the primary kept none of them
    assert sum(held.values()) >= len(readers)
    assert all(held[w.pid] > 0 for w in served.workers()), held  # handed out in turn
    for reader in readers:
        reader.close()


def test_an_acknowledged_write_is_read_through_another_connection(served: Served) -> None:
    writer, readers = served.client(), [served.client() for _ in range(WORKERS)]
    _create(writer, "strong")
    for i in range(150):
        writer.insert("strong", _rows(range(i, i + 1), seed=i))
        reader = readers[i % len(readers)]
        got = reader.query("strong", filter=f"id == {i}", output_fields=["tag"], consistency_level="Strong")
        assert [(r["id"], r["tag"]) for r in got] == [(i, f"t{i % 3}")]
        if i % 10 == 0:
            writer.delete("strong", ids=[i])
            assert reader.get("strong", ids=[i]) == []
        if i % 50 == 49:
            writer.flush("strong")  # a seal (and the log trimmed) between reads
    assert _count(readers[0], "strong") == 150 - 15
    hits = readers[1].search("strong", data=[_rows(range(7, 8), seed=7)[0]["v"]], limit=1)
    assert hits[0][0]["id"] == 7
    writer.drop_collection("strong")


def test_seal_compaction_release_and_drop_are_followed(served: Served) -> None:
    writer, reader = served.client(), served.client()
    _create(writer, "follow")
    for start in range(0, 400, 100):
        writer.insert("follow", _rows(range(start, start + 100), seed=start))
        writer.flush("follow")
        assert _count(reader, "follow") == start + 100
    compact_and_wait(writer, "follow")
    assert _count(reader, "follow") == 400
    assert reader.get("follow", ids=[399])[0]["id"] == 399
    writer.release_collection("follow")
    with pytest.raises(MilvusException) as released:
        _count(reader, "follow")
    assert released.value.code == 101
    writer.load_collection("follow")
    assert _count(reader, "follow") == 400
    writer.drop_collection("follow")
    with pytest.raises(MilvusException) as dropped:
        _count(reader, "follow")
    assert dropped.value.code == 100


@pytest.mark.slow
def test_a_killed_worker_is_started_again_and_serves(served: Served) -> None:
    writer = served.client()
    _create(writer, "restart")
    writer.insert("restart", _rows(range(50)))
    killed = served.workers()
    for worker in killed:
        os.kill(worker.pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while {w.pid for w in served.workers()} & {w.pid for w in killed} or len(served.workers()) < WORKERS:
        assert time.monotonic() < deadline, "the killed workers were not started again"
        time.sleep(0.1)
    fresh = [w.pid for w in served.workers()]
    # While the new ones start, connections go to the primary, which serves everything.
    meanwhile = served.client()
    assert _count(meanwhile, "restart") == 50
    # Started is not yet ready: clients keep landing on the primary until the workers say so.
    deadline = time.monotonic() + 120
    while True:
        reader = served.client()
        reader.list_collections()
        held = served.connections_held()
        if any(held.get(pid, 0) for pid in fresh):
            break
        reader.close()
        assert time.monotonic() < deadline, "no connection reached a restarted worker"
        time.sleep(0.2)
    writer.insert("restart", _rows(range(50, 60)))
    assert _count(reader, "restart") == 60
    writer.drop_collection("restart")


def _pss(process: psutil.Process) -> int:
    return int(process.memory_full_info().pss)


def _loaded_pss(root: Path, workers: int, rows: int) -> tuple[int, int]:
    """The server's proportional resident memory (all its processes), before and after a
    collection of ``rows`` x 128-d vectors is loaded and read through every worker."""
    served, process = serve(root, workers)
    try:
        writer = served.client()
        schema = MilvusClient.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=128)
        writer.create_collection("mem", schema=schema)
        vectors = np.random.default_rng(1).random((rows, 128), dtype=np.float32)
        for start in range(0, rows, 10_000):
            batch = [{"id": start + k, "v": v} for k, v in enumerate(vectors[start : start + 10_000])]
            writer.insert("mem", batch)
        writer.flush("mem")
        index = writer.prepare_index_params()
        index.add_index("v", index_type="FLAT", metric_type="L2")
        writer.create_index("mem", index)
        readers = [served.client() for _ in range(2 * workers)]
        before = sum(_pss(p) for p in [served.process, *served.workers()])
        writer.load_collection("mem")
        for reader in readers:  # every worker loads it (it follows the primary on a read)
            assert _count(reader, "mem") == rows
            reader.search("mem", data=[vectors[0].tolist()], limit=1)
        after = sum(_pss(p) for p in [served.process, *served.workers()])
        print(f"--workers {workers}: proportional resident memory {before} -> {after} bytes")
        return before, after
    finally:
        stop_server(process)  # type: ignore[arg-type]


@pytest.mark.slow
def test_the_loaded_data_is_not_copied_per_worker(tmp_path: Path) -> None:
    rows = 100_000  # 51 MB of vectors, and the FLAT index holds them again
    one_before, one_after = _loaded_pss(tmp_path / "one", 1, rows)
    two_before, two_after = _loaded_pss(tmp_path / "two", WORKERS, rows)
    one, two = one_after - one_before, two_after - two_before
    assert one > rows * 128 * 4  # the single process holds the vectors (and its index)
    assert two <= 1.3 * one, (one, two)


@pytest.mark.slow
def test_sigterm_stops_the_workers_with_the_server(tmp_path: Path) -> None:
    served, process = serve(tmp_path, WORKERS)
    reader = served.client()
    _create(reader, "stop")
    reader.insert("stop", _rows(range(10)))
    assert _count(reader, "stop") == 10
    workers = served.workers()
    assert len(workers) == WORKERS
    assert stop_server(process) == 0  # type: ignore[arg-type]
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive
    assert "SheafDB stopped" in (tmp_path / "server.log").read_text()
    assert not list((tmp_path / "data").glob("worker-*.sock"))
