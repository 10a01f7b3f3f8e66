"""The cluster writer over the wire: pymilvus against the real gRPC service of an Engine in
cluster mode (EngineConfig.cluster), its query workers registered through the catalog's API
and acking through it as workers do. Loads, replicas and resource groups answer from the
placement, refusals carry Milvus's codes and texts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymilvus import DataType, MilvusClient, MilvusException
from pymilvus.client.types import LoadState, ResourceGroupConfig

from sheafdb.api.server import build_wire_server
from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.storage.placement_rows import WorkerRecord

DEFAULT_RG = "__default_resource_group"


class Acker:
    """Acks every placed segment, as the workers' runtime does once it has loaded it."""

    def __init__(self, engine: Engine) -> None:
        self._catalog = engine._catalog
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for a in self._catalog.list_assignments():
                if not a.loaded:
                    self._catalog.ack_segment(a.collection_id, a.replica_id, a.segment_id, a.worker_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[tuple[Engine, MilvusClient]]:
    engine = Engine(EngineConfig(tmp_path / "data", fsync=False, cluster=True))
    server = build_wire_server(engine, max_workers=4)
    server.listen_unix(str(tmp_path / "grpc.sock"))
    server.start()
    client = MilvusClient(uri=f"unix:{tmp_path / 'grpc.sock'}")
    try:
        yield engine, client
    finally:
        client.close()
        server.stop(0)
        engine.close()


def register(engine: Engine, count: int, budget: int = 10**9) -> list[int]:
    return [
        engine._catalog.register_worker(
            WorkerRecord(
                0, f"127.0.0.1:{9000 + i}", "h", "", budget_bytes=budget, expires_at=time.time() + 600
            )
        ).worker_id
        for i in range(count)
    ]


def make(client: MilvusClient, name: str = "c") -> None:
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=4)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema)
    client.create_index(name, index)
    client.insert(name, [{"id": i, "vector": [float(i)] * 4} for i in range(30)])
    client.flush(name)


def test_load_with_two_replicas_is_placed_acked_and_described(writer: tuple[Engine, MilvusClient]) -> None:
    engine, client = writer
    workers = register(engine, 3)
    make(client)
    acker = Acker(engine)
    try:
        client.load_collection("c", replica_number=2)
    finally:
        acker.stop()
    assert client.get_load_state("c")["state"] is LoadState.Loaded
    replicas = client.describe_replica("c")
    assert len(replicas) == 2
    nodes = [set(r.group_nodes) for r in replicas]
    assert not nodes[0] & nodes[1] and nodes[0] | nodes[1] == set(workers)
    for r in replicas:
        assert r.resource_group == DEFAULT_RG
        assert r.shards[0].shard_leader in r.group_nodes
    info = client.describe_resource_group(DEFAULT_RG)
    assert sorted(n.node_id for n in info.nodes) == sorted(workers) and info.num_available_node == 3
    assert sorted(n.address for n in info.nodes) == ["127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002"]
    assert info.num_loaded_replica["c"] == 2
    client.release_collection("c")
    assert client.get_load_state("c")["state"] is LoadState.NotLoad
    assert client.describe_replica("c") == []


def test_loads_that_cannot_be_placed_are_refused_with_milvus_texts(
    writer: tuple[Engine, MilvusClient],
) -> None:
    engine, client = writer
    make(client)
    with pytest.raises(MilvusException, match="resource group node not enough"):
        client.load_collection("c")
    register(engine, 1, budget=100)
    with pytest.raises(MilvusException) as refused:
        client.load_collection("c")
    assert refused.value.code == 3 and "memory limit exceeded" in refused.value.message
    assert client.get_load_state("c")["state"] is LoadState.NotLoad
    with pytest.raises(
        MilvusException, match="resource group num can only be 0, 1 or same as replica number"
    ):
        client.load_collection("c", replica_number=2, _resource_groups=["a", "b", "c"])


def test_resource_groups_take_workers_and_replicas_transfer(writer: tuple[Engine, MilvusClient]) -> None:
    engine, client = writer
    register(engine, 3)
    make(client)
    client.create_resource_group(
        "rg1", config=ResourceGroupConfig(requests={"node_num": 1}, limits={"node_num": 1})
    )
    assert client.describe_resource_group("rg1").num_available_node == 1
    assert client.describe_resource_group(DEFAULT_RG).num_available_node == 2
    acker = Acker(engine)
    try:
        client.load_collection("c", replica_number=1, _resource_groups=["rg1"])
        assert client.describe_replica("c")[0].resource_group == "rg1"
        client.transfer_replica("rg1", DEFAULT_RG, "c", 1)
        [replica] = client.describe_replica("c")
        assert replica.resource_group == DEFAULT_RG and len(replica.group_nodes) == 2
        deadline = time.monotonic() + 30
        while client.get_load_state("c")["state"] is not LoadState.Loaded:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        acker.stop()
    client.update_resource_groups(
        {"rg1": ResourceGroupConfig(requests={"node_num": 0}, limits={"node_num": 0})}
    )
    assert client.describe_resource_group(DEFAULT_RG).num_available_node == 3
    client.drop_resource_group("rg1")
    assert client.list_resource_groups() == [DEFAULT_RG]
