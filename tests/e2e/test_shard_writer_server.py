"""``sheafdb serve --role shard-writer`` as a real process on a real PostgreSQL catalog, driven by
pymilvus, raw gRPC and REST: it adopts the collections nobody owns and serves their Insert,
Upsert and Delete (with authentication from the catalog's credentials), appending to their
logs; a collection whose log another process owns answers gRPC UNAVAILABLE / HTTP 503; every
other call answers UNAVAILABLE "not the coordinator"; stopping gives its leases up.

No Ray and no S3 are needed: a shard writer reaches neither (its ``--cluster`` and
``--objects`` are the cluster's, passed as to every writer)."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import psycopg
import pytest
from pymilvus import MilvusClient
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from sheafdb.engine.access import AccessControl
from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.catalog import Catalog, open_catalog
from sheafdb.storage.credentials import open_credentials
from sheafdb.storage.lease_rows import log_lease_name
from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready
from tests.engine.log_owners import logged_records
from tests.net_faults import Relay

pytestmark = pytest.mark.cluster  # PostgreSQL (the CI's cluster step installs it)

DIM = 4
LEASE_TTL_S = 2.0
# A bound on waits for what happens by itself (the first adoption round runs at start).
ADOPTION_WAIT_S = 60.0
# A bound on the wait for a process to leave by itself (a lease ttl, then its stop).
LEAVE_WAIT_S = 120.0
AUTHORIZATION = (("authorization", base64.b64encode(ROOT_TOKEN.encode()).decode()),)


def _schema() -> CollectionSchema:
    return CollectionSchema(
        fields=(
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
            FieldSchema("tag", DataType.VARCHAR, max_length=16),
        )
    )


def _rows(ids: range) -> list[dict[str, object]]:
    rng = np.random.default_rng(0)
    return [{"id": i, "vec": rng.random(DIM).tolist(), "tag": f"t{i}"} for i in ids]


@pytest.fixture
def catalog(tmp_path: Path, postgres_database: str) -> Iterator[Catalog]:
    """The coordinator's doing, done here: collections "c" and "d" and the credentials
    (root / Milvus); "d"'s log is owned by another process."""
    engine = Engine(
        EngineConfig(tmp_path / "coordinator", catalog_url=postgres_database, restore_loads=False)
    )
    try:
        engine.create_collection("default", "c", _schema())
        engine.create_collection("default", "d", _schema())
    finally:
        engine.close()
    AccessControl(open_credentials(postgres_database, tmp_path), enabled=True).close()
    opened = open_catalog(postgres_database, tmp_path)
    opened.take_lease(log_lease_name(opened.get_collection("default", "d").collection_id), "10.0.0.9:1", 600)
    try:
        yield opened
    finally:
        opened.close()


def _start(tmp_path: Path, catalog_url: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log_path = tmp_path / "shard-writer.log"
    flags = ("--role", "shard-writer", "--cluster", "ray://127.0.0.1:1", "--catalog", catalog_url)
    flags += ("--objects", "s3://unused/prefix", "--lease-ttl", str(LEASE_TTL_S))
    process = start_server(tmp_path / "shard-writer", port, log_path, extra=flags)
    wait_ready(process, log_path)
    return process, port, log_path


def _await_owner(catalog: Catalog, collection_id: int, log_path: Path) -> str:
    deadline = time.monotonic() + ADOPTION_WAIT_S
    while (
        lease := catalog.current_lease(log_lease_name(collection_id))
    ) is None or lease.expires_at < time.time():
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)
    return lease.holder


def test_a_shard_writer_serves_the_writes_of_the_logs_it_owns(
    tmp_path: Path, postgres_database: str, catalog: Catalog
) -> None:
    process, port, log_path = _start(tmp_path, postgres_database)
    try:
        c = catalog.get_collection("default", "c").collection_id
        d = catalog.get_collection("default", "d").collection_id
        assert _await_owner(catalog, c, log_path) == f"127.0.0.1:{port}"

        client = MilvusClient(uri=f"http://127.0.0.1:{port}", token=ROOT_TOKEN, timeout=30)
        assert client.insert("c", _rows(range(5)))["insert_count"] == 5
        assert client.upsert("c", _rows(range(3, 7)))["upsert_count"] == 4
        assert client.delete("c", filter="id in [0, 1]")["delete_count"] == 2
        assert client.delete("c", ids=[2])["delete_count"] == 1
        records = logged_records(postgres_database, c)
        assert [r.kind for r in records] == ["insert", "upsert", "delete", "delete"]
        assert records[0].batch.column("id").to_pylist() == [0, 1, 2, 3, 4]
        assert sorted(records[2].batch.column("pk").to_pylist()) == [0, 1]

        stub = milvus_pb2_grpc.MilvusServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        # Any call but the writes: not here.
        with pytest.raises(grpc.RpcError) as refused:
            stub.ShowCollections(milvus_pb2.ShowCollectionsRequest(), metadata=AUTHORIZATION, timeout=30)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "not the coordinator" in str(refused.value.details())
        # A collection whose log another process owns: the transport's UNAVAILABLE.
        with pytest.raises(grpc.RpcError) as not_owner:
            stub.Delete(
                milvus_pb2.DeleteRequest(collection_name="d", expr="id in [1]"),
                metadata=AUTHORIZATION,
                timeout=30,
            )
        assert not_owner.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "not the owner of the collection's log" in str(not_owner.value.details())
        # Authentication as on one server.
        with pytest.raises(grpc.RpcError) as anonymous:
            stub.Delete(milvus_pb2.DeleteRequest(collection_name="c", expr="id in [3]"), timeout=30)
        assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED

        rest = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ROOT_TOKEN}"}
        )
        inserted = rest.post(
            "/v2/vectordb/entities/insert", json={"collectionName": "c", "data": _rows(range(7, 9))}
        )
        assert inserted.status_code == 200 and inserted.json()["data"]["insertCount"] == 2
        elsewhere = rest.post(
            "/v2/vectordb/entities/insert", json={"collectionName": "d", "data": _rows(range(2))}
        )
        assert elsewhere.status_code == 503 and elsewhere.json()["code"] == 2
        listed = rest.post("/v2/vectordb/collections/list", json={})
        assert listed.status_code == 503 and "not the coordinator" in listed.json()["message"]
        assert [r.kind for r in logged_records(postgres_database, c)][-1] == "insert"
        assert logged_records(postgres_database, d) == []
    finally:
        assert stop_server(process) == 0, log_path.read_text()
    # Stopping gave the lease up: another member may adopt "c" at once.
    released = catalog.current_lease(log_lease_name(c))
    assert released is not None and released.expires_at <= time.time()


def test_a_shard_writer_whose_catalog_went_silent_leaves(
    tmp_path: Path, postgres_database: str, catalog: Catalog
) -> None:
    """Its member lease runs out unrenewed (the database neither answers nor resets): it
    leaves with exit code 3, as a writer whose lease expired (its supervisor restarts it)."""
    url = psycopg.conninfo.conninfo_to_dict(postgres_database)
    link = Relay((str(url["host"]), int(str(url["port"]))))
    process, port, log_path = _start(
        tmp_path, postgres_database.replace(f":{url['port']}/", f":{link.port}/")
    )
    try:
        c = catalog.get_collection("default", "c").collection_id
        assert _await_owner(catalog, c, log_path) == f"127.0.0.1:{port}"
        link.freeze()
        assert process.wait(LEAVE_WAIT_S) == 3, log_path.read_text()
        assert "member lease ran out" in log_path.read_text()
    finally:
        stop_server(process)
        link.close()
