"""The cluster end to end: a real writer process, a real proxy process, query workers as Ray
actors on a local two-node Ray cluster, PostgreSQL and an S3 server, driven by pymilvus.

CLUSTER.md's "what must be proven": 1 (writes seen through the proxy, two replicas on disjoint
nodes), 2 (a SIGKILLed worker: searches go on, the collection is served again with no client
call), 4 (a restarted proxy finds the same state), 5 (a collection bigger than one worker's
budget loads across two, same recall as one process; only the loaded fields' files are
fetched), 6 (a load that fits nowhere is refused at once). Item 3 (the writer killed) is
proven by the log's tests (pglog).

Every process is stopped by its PID (SIGTERM, SIGKILL for the kills under test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState
from sheafdb.schema import CollectionSchema, FieldSchema
from sheafdb.schema import DataType as SheafType
from tests.cluster.conftest import kill_worker_actors
from tests.e2e.conftest import ROOT_TOKEN, free_port
from tests.services import S3Server

pytestmark = pytest.mark.cluster

DIM = 32
SEGMENT_ROWS = 400
START_TIMEOUT_S = 180.0
WAIT_S = 120.0
# Each worker's budget holds this many segments of the test collections.
SEGMENTS_PER_WORKER = 4


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    log_path: Path
    address: str

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@dataclass
class Cluster:
    ray_address: str
    catalog: str
    objects: str
    env: dict[str, str]
    root: Path
    segment_bytes: int
    writer: Process
    proxy: Process

    def client(self) -> MilvusClient:
        return MilvusClient(uri=f"http://{self.proxy.address}", token=ROOT_TOKEN, timeout=120)


def serve(cluster_flags: list[str], role: str, root: Path, env: dict[str, str], *extra: str) -> Process:
    port = free_port()
    name = f"{role}-{port}"
    log_path = root / f"{name}.log"
    command = [
        sys.executable,
        "-m",
        "sheafdb",
        "serve",
        *cluster_flags,
        "--role",
        role,
        "--data-dir",
        str(root / name),
        "--port",
        str(port),
        *extra,
    ]
    process = subprocess.Popen(command, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=env)
    ready = "SheafDB proxy ready on" if role == "proxy" else "SheafDB ready on"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready in log_path.read_text(errors="replace"):
            return Process(process, log_path, f"127.0.0.1:{port}")
        if process.poll() is not None:
            break
        time.sleep(0.2)
    Process(process, log_path, "").stop(signal.SIGKILL)
    pytest.fail(f"{role} did not start:\n{log_path.read_text(errors='replace')[-4000:]}")


def segment_cost(tmp: Path) -> int:
    """What one test segment costs a worker: loaded by one embedded engine, as placement counts it."""
    engine = Engine(EngineConfig(tmp, fsync=False, restore_loads=False))
    try:
        schema = CollectionSchema(
            fields=(
                FieldSchema("id", SheafType.INT64, is_primary=True),
                FieldSchema("vec", SheafType.FLOAT_VECTOR, dim=DIM),
                FieldSchema("tag", SheafType.VARCHAR, max_length=32),
            )
        )
        engine.create_collection("default", "probe", schema)
        engine.insert("default", "probe", arrow_rows(0, SEGMENT_ROWS))
        engine.flush("default", ["probe"])
        engine.create_index("default", "probe", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
        engine.wait_for_index_builds(60)
        engine.load_collection("default", "probe")
        engine.wait_for_loads(60)
        assert engine.get_load_state("default", "probe") is LoadState.LOADED
        cid = engine.describe_collection("default", "probe").collection_id
        return int(engine.memory_report()["collections"][cid]["bytes"])  # type: ignore[index]
    finally:
        engine.close()


def vectors_of(start: int, count: int) -> np.ndarray:
    return np.random.default_rng(start).standard_normal((count, DIM)).astype(np.float32)


def arrow_rows(start: int, count: int) -> pa.Table:
    vectors = vectors_of(start, count)
    return pa.table(
        {
            "id": pa.array(range(start, start + count), pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
            "tag": pa.array([f"tag-{i % 7}" for i in range(start, start + count)]),
        }
    )


def rows(start: int, count: int) -> list[dict[str, Any]]:
    vectors = vectors_of(start, count)
    return [
        {"id": start + i, "vec": vectors[i].tolist(), "tag": f"tag-{(start + i) % 7}"} for i in range(count)
    ]


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, s3_server: S3Server, ray_cluster: Any
) -> Iterator[Cluster]:
    import psycopg

    root = Path(tmp_path_factory.mktemp("cluster"))
    database = f"c_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    catalog = postgres_url.rsplit("/", 1)[0] + "/" + database
    # The session's shared bucket (each new bucket costs the server volumes), a prefix of its own.
    prefix = f"proxy-{uuid.uuid4().hex}"
    objects = s3_server.url("sheafdb-store-tests", prefix) + "&allow_bucket_creation=true"
    env = {**os.environ, **s3_server.credentials_env(), "PYTHONUNBUFFERED": "1"}
    segment_bytes = segment_cost(root / "probe")
    flags = ["--cluster", ray_cluster.address, "--catalog", catalog, "--objects", objects]
    budget = str(SEGMENTS_PER_WORKER * segment_bytes)
    # --auth: the workers check every read's caller, the writer's own reads (delete by filter,
    # partial upsert) included.
    writer = serve(flags, "writer", root, env, "--memory-budget", budget, "--auth")
    proxy = serve(flags, "proxy", root, env)
    made = Cluster(ray_cluster.address, catalog, objects, env, root, segment_bytes, writer, proxy)
    try:
        yield made
    finally:
        made.proxy.stop()
        made.writer.stop()
        kill_worker_actors(ray_cluster.address)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {database} WITH (FORCE)")


def create_collection(client: MilvusClient, name: str, *, auto_id: bool) -> None:
    """id, a DIM-d vector with a FLAT index, a tag: the collection these tests write."""
    schema = client.create_schema(auto_id=auto_id)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.VARCHAR, max_length=32)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema)
    client.create_index(name, index)


def make_collection(client: MilvusClient, name: str, segments: int) -> None:
    create_collection(client, name, auto_id=False)
    # One segment per partition: compaction merges within a partition only, so they stay apart.
    for s in range(segments):
        partition = "_default" if s == 0 else f"p{s}"
        if s:
            client.create_partition(name, partition)
        inserted = client.insert(name, rows(s * SEGMENT_ROWS, SEGMENT_ROWS), partition_name=partition)
        assert inserted["insert_count"] == SEGMENT_ROWS
        client.flush(name)


def wait_loaded(client: MilvusClient, name: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if client.get_load_state(name)["state"].name == "Loaded":
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} not loaded: {client.get_load_state(name)}")


def replicas(client: MilvusClient, name: str) -> list[tuple[int, ...]]:
    return [tuple(sorted(r.group_nodes)) for r in client.describe_replica(name)]


def nearest(client: MilvusClient, name: str, queries: np.ndarray, limit: int = 5) -> list[list[int]]:
    hits = client.search(name, queries.tolist(), limit=limit, anns_field="vec")
    return [[hit["id"] for hit in per_query] for per_query in hits]


def exact(all_vectors: np.ndarray, queries: np.ndarray, limit: int = 5) -> list[list[int]]:
    distances = ((queries[:, None, :] - all_vectors[None, :, :]) ** 2).sum(axis=2)
    return [list(map(int, row)) for row in np.argsort(distances, axis=1, kind="stable")[:, :limit]]


def worker_pids(ray_address: str) -> dict[int, int]:
    """Worker id -> pid of its actor's process, asked of the actors themselves."""
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_address, namespace="sheafdb", logging_level="WARNING")
    found: dict[int, int] = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] != "sheafdb" or not entry["name"].startswith("sheafdb-worker-"):
            continue
        actor = ray.get_actor(entry["name"], namespace="sheafdb")
        try:
            worker_id, _, pid, _ = ray.get(actor.status.remote(), timeout=30)
        except ray.exceptions.RayError:  # restarting: not a live worker yet
            continue
        found[worker_id] = pid
    return found


def test_writes_are_read_through_the_proxy_from_two_replicas_and_a_killed_worker_is_replaced(
    cluster: Cluster,
) -> None:
    client = cluster.client()
    make_collection(client, "two", 2)
    client.load_collection("two", replica_number=2)
    wait_loaded(client, "two")
    # Two replicas on disjoint nodes (one worker per Ray node here).
    placed = replicas(client, "two")
    assert len(placed) == 2 and not set(placed[0]) & set(placed[1])

    # Strong: an acknowledged write (growing, not flushed) is seen by the next read.
    extra_start = 2 * SEGMENT_ROWS
    assert client.insert("two", rows(extra_start, 50))["insert_count"] == 50
    total = 2 * SEGMENT_ROWS + 50
    assert client.query("two", filter="", output_fields=["count(*)"])[0]["count(*)"] == total
    everything = np.concatenate(
        [vectors_of(0, SEGMENT_ROWS), vectors_of(SEGMENT_ROWS, SEGMENT_ROWS), vectors_of(extra_start, 50)]
    )
    queries = everything[[3, SEGMENT_ROWS + 9, extra_start + 7]]
    assert nearest(client, "two", queries) == exact(everything, queries)
    got = client.get("two", ids=[extra_start + 1, 5], output_fields=["tag"])
    assert sorted(r["id"] for r in got) == [5, extra_start + 1]
    client.delete("two", ids=[3])
    assert [r["id"] for r in client.query("two", filter="id in [3, 4]", output_fields=["id"])] == [4]

    # SIGKILL one worker: every search still answers (the other replica), and the collection is
    # fully served again without any client call (Ray restarts the actor, it loads again).
    pids = worker_pids(cluster.ray_address)
    victim = placed[0][0]
    os.kill(pids[victim], signal.SIGKILL)
    without_3 = np.delete(everything, 3, axis=0)
    ids_without_3 = np.delete(np.arange(total), 3)
    probe = everything[[10, 20]]
    want = [[int(ids_without_3[i]) for i in row] for row in exact(without_3, probe)]
    deadline = time.monotonic() + WAIT_S
    served_again = False
    while time.monotonic() < deadline:
        assert nearest(client, "two", probe) == want
        now = replicas(client, "two")
        if len(now) == 2 and all(now) and client.get_load_state("two")["state"].name == "Loaded":
            new_pids = worker_pids(cluster.ray_address)
            if pids[victim] not in new_pids.values() and len(new_pids) == 2:
                served_again = True
                break
        time.sleep(0.2)
    assert served_again, f"not served again: {replicas(client, 'two')}"
    assert nearest(client, "two", probe) == want


def test_a_restarted_proxy_serves_the_same_state(cluster: Cluster) -> None:
    client = cluster.client()
    name = "kept"
    make_collection(client, name, 1)
    client.load_collection(name, replica_number=2)
    wait_loaded(client, name)
    before = (replicas(client, name), nearest(client, name, vectors_of(0, SEGMENT_ROWS)[[1, 2]]))
    client.close()
    cluster.proxy.stop(signal.SIGKILL)
    flags = ["--cluster", cluster.ray_address, "--catalog", cluster.catalog, "--objects", cluster.objects]
    cluster.proxy = serve(flags, "proxy", cluster.root, cluster.env)
    again = cluster.client()
    assert again.get_load_state(name)["state"].name == "Loaded"
    assert (replicas(again, name), nearest(again, name, vectors_of(0, SEGMENT_ROWS)[[1, 2]])) == before
    again.release_collection(name)


def test_a_collection_bigger_than_one_worker_loads_across_two_with_exact_recall(cluster: Cluster) -> None:
    client = cluster.client()
    for name in client.list_collections():
        client.release_collection(name)  # the workers' budgets are this test's alone
    segments = SEGMENTS_PER_WORKER * 3 // 2  # 1.5x one worker's budget
    make_collection(client, "big", segments)
    client.load_collection("big", replica_number=1)
    wait_loaded(client, "big")
    (nodes,) = replicas(client, "big")
    assert len(nodes) == 2
    everything = np.concatenate([vectors_of(s * SEGMENT_ROWS, SEGMENT_ROWS) for s in range(segments)])
    queries = np.random.default_rng(99).standard_normal((20, DIM)).astype(np.float32)
    # FLAT: one process answers the exact neighbours; so must the two workers together.
    assert nearest(client, "big", queries, limit=10) == exact(everything, queries, limit=10)
    client.release_collection("big")


def test_a_load_that_fits_nowhere_is_refused_at_once(cluster: Cluster) -> None:
    client = cluster.client()
    for name in client.list_collections():
        client.release_collection(name)
    make_collection(client, "huge", 2 * SEGMENTS_PER_WORKER + 1)
    with pytest.raises(MilvusException) as refused:
        client.load_collection("huge", replica_number=1, timeout=60)
    assert refused.value.code == 3 and "memory" in refused.value.message
    assert client.get_load_state("huge")["state"].name == "NotLoad"


def test_a_delete_by_filter_and_a_partial_upsert_read_through_the_workers(cluster: Cluster) -> None:
    # The writer loads nothing in cluster mode: the rows a general delete filter matches and
    # the rows a partial upsert merges into are read from the query workers.
    client = cluster.client()
    for name in client.list_collections():
        client.release_collection(name)
    name = "edits"
    make_collection(client, name, 1)
    growing = client.insert(name, rows(SEGMENT_ROWS, 50))  # not flushed: the leader's growing rows
    assert growing["insert_count"] == 50
    client.load_collection(name, replica_number=2)
    wait_loaded(client, name)
    total = SEGMENT_ROWS + 50

    doomed = [i for i in range(total) if i % 7 == 3]
    deleted = client.delete(name, filter='tag == "tag-3"')
    assert deleted["delete_count"] == len(doomed)
    strong = {"consistency_level": "Strong"}
    assert client.query(name, filter='tag == "tag-3"', output_fields=["id"], **strong) == []
    counted = client.query(name, filter="", output_fields=["count(*)"], **strong)
    assert counted[0]["count(*)"] == total - len(doomed)
    # The same over REST (relayed to the writer, the caller's token passed on to the workers).
    answer = httpx.post(
        f"http://{cluster.proxy.address}/v2/vectordb/entities/delete",
        json={"collectionName": name, "filter": 'tag == "tag-4"'},
        headers={"Authorization": f"Bearer {ROOT_TOKEN}"},
        timeout=120,
    ).json()
    assert answer["code"] == 0, answer
    doomed += [i for i in range(total) if i % 7 == 4]
    assert client.query(name, filter='tag == "tag-4"', output_fields=["id"], **strong) == []
    counted = client.query(name, filter="", output_fields=["count(*)"], **strong)
    assert counted[0]["count(*)"] == total - len(doomed)

    # A partial upsert of a sealed row and a growing row: the new tag, the stored vector kept.
    changed = [{"id": 5, "tag": "edited-5"}, {"id": SEGMENT_ROWS + 1, "tag": "edited-401"}]
    assert client.upsert(name, changed, partial_update=True)["upsert_count"] == 2
    got = client.get(name, ids=[5, SEGMENT_ROWS + 1], output_fields=["tag", "vec"], **strong)
    by_id = {row["id"]: row for row in got}
    assert {i: by_id[i]["tag"] for i in by_id} == {5: "edited-5", SEGMENT_ROWS + 1: "edited-401"}
    assert np.allclose(by_id[5]["vec"], vectors_of(0, SEGMENT_ROWS)[5])
    assert np.allclose(by_id[SEGMENT_ROWS + 1]["vec"], vectors_of(SEGMENT_ROWS, 50)[1])
    counted = client.query(name, filter="", output_fields=["count(*)"], **strong)
    assert counted[0]["count(*)"] == total - len(doomed)
    client.release_collection(name)


def test_a_relayed_insert_carries_its_call_id_and_a_retry_of_it_writes_nothing(cluster: Cluster) -> None:
    """The proxy tags a relayed insert with the call's id, which the writer logs with the rows
    (PostgreSQL's log_records.write_id); the proxy's retry of that call (the same bytes, the
    same id, marked as a retry), as it would reach a writer after the first one died unanswered,
    answers with the first try's ids and writes nothing."""
    import base64

    import grpc
    import psycopg
    from pymilvus.client.prepare import Prepare
    from pymilvus.grpc_gen import milvus_pb2_grpc

    client = cluster.client()
    name = "retried_insert"
    create_collection(client, name, auto_id=True)
    batch = [{"vec": row["vec"], "tag": row["tag"]} for row in rows(0, 20)]
    first = client.insert(name, batch)
    assert first["insert_count"] == 20
    with psycopg.connect(cluster.catalog) as db:
        logged = db.execute(
            "SELECT write_id FROM log_records WHERE collection_id = "
            "(SELECT collection_id FROM collections WHERE name = %s)",
            (name,),
        ).fetchall()
    assert len(logged) == 1 and logged[0][0]  # one record, with the call's id
    request = Prepare.row_insert_param(name, batch, "", client.describe_collection(name)["fields"])
    token = base64.b64encode(ROOT_TOKEN.encode()).decode()
    with grpc.insecure_channel(cluster.writer.address) as channel:
        retried = milvus_pb2_grpc.MilvusServiceStub(channel).Insert(
            request,
            metadata=[
                ("authorization", token),
                ("sheafdb-write-id", logged[0][0]),
                ("sheafdb-write-retry", "1"),
            ],
            timeout=60,
        )
    assert retried.status.code == 0
    assert list(retried.IDs.int_id.data) == list(first["ids"])
    # The same over REST: the proxy tags the relayed call with headers; a retry of it (the same
    # headers, marked) answers with the first try's ids.
    auth = {"Authorization": f"Bearer {ROOT_TOKEN}"}
    body = {"collectionName": name, "data": batch}
    answer = httpx.post(
        f"http://{cluster.proxy.address}/v2/vectordb/entities/insert", json=body, headers=auth, timeout=120
    ).json()
    assert answer["code"] == 0 and answer["data"]["insertCount"] == 20, answer
    with psycopg.connect(cluster.catalog) as db:
        logged = db.execute(
            "SELECT write_id FROM log_records WHERE collection_id = "
            "(SELECT collection_id FROM collections WHERE name = %s) ORDER BY lsn",
            (name,),
        ).fetchall()
    assert len(logged) == 2 and logged[1][0] and logged[1][0] != logged[0][0]
    again = httpx.post(
        f"http://{cluster.writer.address}/v2/vectordb/entities/insert",
        json=body,
        headers={**auth, "sheafdb-write-id": logged[1][0], "sheafdb-write-retry": "1"},
        timeout=120,
    ).json()
    assert again["code"] == 0 and again["data"]["insertIds"] == answer["data"]["insertIds"], again
    client.load_collection(name)
    wait_loaded(client, name)
    counted = client.query(name, output_fields=["count(*)"], consistency_level="Strong")
    assert counted[0]["count(*)"] == 40
    client.drop_collection(name)
