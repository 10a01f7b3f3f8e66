"""Fields added later (with defaults) and null handling, through the real pymilvus client on a
server of the test's own: growing and sealed rows, after a reload, a restart and a compaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pymilvus import DataType, MilvusClient

from tests.e2e.conftest import compact_and_wait, free_port, start_server, stop_server, wait_ready

DIM = 4


class Server:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.runs = 0
        self.process = None

    def start(self) -> MilvusClient:
        self.runs += 1
        log = self.root / f"server{self.runs}.log"
        self.process = start_server(self.root / "data", self.port, log, auth=False)
        wait_ready(self.process, log)
        return MilvusClient(f"http://127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.process is not None:
            assert stop_server(self.process) == 0
            self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    own = Server(tmp_path)
    yield own
    own.stop()


def _count(client: MilvusClient, name: str, expr: str) -> int:
    return client.query(name, filter=expr, output_fields=["count(*)"])[0]["count(*)"]


def _ids(client: MilvusClient, name: str, expr: str) -> list[int]:
    return sorted(r["id"] for r in client.query(name, filter=expr, output_fields=["id"]))


@pytest.mark.slow
def test_added_fields_read_their_default_through_reload_restart_and_compaction(server: Server) -> None:
    client = server.start()
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    index_params = client.prepare_index_params()
    index_params.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection("c", schema=schema, index_params=index_params)
    client.insert("c", [{"id": i, "vec": [float(i)] * DIM} for i in range(4)])
    client.flush("c")  # rows 0-3 sealed before the fields exist
    client.insert("c", [{"id": i, "vec": [float(i)] * DIM} for i in range(4, 8)])  # 4-7 growing
    client.add_collection_field("c", "score", DataType.INT64, nullable=True, default_value=7)
    client.add_collection_field("c", "label", DataType.VARCHAR, max_length=8, nullable=True)
    client.insert("c", [{"id": 8, "vec": [8.0] * DIM, "score": 1, "label": "new"}])
    client.release_collection("c")
    client.load_collection("c")

    def check(phase: str) -> None:
        rows = {r["id"]: r for r in client.query("c", filter="id >= 0", output_fields=["score", "label"])}
        assert [rows[i]["score"] for i in range(9)] == [7] * 8 + [1], phase
        assert [rows[i]["label"] for i in range(9)] == [None] * 8 + ["new"], phase
        assert _count(client, "c", "score == 7 and id < 9") == 8, phase
        assert _ids(client, "c", "label is null and id < 3") == [0, 1, 2], phase
        assert _ids(client, "c", "label is not null") == [8], phase
        hits = client.search(
            "c", [[0.0] * DIM], limit=2, filter="score > 5", output_fields=["score", "label"]
        )
        assert [(h["id"], h["entity"]["score"], h["entity"]["label"]) for h in hits[0]] == [
            (0, 7, None),
            (1, 7, None),
        ], phase

    check("loaded after add")
    client.flush("c")
    check("all sealed")
    server.stop()
    client = server.start()
    client.load_collection("c")
    check("after restart")
    client.insert("c", [{"id": 20, "vec": [20.0] * DIM}])
    client.flush("c")
    compact_and_wait(client, "c")
    check("after compaction")
    assert client.get("c", ids=[20], output_fields=["score", "label"])[0]["score"] == 7


@pytest.mark.slow
def test_null_handling_everywhere(server: Server) -> None:
    client = server.start()
    schema = MilvusClient.create_schema(enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("n", DataType.INT64, nullable=True)
    schema.add_field("s", DataType.VARCHAR, max_length=8, nullable=True)
    schema.add_field("j", DataType.JSON, nullable=True)
    schema.add_field("a", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4, nullable=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    index_params = client.prepare_index_params()
    index_params.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection("c", schema=schema, index_params=index_params)
    rows = []
    for i in range(10):
        null = i % 2 == 1
        rows.append(
            {
                "id": i,
                "n": None if null else i,
                "s": None if null else f"s{i}",
                "j": None if null else ({"k": i} if i % 4 == 0 else {"other": 1}),
                "a": None if null else [i],
                "vec": [float(i)] * DIM,
            }
        )
    client.insert("c", rows[:5])
    client.flush("c")
    client.insert("c", rows[5:])

    def check(phase: str) -> None:
        odd, even = [1, 3, 5, 7, 9], [0, 2, 4, 6, 8]
        assert _ids(client, "c", "n is null") == odd, phase
        assert _ids(client, "c", "n is not null") == even, phase
        assert _ids(client, "c", "s is null") == odd, phase
        assert _ids(client, "c", "a is null") == odd, phase
        assert _ids(client, "c", "j is null") == odd, phase
        assert _ids(client, "c", 'j["k"] is null') == [1, 2, 3, 5, 6, 7, 9], phase
        assert _ids(client, "c", 'j["k"] is not null') == [0, 4, 8], phase
        # Three-valued logic: a comparison with null is neither true nor false.
        assert _ids(client, "c", "n > 3") == [4, 6, 8], phase
        assert _ids(client, "c", "not (n > 3)") == [0, 2], phase
        assert _ids(client, "c", "n != 4") == [0, 2, 6, 8], phase
        assert _ids(client, "c", "n > 3 or n is null") == [1, 3, 4, 5, 6, 7, 8, 9], phase
        assert _count(client, "c", "n is null") == 5, phase
        hits = client.search("c", [[0.0] * DIM], limit=3, filter="s is null", output_fields=["s", "n"])
        assert [(h["id"], h["entity"]["s"], h["entity"]["n"]) for h in hits[0]] == [
            (1, None, None),
            (3, None, None),
            (5, None, None),
        ], phase

    check("growing and sealed")
    client.flush("c")
    check("sealed")
    server.stop()
    client = server.start()
    client.load_collection("c")
    check("after restart")
    client.delete("c", filter="n is null and id > 6")
    client.flush("c")
    compact_and_wait(client, "c")
    assert _ids(client, "c", "n is null") == [1, 3, 5]
    assert _count(client, "c", "") == 8
