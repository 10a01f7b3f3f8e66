"""The proxy process with pymilvus and REST, over a real writer and real gRPC read services.

The writer is a real server (its catalog a SQLite file here, the proxy reading the same
catalog); the query workers are gRPC services speaking Contract C over the writer's engine,
one per replica (the Ray workers of the cluster mode are proven in tests/cluster/). Proven
here: reads are answered by the workers (never by the writer), every other call reaches the
writer, a worker that goes away sends reads to the other replica, the client's authorization
reaches the workers, and a proxy restarted on the same catalog serves the same.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from sheafdb.api.cluster.proxy import ProxyConfig, ProxyServer
from sheafdb.api.server import Server, ServerConfig
from sheafdb.engine.distribution.read_calls import READ_METHOD, SECRET_METADATA_KEY, ReadAnswer, ReadCall
from sheafdb.engine.distribution.reduce import metric_for
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import QueryRequest, SearchRequest
from sheafdb.errors import SheafError
from sheafdb.storage.catalog import CATALOG_FILE
from sheafdb.storage.placement_rows import ReplicaRecord, SegmentAssignment, WorkerRecord
from sheafdb.storage.sqlite_catalog import SqliteCatalog

TOKEN = "root:Milvus"
DIM = 8


@dataclass
class ReadService:
    """A gRPC read service (Contract C) answering from an engine; it records who called."""

    engine: Engine
    secret: str
    server: grpc.Server = field(init=False)
    address: str = field(init=False)
    calls: list[tuple[ReadCall, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        handler = grpc.unary_unary_rpc_method_handler(self._read)
        service, method = READ_METHOD.rsplit("/", 1)
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(service.strip("/"), {method: handler})]
        )
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{port}"
        self.server.start()

    def _read(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = {k: str(v) for k, v in context.invocation_metadata() or ()}
        if metadata.get(SECRET_METADATA_KEY) != self.secret:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "no cluster secret")
        call = pickle.loads(raw)
        self.calls.append((call, metadata))
        try:
            if call.method == "search":
                assert isinstance(call.request, SearchRequest)
                record = self.engine.describe_collection(call.db, call.request.collection)
                indexes = self.engine._catalog.list_indexes(record.collection_id)
                metric = metric_for(record.schema, indexes, call.request.anns_field, call.request.metric_type)
                answer = ReadAnswer(
                    self.engine.search(call.db, call.request), larger_is_better=metric != "L2"
                )
            else:
                assert isinstance(call.request, QueryRequest)
                answer = ReadAnswer(self.engine.query(call.db, call.request))
        except SheafError as exc:
            answer = ReadAnswer(None, exc.code, exc.message)
        return pickle.dumps(answer)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Server, SqliteCatalog, list[ReadService], Path]]:
    writer = Server(ServerConfig(tmp_path / "writer", port=0, auth_enabled=True, console=False))
    writer.start()
    catalog = SqliteCatalog(tmp_path / "writer" / CATALOG_FILE)
    assert catalog.try_acquire_lease("writer", writer.address, 3600) is not None
    secret = str(catalog.ensure_cluster_secret())
    assert writer._engine is not None
    services = [ReadService(writer._engine, secret), ReadService(writer._engine, secret)]
    yield writer, catalog, services, tmp_path / "writer" / CATALOG_FILE
    for service in services:
        service.server.stop(0)
    catalog.close()
    writer.stop()


def start_proxy(catalog_file: Path) -> ProxyServer:
    proxy = ProxyServer(
        ProxyConfig(catalog_url="", port=0, read_wait_s=5.0, writer_wait_s=5.0),
        lambda: SqliteCatalog(catalog_file),
    )
    proxy.start()
    return proxy


def place(catalog: SqliteCatalog, collection_id: int, services: list[ReadService]) -> None:
    """Replica r on worker r, every sealed segment acked (the writer loaded them all)."""
    replicas, assignments = [], []
    segments = [s.segment_id for s in catalog.list_segments(collection_id)]
    for replica_id, service in enumerate(services, start=1):
        worker = catalog.register_worker(
            WorkerRecord(0, service.address, "localhost", "", expires_at=time.time() + 3600)
        )
        replicas.append(
            ReplicaRecord(
                collection_id, replica_id, "__default_resource_group", (worker.worker_id,), worker.worker_id
            )
        )
        assignments += [
            SegmentAssignment(collection_id, replica_id, s, worker.worker_id, True) for s in segments
        ]
    catalog.save_placement(collection_id, replicas, assignments)


def test_reads_through_the_proxy_reach_the_workers_and_the_rest_the_writer(cluster) -> None:
    writer, catalog, services, catalog_file = cluster
    proxy = start_proxy(catalog_file)
    try:
        client = MilvusClient(uri=f"http://{proxy.address}", token=TOKEN)
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
        schema.add_field("num", DataType.INT64)
        client.create_collection("c", schema=schema)
        vectors = np.random.default_rng(1).standard_normal((300, DIM)).astype(np.float32)
        rows = [{"id": i, "vec": vectors[i].tolist(), "num": i % 5} for i in range(300)]
        assert client.insert("c", rows[:200])["insert_count"] == 200
        client.flush("c")
        assert client.insert("c", rows[200:])["insert_count"] == 100  # growing: the leader serves it
        index = client.prepare_index_params()
        index.add_index("vec", index_type="FLAT", metric_type="L2")
        client.create_index("c", index)
        client.load_collection("c")
        cid = writer._engine.describe_collection("default", "c").collection_id  # type: ignore[union-attr]
        place(catalog, cid, services)

        hits = client.search(
            "c", [vectors[250].tolist(), vectors[10].tolist()], limit=3, output_fields=["num"]
        )
        assert [h[0]["id"] for h in hits] == [250, 10]
        assert hits[0][0]["entity"]["num"] == 0
        count = client.query("c", filter="", output_fields=["count(*)"])
        assert count[0]["count(*)"] == 300
        got = client.get("c", ids=[3, 299], output_fields=["num"])
        assert sorted((r["id"], r["num"]) for r in got) == [(3, 3), (299, 4)]
        # Both replicas served, each asked with the client's authorization.
        assert all(service.calls for service in services)
        assert all(md.get("authorization") for service in services for _, md in service.calls)

        rest = httpx.post(
            f"http://{proxy.address}/v2/vectordb/entities/search",
            json={"collectionName": "c", "data": [vectors[42].tolist()], "limit": 2},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ).json()
        assert rest["code"] == 0 and rest["data"][0]["id"] == 42
        listed = httpx.post(
            f"http://{proxy.address}/v2/vectordb/collections/list",
            json={},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ).json()
        assert listed == {"code": 0, "data": ["c"]}
        denied = httpx.post(f"http://{proxy.address}/v2/vectordb/collections/list", json={}).json()
        assert denied["code"] == 1800  # the writer checked it

        # A worker gone: reads go to the other replica.
        services[0].server.stop(0)
        for _ in range(4):
            assert client.search("c", [vectors[7].tolist()], limit=1)[0][0]["id"] == 7
    finally:
        proxy.stop()

    # A proxy restarted on the same catalog serves as before (nothing of its own).
    again = start_proxy(catalog_file)
    try:
        client = MilvusClient(uri=f"http://{again.address}", token=TOKEN)
        assert client.query("c", filter="id in [1, 2]", output_fields=["num"]) == [
            {"id": 1, "num": 1},
            {"id": 2, "num": 2},
        ]
        assert client.get_load_state("c")["state"].name == "Loaded"
    finally:
        again.stop()


def test_no_writer_lease_fails_after_the_wait(cluster) -> None:
    writer, catalog, _, catalog_file = cluster
    lease = catalog.current_lease("writer")
    assert lease is not None
    catalog.release_lease(lease)
    proxy = start_proxy(catalog_file)
    try:
        with pytest.raises(MilvusException, match="server unavailable"):
            MilvusClient(uri=f"http://{proxy.address}", token=TOKEN, timeout=30).list_collections()
    finally:
        proxy.stop()
