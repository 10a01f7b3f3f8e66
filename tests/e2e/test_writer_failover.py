"""Writers on one PostgreSQL catalog and one S3 bucket, as real processes driven by pymilvus:
one holds the writer lease, a second waits as a standby and takes over when the first is
SIGKILLed (every acknowledged row is there) or paused past its lease (the old one, resumed,
cannot write and steps down), or loses the answer to a log append that committed (it steps
down, exit code 3, and the standby serves that row once); and ``--workers 2`` on PostgreSQL + S3 reads every
acknowledged write from any connection (Strong)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready
from tests.net_faults import Relay
from tests.services import S3Server

pytestmark = pytest.mark.cluster

DIM = 8
LEASE_TTL_S = 2.0
# Bounds on waits for things that happen by themselves (a takeover, a step-down).
TAKEOVER_WAIT_S = 120.0


@dataclass
class Node:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def client(self) -> MilvusClient:
        return MilvusClient(
            uri=f"http://127.0.0.1:{self.port}",
            token=ROOT_TOKEN,
            dedicated=True,
            grpc_options={"grpc.use_local_subchannel_pool": 1},
            timeout=30,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def backends(postgres_database: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    for key, value in s3_server.credentials_env().items():
        monkeypatch.setenv(key, value)  # the servers inherit them
    # The session's shared bucket (each new bucket costs the server volumes), a prefix of its own.
    prefix = f"failover-{uuid.uuid4().hex}"
    return postgres_database, s3_server.url("sheafdb-store-tests", prefix) + "&allow_bucket_creation=true"


@pytest.fixture
def nodes(tmp_path: Path, backends: tuple[str, str]) -> Iterator[list[Node]]:
    """Starts servers on the shared backends, each on its own data dir (its own machine)."""
    started: list[Node] = []
    catalog, objects = backends

    def start(name: str, *extra: str, via: str | None = None) -> Node:
        """``via``: the catalog's URL through a relay (tests/net_faults.py) for this one."""
        port = free_port()
        log_path = tmp_path / f"{name}.log"
        flags = ("--catalog", via or catalog, "--objects", objects, "--lease-ttl", str(LEASE_TTL_S), *extra)
        node = Node(start_server(tmp_path / name, port, log_path, extra=flags), port, log_path)
        started.append(node)
        return node

    yield start  # type: ignore[misc]
    for node in started:
        if node.process.poll() is None:
            os.kill(node.process.pid, signal.SIGCONT)
        stop_server(node.process)


def _wait_for(what: str, condition, timeout_s: float = TAKEOVER_WAIT_S) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _create(client: MilvusClient, name: str) -> None:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index("v", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
    client.create_collection(name, schema=schema, index_params=index)


def _rows(ids: range) -> list[dict[str, object]]:
    vectors = np.random.default_rng(ids.start).random((len(ids), DIM), dtype=np.float32)
    return [{"id": i, "v": vectors[k].tolist()} for k, i in enumerate(ids)]


def _ids(client: MilvusClient, name: str) -> list[int]:
    rows = client.query(name, filter="id >= 0", output_fields=["id"], consistency_level="Strong", limit=16384)
    return sorted(int(r["id"]) for r in rows)


def _standby(nodes, name: str) -> Node:  # type: ignore[no-untyped-def]
    node: Node = nodes(name)
    _wait_for(f"{name} never said it is a standby", lambda: "standby:" in node.log())
    assert "SheafDB ready on" not in node.log()
    return node


def _serving(node: Node) -> MilvusClient:
    _wait_for("the standby did not take over", lambda: "SheafDB ready on" in node.log())
    client = node.client()
    _wait_for(
        "the collection was not loaded again", lambda: str(client.get_load_state("c")["state"]) == "Loaded"
    )
    return client


def test_a_standby_takes_over_a_killed_writer_with_every_acknowledged_row(nodes) -> None:  # type: ignore[no-untyped-def]
    first: Node = nodes("first")
    wait_ready(first.process, first.log_path)
    second = _standby(nodes, "second")
    writer = first.client()
    _create(writer, "c")
    acked: list[int] = []
    for start in range(0, 300, 30):
        assert writer.insert("c", _rows(range(start, start + 30)))["insert_count"] == 30
        acked.extend(range(start, start + 30))
        if start == 120:
            writer.flush("c")  # some rows sealed into S3, the rest only in the log
    writer.delete("c", ids=[5, 250])
    acked = [i for i in acked if i not in (5, 250)]
    first.process.send_signal(signal.SIGKILL)  # right after the acknowledgements: nothing flushed
    first.process.wait()

    client = _serving(second)
    assert "holding the writer lease (token 2)" in second.log()
    assert _ids(client, "c") == acked
    # The new writer writes, seals and reads as the old one did.
    client.insert("c", _rows(range(300, 310)))
    client.flush("c")
    assert _ids(client, "c") == [*acked, *range(300, 310)]
    hit = client.search("c", data=[_rows(range(30, 60))[12]["v"]], limit=1)[0][0]
    assert hit["id"] == 42
    # A standby asked to stop while it waits stops at once, having served nothing.
    third = _standby(nodes, "third")
    assert stop_server(third.process) == 0
    assert "SheafDB ready on" not in third.log()


def test_a_paused_writer_is_deposed_and_cannot_write_when_it_wakes(nodes) -> None:  # type: ignore[no-untyped-def]
    first: Node = nodes("first")
    wait_ready(first.process, first.log_path)
    writer = first.client()
    _create(writer, "c")
    writer.insert("c", _rows(range(0, 50)))
    second = _standby(nodes, "second")

    os.kill(first.process.pid, signal.SIGSTOP)  # past its lease: it cannot renew
    client = _serving(second)
    assert _ids(client, "c") == list(range(50))
    client.insert("c", _rows(range(50, 60)))

    os.kill(first.process.pid, signal.SIGCONT)
    # Whatever it does first (refuse the write as fenced, or step down), the row never lands.
    with pytest.raises(Exception):  # noqa: B017 - fenced (code 2) or its port already closed
        writer.insert("c", _rows(range(1000, 1001)), timeout=10)
    assert first.process.wait(TAKEOVER_WAIT_S) == 3
    assert "lost the writer lease" in first.log()
    assert _ids(client, "c") == list(range(60))
    assert "holding the writer lease (token 2)" in second.log()


def _relayed_writer(nodes, catalog: str) -> tuple[Node, Relay]:  # type: ignore[no-untyped-def]
    """A writer whose catalog connections go through a relay that can lose an answer."""
    url = psycopg.conninfo.conninfo_to_dict(catalog)
    link = Relay((str(url["host"]), int(str(url["port"]))))
    node: Node = nodes("first", via=catalog.replace(f":{url['port']}/", f":{link.port}/"))
    wait_ready(node.process, node.log_path)
    return node, link


def test_a_writer_that_lost_the_answer_to_a_committed_append_steps_down(  # type: ignore[no-untyped-def]
    nodes, backends: tuple[str, str]
) -> None:
    first, link = _relayed_writer(nodes, backends[0])
    try:
        writer = first.client()
        _create(writer, "c")
        writer.insert("c", _rows(range(0, 10)))
        second = _standby(nodes, "second")

        link.lose_reply(b"INSERT INTO log_records", b"INSERT 0 1")
        with pytest.raises(MilvusException) as unanswered:
            writer.insert("c", _rows(range(10, 11)))
        assert unanswered.value.code == 2
        # The next append learns the lost one committed: the writer steps down (unless a
        # client retry of the first already did).
        with pytest.raises(Exception):  # noqa: B017 - code 2, or its port already closed
            writer.insert("c", _rows(range(11, 12)), timeout=10)
        assert first.process.wait(TAKEOVER_WAIT_S) == 3
        assert "stepping down as the writer" in first.log()
    finally:
        link.close()
    client = _serving(second)
    assert _ids(client, "c") == list(range(11))  # the unacknowledged row, once
    assert "holding the writer lease (token 3)" in second.log()  # resigned (2), then taken


def test_workers_on_postgres_and_s3_read_every_acknowledged_write(nodes) -> None:  # type: ignore[no-untyped-def]
    served: Node = nodes("primary", "--workers", "2")
    wait_ready(served.process, served.log_path)
    writer, readers = served.client(), [served.client() for _ in range(2)]
    _create(writer, "c")
    for i in range(60):
        writer.insert("c", _rows(range(i, i + 1)))
        reader = readers[i % 2]
        got = reader.query("c", filter=f"id == {i}", output_fields=["id"], consistency_level="Strong")
        assert [r["id"] for r in got] == [i]
        if i % 20 == 19:
            writer.flush("c")  # sealed into S3 and the log trimmed between reads
    writer.delete("c", ids=[3])
    assert all(_ids(reader, "c") == [i for i in range(60) if i != 3] for reader in readers)


def test_a_writer_that_lost_the_answer_to_a_ddl_commit_steps_down(  # type: ignore[no-untyped-def]
    nodes, backends: tuple[str, str]
) -> None:
    first, link = _relayed_writer(nodes, backends[0])
    try:
        writer = first.client()
        _create(writer, "c")
        writer.insert("c", _rows(range(0, 10)))
        second = _standby(nodes, "second")
        link.lose_reply(b"INSERT INTO collections", b"COMMIT\x00")
        with pytest.raises(Exception):  # noqa: B017 - code 2, or its port already closed on a retry
            _create(writer, "d")
        assert first.process.wait(TAKEOVER_WAIT_S) == 3
        assert "stepping down as the writer" in first.log()
    finally:
        link.close()
    client = _serving(second)
    # The catalog's truth: the collection whose commit answer was lost exists.
    assert sorted(client.list_collections()) == ["c", "d"]
    assert _ids(client, "c") == list(range(10))
