"""One writer per collection log (real processes on one PostgreSQL catalog, one S3 prefix and a
Ray cluster): the coordinator (``--role writer``) and a shard writer (``--role shard-writer``)
share the collections' logs; a proxy sends each Insert/Upsert/Delete to its collection's log
owner (the holder of the ``log/<id>`` lease).

Proven here:
- new collections' logs are spread over both writers, and a collection owned by the shard
  writer takes writes while the coordinator is paused (its writes never pass through it);
- a shard writer SIGKILLed while a client inserts through the proxy: its logs are taken over
  by the other writer, the inserts go on, every acknowledged row is read back once;
- a shard writer paused (SIGSTOP) past its lease is fenced: its log is taken over, and a write
  it was handed while paused is refused when it wakes, never appended.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from pymilvus import MilvusClient
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc, schema_pb2

from tests.cluster.conftest import kill_worker_actors
from tests.cluster.test_proxy_cluster import Process, create_collection, rows, serve, wait_loaded
from tests.cluster.writes_under_a_kill import (
    BATCH,
    WAIT_S,
    assert_each_row_once,
    cluster_flags,
    insert_while_killing,
)
from tests.e2e.conftest import ROOT_TOKEN
from tests.services import S3Server

pytestmark = pytest.mark.cluster


@dataclass
class Deployment:
    catalog: str
    coordinator: Process
    shard_writer: Process
    proxy: Process

    def client(self) -> MilvusClient:
        return MilvusClient(uri=f"http://{self.proxy.address}", token=ROOT_TOKEN, timeout=120)


@pytest.fixture
def deployment(
    tmp_path: Path, postgres_database: str, s3_server: S3Server, ray_cluster: Any
) -> Iterator[Deployment]:
    flags, env = cluster_flags(postgres_database, s3_server, ray_cluster, "shards")
    coordinator = serve(flags, "writer", tmp_path, env)
    processes = [coordinator]
    try:
        processes.append(shard_writer := serve(flags, "shard-writer", tmp_path, env))
        processes.append(proxy := serve(flags, "proxy", tmp_path, env))
        yield Deployment(postgres_database, coordinator, shard_writer, proxy)
    finally:
        for process in reversed(processes):
            if process.process.poll() is None:
                os.kill(process.process.pid, signal.SIGCONT)  # a test may have left it paused
            process.stop()
        kill_worker_actors(ray_cluster.address)


def log_owner(catalog: str, client: MilvusClient, name: str) -> tuple[str, int] | None:
    """(holder, token) of the collection's live log lease; None while nobody holds it."""
    collection_id = client.describe_collection(name)["collection_id"]
    with psycopg.connect(catalog) as db:
        row = db.execute(
            "SELECT holder, token FROM leases WHERE name = %s AND expires_at > extract(epoch from now())",
            (f"log/{collection_id}",),
        ).fetchone()
    return None if row is None else (str(row[0]), int(row[1]))


def wait_owner(catalog: str, client: MilvusClient, name: str, *, not_: str | None = None) -> tuple[str, int]:
    deadline = time.monotonic() + WAIT_S
    while True:
        owner = log_owner(catalog, client, name)
        if owner is not None and owner[0] != not_:
            return owner
        assert time.monotonic() < deadline, f"nobody took the log of {name} over"
        time.sleep(0.1)


def collection_owned_by(deployment: Deployment, holder: str, prefix: str) -> str:
    """A new collection whose log ``holder`` owns (new logs go to the least loaded writer)."""
    client = deployment.client()
    for attempt in range(6):
        name = f"{prefix}{attempt}"
        create_collection(client, name, auto_id=True)
        if wait_owner(deployment.catalog, client, name)[0] == holder:
            client.load_collection(name)
            wait_loaded(client, name)
            return name
    pytest.fail(f"no collection's log went to {holder}")


def count(client: MilvusClient, name: str) -> int:
    counted = client.query(name, output_fields=["count(*)"], consistency_level="Strong")
    return int(counted[0]["count(*)"])


def test_logs_are_shared_and_a_shard_writers_collection_takes_writes_while_the_coordinator_is_paused(
    deployment: Deployment,
) -> None:
    client = deployment.client()
    owners = set()
    for index in range(4):
        create_collection(client, f"spread{index}", auto_id=True)
        owners.add(wait_owner(deployment.catalog, client, f"spread{index}")[0])
    assert owners == {deployment.coordinator.address, deployment.shard_writer.address}

    name = collection_owned_by(deployment, deployment.shard_writer.address, "owned")
    client.insert(name, [{"vec": r["vec"], "tag": r["tag"]} for r in rows(0, BATCH)])
    os.kill(deployment.coordinator.process.pid, signal.SIGSTOP)
    try:
        # Short of the coordinator's lease: it goes on as the coordinator when it wakes.
        ids = client.insert(name, [{"vec": r["vec"], "tag": r["tag"]} for r in rows(BATCH, BATCH)])["ids"]
        deleted = client.delete(name, ids=list(ids[:3]))
    finally:
        os.kill(deployment.coordinator.process.pid, signal.SIGCONT)
    assert len(ids) == BATCH and deleted["delete_count"] == 3
    assert count(client, name) == 2 * BATCH - 3
    client.flush(name)  # the coordinator seals what the shard writer logged
    assert count(client, name) == 2 * BATCH - 3


def test_inserts_survive_a_killed_shard_writer_each_row_once(deployment: Deployment) -> None:
    client = deployment.client()
    name = collection_owned_by(deployment, deployment.shard_writer.address, "killed")
    _, token = wait_owner(deployment.catalog, client, name)
    acked = insert_while_killing(deployment.proxy, name, deployment.shard_writer)

    assert wait_owner(deployment.catalog, client, name) == (deployment.coordinator.address, token + 1)
    assert_each_row_once(client, name, acked)


def _insert_request(name: str, tag_value: str) -> milvus_pb2.InsertRequest:
    """One row tagged ``tag_value``, as pymilvus would send it (auto id: no id column)."""
    vector = rows(0, 1)[0]["vec"]
    request = milvus_pb2.InsertRequest(collection_name=name, num_rows=1)
    vec = schema_pb2.FieldData(type=schema_pb2.DataType.FloatVector, field_name="vec")
    vec.vectors.dim = len(vector)
    vec.vectors.float_vector.data.extend(vector)
    tag = schema_pb2.FieldData(type=schema_pb2.DataType.VarChar, field_name="tag")
    tag.scalars.string_data.data.append(tag_value)
    request.fields_data.extend([vec, tag])
    return request


def test_a_paused_shard_writer_is_fenced_when_it_wakes(deployment: Deployment) -> None:
    client = deployment.client()
    name = collection_owned_by(deployment, deployment.shard_writer.address, "paused")
    client.insert(name, [{"vec": r["vec"], "tag": r["tag"]} for r in rows(0, BATCH)])
    _, token = wait_owner(deployment.catalog, client, name)

    pid = deployment.shard_writer.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        # Its lease runs out; the coordinator's process takes the log over (token + 1).
        assert wait_owner(deployment.catalog, client, name, not_=deployment.shard_writer.address) == (
            deployment.coordinator.address,
            token + 1,
        )
        # Writes through the proxy go to the new owner.
        client.insert(name, [{"vec": r["vec"], "tag": r["tag"]} for r in rows(BATCH, BATCH)])
        # A write handed to the paused writer directly waits in its socket until it wakes.
        channel = grpc.insecure_channel(deployment.shard_writer.address)
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        pending = stub.Insert.future(_insert_request(name, "fenced"), timeout=WAIT_S)
        time.sleep(0.5)  # let the request reach the paused process's socket (no assertion on time)
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        answer = pending.result()
    except grpc.RpcError as exc:
        assert exc.code() is grpc.StatusCode.UNAVAILABLE, exc  # fenced: no longer the log owner
    else:
        assert answer.status.code != 0, answer  # refused in the answer: never appended
    finally:
        channel.close()
    assert count(client, name) == 2 * BATCH  # the write it was handed is nowhere
    assert not client.query(name, filter="tag == 'fenced'", output_fields=["id"], consistency_level="Strong")
