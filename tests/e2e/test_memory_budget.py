"""The memory budget against the real server: ``--memory-budget`` (or ``--config``) refuses a
load that would not fit at once and keeps serving; reads never load, so a seal under a tight
budget never fails one (its rows stay served from memory until the segment is installed),
and a read never opens a segment file (counted with inotify)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready

DIM = 16


@pytest.fixture
def budget_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[MilvusClient, Path]]:
    """A server with the budget the test names (``@pytest.mark.parametrize`` on ``budget``)."""
    budget: str = request.param
    port = free_port()
    log_path = tmp_path / "server.log"
    process = start_server(tmp_path / "data", port, log_path, extra=("--memory-budget", budget))
    wait_ready(process, log_path)
    client = MilvusClient(uri=f"http://127.0.0.1:{port}", token=ROOT_TOKEN)
    try:
        yield client, tmp_path
    finally:
        client.close()
        stop_server(process)


def make_collection(client: MilvusClient, name: str, rows: int, *, start: int = 0) -> None:
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    client.release_collection(name)
    insert(client, name, start, rows)
    client.flush(name)
    wait_indexed(client, name, rows)


def wait_indexed(client: MilvusClient, name: str, rows: int) -> None:
    """Until the background build has indexed ``rows`` (so nothing but reads touches files)."""
    for _ in range(3000):
        info = client.describe_index(name, "vec")
        if info.get("indexed_rows") == rows and not info.get("pending_index_rows"):
            return
        threading.Event().wait(0.01)
    pytest.fail("the index was never built")


def insert(client: MilvusClient, name: str, start: int, rows: int) -> None:
    vectors = np.random.default_rng(start).random((rows, DIM), dtype=np.float32)
    client.insert(
        name,
        [{"id": start + i, "vec": vectors[i].tolist(), "tag": f"t{(start + i) % 7}"} for i in range(rows)],
    )


@pytest.mark.parametrize("budget_server", ["1MiB"], indirect=True)
def test_a_load_over_the_budget_is_refused_at_once_and_the_server_keeps_serving(
    budget_server: tuple[MilvusClient, Path],
) -> None:
    client, _ = budget_server
    make_collection(client, "small", 200)
    make_collection(client, "big", 20_000)  # 1.28 MB of vectors alone
    client.load_collection("small")
    with pytest.raises(MilvusException) as err:
        client.load_collection("big")
    assert err.value.code == 3
    message = err.value.message
    assert "memory limit exceeded" in message and "loading collection big needs" in message
    assert f"memory budget of {1024 * 1024} bytes" in message and "bytes are free" in message
    assert client.get_load_state("big")["state"].name == "NotLoad"
    hits = client.search("small", [[0.5] * DIM], limit=3)
    assert len(hits[0]) == 3
    assert client.query("small", filter="id < 10", output_fields=["count(*)"])[0]["count(*)"] == 10


def test_the_budget_can_come_from_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "sheafdb.toml"
    config.write_text('memory-budget = "1MiB"\nauth = true\n')
    port = free_port()
    log_path = tmp_path / "server.log"
    process = start_server(tmp_path / "data", port, log_path, auth=False, extra=("--config", str(config)))
    wait_ready(process, log_path)
    try:
        assert f"memory budget: {1024 * 1024} bytes (1MiB)" in log_path.read_text()
        with pytest.raises(MilvusException):  # auth came from the file too
            MilvusClient(uri=f"http://127.0.0.1:{port}", token="root:wrong").list_collections()
        client = MilvusClient(uri=f"http://127.0.0.1:{port}", token=ROOT_TOKEN)
        make_collection(client, "big", 20_000)
        with pytest.raises(MilvusException) as err:
            client.load_collection("big")
        assert err.value.code == 3
        client.close()
    finally:
        stop_server(process)


def test_a_bad_budget_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    process = start_server(tmp_path / "data", free_port(), log_path, extra=("--memory-budget", "lots"))
    assert process.wait(30) == 2
    assert "not a size: 'lots'" in log_path.read_text()


@pytest.mark.parametrize("budget_server", ["1MiB"], indirect=True)
def test_seals_during_searches_under_a_tight_budget_never_fail_a_read(
    budget_server: tuple[MilvusClient, Path],
) -> None:
    client, root = budget_server
    make_collection(client, "c", 3000)
    client.load_collection("c")
    errors: list[str] = []
    reads = 0
    stop = threading.Event()

    def read_loop() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                client.search("c", [[0.5] * DIM], limit=5, filter='tag == "t3"', output_fields=["tag"])
                client.query("c", filter="id >= 0", output_fields=["count(*)"])
                reads += 1
            except MilvusException as exc:
                errors.append(f"{exc.code}: {exc.message}")

    thread = threading.Thread(target=read_loop)
    thread.start()
    try:
        for batch in range(1, 4):  # each seal's segment would need more than the budget has left
            insert(client, "c", batch * 3000, 3000)
            client.flush("c")
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert reads > 0
    count = client.query("c", filter="id >= 0", output_fields=["count(*)"], consistency_level="Strong")
    assert count[0]["count(*)"] == 12_000  # the sealed rows are served from memory meanwhile
    log = (root / "server.log").read_text()
    assert "waits (served from memory meanwhile): memory limit exceeded" in log


# -- counting opens with inotify ---------------------------------------------------------------
_IN_OPEN = 0x20
_IN_NONBLOCK = 0o4000
_EVENT = struct.Struct("iIII")


class OpenCounter:
    """Counts files opened inside the watched directories (by anyone: the server here)."""

    def __init__(self, directories: list[Path]) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._fd = self._libc.inotify_init1(_IN_NONBLOCK)
        assert self._fd >= 0
        for directory in directories:
            assert self._libc.inotify_add_watch(self._fd, str(directory).encode(), _IN_OPEN) >= 0

    def opens(self) -> int:
        count = 0
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return count
            offset = 0
            while offset < len(data):
                _, mask, _, length = _EVENT.unpack_from(data, offset)
                count += bool(mask & _IN_OPEN)
                offset += _EVENT.size + length

    def close(self) -> None:
        os.close(self._fd)


@pytest.mark.parametrize("budget_server", ["64MiB"], indirect=True)
def test_reads_never_open_a_segment_file(budget_server: tuple[MilvusClient, Path]) -> None:
    client, root = budget_server
    make_collection(client, "c", 2000)
    client.load_collection("c")
    segment_dirs = [p for p in (root / "data" / "collections").glob("*/segments/*") if p.is_dir()]
    assert segment_dirs
    counter = OpenCounter(segment_dirs)
    try:
        insert(client, "c", 2000, 500)  # growing rows too
        for _ in range(20):
            client.search(
                "c", [[0.5] * DIM], limit=5, filter='tag in ["t1", "t2"]', output_fields=["tag", "vec"]
            )
            client.query("c", filter="id < 100", output_fields=["tag"])
            client.get("c", ids=[1, 2, 2100])
            client.query("c", filter="", output_fields=["count(*)"])
        assert counter.opens() == 0
    finally:
        counter.close()
