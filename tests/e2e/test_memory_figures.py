"""The memory figures against the real server, on every surface at once: ``/v2/sheafdb/memory``
(REST), ``/metrics`` (Prometheus) and ``GetMetrics`` ``system_info`` (gRPC) tell the same bytes
per collection and field while loaded, a partial load shows only its fields, ``/v2/sheafdb/
release`` answers the bytes it freed, and after it every figure is back to the baseline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymilvus import DataType, MilvusClient
from pymilvus.grpc_gen import milvus_pb2

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready

DIM = 16
NAME = "figures"
AUTH = {"Authorization": f"Bearer {ROOT_TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of its own: the used bytes are compared with a baseline no other test moves."""
    root = tmp_path_factory.mktemp("memory-figures")
    port = free_port()
    process = start_server(root / "data", port, root / "server.log")
    wait_ready(process, root / "server.log")
    yield f"http://127.0.0.1:{port}"
    stop_server(process)


def rest_memory(uri: str) -> dict[str, Any]:
    reply = httpx.post(f"{uri}/v2/sheafdb/memory", json={}, headers=AUTH, timeout=30).json()
    assert reply["code"] == 0
    data: dict[str, Any] = reply["data"]
    return data


def scraped(uri: str) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """The memory gauges, and this collection's resident bytes by (field, kind)."""
    text = httpx.get(f"{uri}/metrics", headers=AUTH, timeout=30).text
    gauges: dict[str, float] = {}
    resident: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("sheafdb_memory_"):
                gauges[sample.name] = sample.value
            elif sample.name == "sheafdb_resident_bytes" and sample.labels["collection_name"] == NAME:
                key = (sample.labels["field_name"], sample.labels["kind"])
                resident[key] = resident.get(key, 0.0) + sample.value
    return gauges, resident


def system_info(client: MilvusClient) -> dict[str, Any]:
    stub = client._get_connection()._stub
    reply = stub.GetMetrics(milvus_pb2.GetMetricsRequest(request='{"metric_type": "system_info"}'))
    assert reply.status.code == 0
    memory: dict[str, Any] = json.loads(reply.response)["memory"]
    return memory


def agree(uri: str, client: MilvusClient) -> dict[tuple[str, str], int]:
    """The three surfaces' figures, once they are settled: read until two rounds in a row agree
    with each other and give the same figures (a load's last structures, or a read cache filled
    by a background pass, may land between the three reads of one round), for at most 30 s."""
    deadline = time.monotonic() + 30
    previous: dict[tuple[str, str], int] | None = None
    while True:
        try:
            figures = _agree_once(uri, client)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            figures = None
        if figures is not None and figures == previous:
            return figures
        if time.monotonic() > deadline:
            raise AssertionError(f"the figures did not settle: {previous} then {figures}")
        previous = figures
        time.sleep(0.2)


def _agree_once(uri: str, client: MilvusClient) -> dict[tuple[str, str], int]:
    """The three surfaces' figures for the collection, checked equal; REST's by (field, kind)."""
    rest = rest_memory(uri)
    gauges, resident = scraped(uri)
    grpc = system_info(client)
    assert gauges["sheafdb_memory_used_bytes"] == rest["usedBytes"] == grpc["used_bytes"]
    assert gauges["sheafdb_memory_budget_bytes"] == rest["budgetBytes"] == grpc["budget_bytes"]
    assert gauges["sheafdb_memory_free_bytes"] == rest["freeBytes"] == grpc["free_bytes"]
    mine = [c for c in rest["collections"] if c["collectionName"] == NAME]
    by_field = {(f["fieldName"], f["kind"]): f["bytes"] for f in mine[0]["fields"]} if mine else {}
    assert {k: int(v) for k, v in resident.items()} == by_field
    in_grpc = [c for c in grpc["collections"] if c["name"] == NAME]
    assert gauges["sheafdb_memory_mapped_bytes"] == rest["mappedBytes"]
    if mine:
        resident = sum(n for (_, kind), n in by_field.items() if kind != "mapped")
        assert resident == mine[0]["bytes"] == in_grpc[0]["resident_bytes"]
        assert sum(by_field.values()) - resident == mine[0]["mappedBytes"] == in_grpc[0]["mapped_bytes"]
    else:
        assert in_grpc == []
    return by_field


def test_every_surface_tells_the_same_bytes_and_returns_to_the_baseline(server: str) -> None:
    client = MilvusClient(uri=server, token=ROOT_TOKEN)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("label", DataType.VARCHAR, max_length=64)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
    client.create_collection(NAME, schema=schema, index_params=index)
    client.release_collection(NAME)
    vectors = np.random.default_rng(3).random((2000, DIM), dtype=np.float32)
    rows = [{"id": i, "vec": vectors[i].tolist(), "label": f"row number {i}"} for i in range(2000)]
    client.insert(NAME, rows)
    client.flush(NAME)
    baseline = rest_memory(server)["usedBytes"]
    assert agree(server, client) == {}

    client.load_collection(NAME)
    loaded = agree(server, client)
    assert {field for field, _ in loaded} >= {"id", "vec", "label"}
    assert any(kind == "index" and field == "vec" for field, kind in loaded)
    assert rest_memory(server)["usedBytes"] == baseline + sum(loaded.values())
    client.search(NAME, [vectors[0].tolist()], limit=3, filter="id >= 0", output_fields=["label"])
    after_reads = agree(server, client)  # read caches (masks, ...) are counted on every surface too

    freed = httpx.post(
        f"{server}/v2/sheafdb/release", json={"collectionName": NAME}, headers=AUTH, timeout=30
    ).json()
    assert freed["code"] == 0 and freed["data"]["freedBytes"] == sum(after_reads.values())
    assert agree(server, client) == {}
    assert rest_memory(server)["usedBytes"] == baseline

    client.load_collection(NAME, load_fields=["id", "vec"])
    partial = agree(server, client)
    assert "label" not in {field for field, _ in partial}
    assert sum(partial.values()) < sum(loaded.values())
    client.release_collection(NAME)
    assert agree(server, client) == {}
    assert rest_memory(server)["usedBytes"] == baseline

    # Memory-mapped fields are shown apart: kind "mapped", outside the used (budget) bytes.
    client.alter_collection_properties(NAME, properties={"mmap.enabled": "true"})
    client.load_collection(NAME)
    mapped = agree(server, client)
    assert {field for field, kind in mapped if kind == "mapped"} >= {"vec", "label"}
    resident = sum(n for (_, kind), n in mapped.items() if kind != "mapped")
    assert rest_memory(server)["usedBytes"] == baseline + resident
    assert system_info(client)["used_bytes"] == baseline + resident
    client.release_collection(NAME)
    assert agree(server, client) == {}
    assert rest_memory(server)["usedBytes"] == baseline
    client.drop_collection(NAME)
    client.close()
