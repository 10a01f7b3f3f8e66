"""``sheafdb serve --workers 2`` is one server to its operator: /metrics counts the calls the
query workers served, the memory figures (REST, GetMetrics, /metrics) are the whole server's
with each process's share, and ``--memory-budget`` bounds the sum of all processes' bytes."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import psutil
import pytest
from pymilvus import DataType, MilvusClient, MilvusException
from pymilvus.grpc_gen import milvus_pb2

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready

DIM = 16
WORKERS = 2
AUTH = {"Authorization": f"Bearer {ROOT_TOKEN}"}
# Reports arrive every ~0.5 s; this only bounds a broken server's wait.
WAIT_S = 60.0


class Served:
    def __init__(self, root: Path, *extra: str) -> None:
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        log_path = root / "server.log"
        self.process = start_server(
            root / "data", self.port, log_path, extra=("--workers", str(WORKERS), *extra)
        )
        wait_ready(self.process, log_path)
        self.base = f"http://127.0.0.1:{self.port}"

    def client(self) -> MilvusClient:
        """A client on its own connection (handed to the workers in turn)."""
        return MilvusClient(
            uri=self.base,
            token=ROOT_TOKEN,
            dedicated=True,
            grpc_options={"grpc.use_local_subchannel_pool": 1},
        )

    def worker_connections(self) -> int:
        """Established connections on the public port the worker processes hold."""
        held = 0
        for child in psutil.Process(self.process.pid).children():
            held += sum(
                1
                for c in child.net_connections(kind="tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port
            )
        return held

    def memory(self) -> dict[str, Any]:
        answer = httpx.post(f"{self.base}/v2/sheafdb/memory", json={}, headers=AUTH).json()
        assert answer["code"] == 0, answer
        return dict(answer["data"])

    def metrics(self) -> str:
        return httpx.get(f"{self.base}/metrics", headers=AUTH).text

    def stop(self) -> None:
        stop_server(self.process)


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"never saw: {what}")
        time.sleep(0.1)


def create(client: MilvusClient, name: str, rows: int) -> list[float]:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index("v", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
    client.create_collection(name, schema=schema, index_params=index)
    vectors = np.random.default_rng(rows).random((rows, DIM), dtype=np.float32)
    client.insert(name, [{"id": i, "v": vectors[i].tolist()} for i in range(rows)])
    client.flush(name)
    client.release_collection(name)  # created loaded; the tests load when they mean to
    return list(vectors[0].tolist())


def processes(memory: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["usedBytes"] for p in memory.get("processes", [])}


def workers_hold_bytes(served: Served) -> bool:
    found = processes(served.memory())
    return len(found) == WORKERS + 1 and all(found[f"query worker {i}"] > 0 for i in range(WORKERS))


def search_through_workers(served: Served, name: str, query: list[float], times: int) -> int:
    """``times`` searches on each of 2 x WORKERS connections; returns how many were made."""
    readers = [served.client() for _ in range(2 * WORKERS)]
    for _ in range(times):
        for reader in readers:
            assert len(reader.search(name, data=[query], limit=3)[0]) == 3
    assert served.worker_connections() >= len(readers)  # the workers served them, not the primary
    for reader in readers:
        reader.close()
    return times * len(readers)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    running = Served(tmp_path_factory.mktemp("shared"))
    yield running
    running.stop()


def _searches_counted(metrics: str, collection: str) -> float:
    pattern = re.compile(
        r'^milvus_proxy_req_count\{(?=[^}]*collection_name="' + collection + r'")'
        r'(?=[^}]*function_name="Search")(?=[^}]*status="success")[^}]*\} (\S+)$',
        re.M,
    )
    found = pattern.search(metrics)
    return float(found.group(1)) if found else 0.0


def test_metrics_count_the_calls_the_workers_served(served: Served) -> None:
    admin = served.client()
    query = create(admin, "counted", 300)
    admin.load_collection("counted")
    made = search_through_workers(served, "counted", query, times=5)
    wait_for(f"{made} searches counted", lambda: _searches_counted(served.metrics(), "counted") == made)
    # The latency histogram has them too.
    histogram = re.search(
        r'^milvus_proxy_req_latency_count\{function_name="Search",node_id="1"\} (\S+)$',
        served.metrics(),
        re.M,
    )
    assert histogram is not None and float(histogram.group(1)) >= made
    # Nothing is counted twice: a quiet while later the count is the same.
    time.sleep(1.5)
    assert _searches_counted(served.metrics(), "counted") == made
    admin.drop_collection("counted")
    admin.close()


def test_memory_figures_are_the_whole_servers_with_each_process(served: Served) -> None:
    admin = served.client()
    query = create(admin, "figures", 500)
    admin.load_collection("figures")
    search_through_workers(served, "figures", query, times=2)
    wait_for("every worker's bytes", lambda: workers_hold_bytes(served))
    memory = served.memory()
    by_process = processes(memory)
    assert memory["usedBytes"] == sum(by_process.values())
    assert memory["freeBytes"] == memory["budgetBytes"] - memory["usedBytes"] - memory["reservedBytes"]
    scraped = served.metrics()
    for name in by_process:
        assert f'sheafdb_process_used_bytes{{process="{name}"}}' in scraped
    # GetMetrics' system_info carries the same per-process figures.
    info = json.loads(system_info(served.port))
    assert set(info["memory"]["processes"]) == set(by_process)
    # Released: the workers follow, and their bytes leave the sum.
    admin.release_collection("figures")
    wait_for("the workers' bytes freed", lambda: sum(processes(served.memory()).values()) == 0)
    admin.drop_collection("figures")
    admin.close()


def system_info(port: int) -> str:
    """GetMetrics(system_info) over plain gRPC, with Milvus's authorization metadata."""
    request = milvus_pb2.GetMetricsRequest(request=json.dumps({"metric_type": "system_info"}))
    token = base64.b64encode(ROOT_TOKEN.encode()).decode()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            "/milvus.proto.milvus.MilvusService/GetMetrics",
            request_serializer=milvus_pb2.GetMetricsRequest.SerializeToString,
            response_deserializer=milvus_pb2.GetMetricsResponse.FromString,
        )
        response = call(request, metadata=[("authorization", token)])
    assert response.status.code == 0, response.status
    return str(response.response)


def test_the_budget_bounds_every_process_together(tmp_path: Path) -> None:
    """Measured with a large budget, then served again with a budget where the second load
    fits beside the primary's bytes alone but not beside the workers' too."""
    first = Served(tmp_path)
    try:
        admin = first.client()
        query = create(admin, "resident", 2000)
        create(admin, "second", 2000)
        admin.load_collection("resident")
        search_through_workers(first, "resident", query, times=2)
        wait_for("every worker's bytes", lambda: workers_hold_bytes(first))
        measured = processes(first.memory())
        plan = httpx.post(
            f"{first.base}/v2/sheafdb/load_plan", json={"collectionName": "second"}, headers=AUTH
        ).json()["data"]
        admin.close()
    finally:
        first.stop()
    workers_bytes = sum(n for name, n in measured.items() if name != "primary")
    budget = measured["primary"] + plan["totalBytes"] + workers_bytes // 2
    again = Served(tmp_path, "--memory-budget", str(budget))
    try:
        admin = again.client()
        admin.load_collection("resident")  # restored at start; this waits for it
        search_through_workers(again, "resident", query, times=2)
        wait_for("every worker's bytes", lambda: processes(again.memory()) == measured)
        with pytest.raises(MilvusException, match="memory limit exceeded"):
            admin.load_collection("second")
        admin.release_collection("resident")
        wait_for("the workers' bytes freed", lambda: sum(processes(again.memory()).values()) == 0)
        admin.load_collection("second")
        assert len(admin.search("second", data=[query], limit=3)[0]) == 3
        admin.close()
    finally:
        again.stop()
