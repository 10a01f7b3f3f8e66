"""Query workers as Ray actors (api/cluster/ray_pool.py) on a real 2-node Ray cluster, following
a writer whose catalog and log are in a real PostgreSQL and whose segments are in a real S3
server: each worker registers, loads exactly the segments placed on it
and only the loaded fields (the server's GETs and the worker's cache counted per object), acks
them, answers Contract C read calls over gRPC (the same hits as the embedded engine), refuses
a replica it does not hold and callers without the cluster secret; SIGKILLed, Ray restarts it
and it registers again (same id, new incarnation) and reloads its segments by itself."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pytest

from sheafdb.api.cluster.ray_pool import RayWorkerPool, WorkerHandle
from sheafdb.api.cluster.worker_config import WorkerConfig
from sheafdb.engine.config import EngineConfig
from sheafdb.engine.distribution.read_calls import READ_METHOD, SECRET_METADATA_KEY, ReadAnswer, ReadCall
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState, QueryRequest, SearchRequest
from sheafdb.errors import ReplicaNotAvailable
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.catalog import Catalog, open_catalog
from sheafdb.storage.placement_rows import ReplicaRecord, SegmentAssignment
from tests.cluster.conftest import RayCluster
from tests.services import S3Server

pytestmark = pytest.mark.cluster

DB = "default"
DIM = 8
SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
        FieldSchema("title", DataType.VARCHAR, max_length=64),
        FieldSchema("body", DataType.VARCHAR, max_length=4096),
    ),
)
HNSW = {"index_type": "HNSW", "metric_type": "L2", "M": "8", "efConstruction": "32"}
SEGMENTS, PER_SEGMENT = 4, 100
WAIT_STEPS = 6000  # x 0.02 s: every wait is bounded, none is asserted


def batch(start: int) -> pa.Table:
    vectors = np.random.default_rng(start).random((PER_SEGMENT, DIM), dtype=np.float32)
    ids = range(start, start + PER_SEGMENT)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
            "title": [f"title {i}" for i in ids],
            "body": ["x" * 2000 for _ in ids],
        }
    )


def wait_for(what: str, check: Callable[[], bool]) -> None:
    for _ in range(WAIT_STEPS):
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


@dataclass
class World:
    engine: Engine
    catalog: Catalog
    pool: RayWorkerPool
    workers: list[WorkerHandle]
    worker_ids: dict[str, int]  # actor name -> worker id
    segments: list[int]
    collection_id: int
    secret: int
    bucket: str
    state_root: Path


@pytest.fixture(scope="module")
def database(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this module's catalog and log."""
    import psycopg

    name = f"workers_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def world(
    ray_cluster: RayCluster, s3_server: S3Server, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A writer engine on PostgreSQL + S3 with 4 sealed segments loaded (id and vec only), and
    one query-worker actor on each Ray node."""
    credentials = s3_server.credentials_env()
    saved = {k: os.environ.get(k) for k in credentials}
    os.environ.update(credentials)  # the writer's; the actors get them through Ray's runtime_env
    base = tmp_path_factory.mktemp("workers")
    bucket = f"sheafdb-workers-{uuid.uuid4().hex[:8]}"
    url = s3_server.url(bucket, "db") + "&allow_bucket_creation=true"
    engine = Engine(
        EngineConfig(
            base / "writer",
            catalog_url=database,
            objects_url=url,
            fsync=False,
            restore_loads=False,
            compaction_min_segments=None,
        )
    )
    catalog = open_catalog(database, base / "probe")
    pool: RayWorkerPool | None = None
    try:
        engine.create_collection(DB, "c", SCHEMA)
        for segment in range(SEGMENTS):
            engine.insert(DB, "c", batch(segment * PER_SEGMENT))
            engine.flush(DB, ["c"])
        engine.create_index(DB, "c", "vec", "", HNSW)
        assert engine.wait_for_index_builds(60)
        engine.load_collection(DB, "c", load_fields=["id", "vec"])
        assert engine.wait_for_load(DB, "c", timeout=60) is LoadState.LOADED
        secret = catalog.ensure_cluster_secret()
        worker = WorkerConfig(
            state_dir=base / "state", catalog_url=database, objects_url=url, budget_bytes=256 * 1024**2
        )
        pool = RayWorkerPool(
            ray_cluster.address,
            worker,
            namespace=f"workers-{uuid.uuid4().hex[:6]}",  # not another module's detached workers
            runtime_env={"env_vars": credentials},
        )
        workers = pool.start()
        assert len(workers) == 2 and len({w.node_id for w in workers}) == 2
        by_address = {w.address: w.worker_id for w in catalog.list_workers()}
        coll = engine._resolve(DB, "c")
        yield World(
            engine,
            catalog,
            pool,
            workers,
            {w.name: by_address[w.address] for w in workers},
            sorted(s.segment_id for s in coll.snapshot().sealed),
            coll.collection_id,
            secret,
            bucket,
            base / "state",
        )
    finally:
        if pool is not None:
            pool.stop()
        catalog.close()
        engine.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def read(address: str, call: ReadCall, secret: str | None) -> ReadAnswer:
    with grpc.insecure_channel(address) as channel:
        metadata = [] if secret is None else [(SECRET_METADATA_KEY, secret)]
        raw = channel.unary_unary(READ_METHOD)(pickle.dumps(call), metadata=metadata, timeout=30)
    answer = pickle.loads(raw)
    assert isinstance(answer, ReadAnswer)
    return answer


def all_acked(world: World) -> bool:
    rows = world.catalog.list_assignments(collection_id=world.collection_id)
    return bool(rows) and all(a.loaded for a in rows)


def cached_objects(world: World, name: str) -> list[str]:
    cache = world.state_root / name / "object-cache"
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


def test_workers_serve_on_their_ray_nodes_address(world: World) -> None:
    import ray

    # Each worker binds and registers the address its Ray node is reached by (on this loopback
    # cluster 127.0.0.1; on a real one the node's IP), so proxies on other machines can call it.
    node_addresses = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
    registered = {w.address for w in world.catalog.list_workers()}
    for handle in world.workers:
        host, port = handle.address.rsplit(":", 1)
        assert host == node_addresses[handle.node_id] and int(port) > 0
        assert handle.address in registered


def test_workers_load_their_segments_only_and_answer(world: World, s3_server: S3Server) -> None:
    leader, other = world.workers
    ids = world.worker_ids
    segs = world.segments
    assert len(segs) == SEGMENTS
    before = s3_server.get_requests(world.bucket, code="206")
    world.catalog.save_placement(
        world.collection_id,
        [
            ReplicaRecord(
                world.collection_id,
                1,
                "__default_resource_group",
                (ids[leader.name], ids[other.name]),
                ids[leader.name],
            )
        ],
        [
            SegmentAssignment(world.collection_id, 1, sid, ids[leader.name if i < 2 else other.name])
            for i, sid in enumerate(segs)
        ],
    )
    wait_for("every segment acked", lambda: all_acked(world))
    # Each worker fetched exactly its two segments' id, vec, __ts and index objects, once each.
    fetched = {w.name: cached_objects(world, w.name) for w in world.workers}
    for handle, mine in ((leader, segs[:2]), (other, segs[2:])):
        names = fetched[handle.name]
        assert {n.split("/")[-1] for n in names if n.endswith(".arrow")} == {
            "id.arrow",
            "vec.arrow",
            "__ts.arrow",
        }
        assert len(names) == len(mine) * 4, names
        assert {n.split("/")[3] for n in names} == {str(sid) for sid in mine}, names
    reads = s3_server.get_requests(world.bucket, code="206") - before
    assert reads == sum(len(n) for n in fetched.values())

    version = world.catalog.placement_version()
    secret = str(world.secret)
    count = QueryRequest("c", output_fields=("count(*)",))
    counts = [read(w.address, ReadCall("query", DB, count, 1, version), secret) for w in world.workers]
    assert [a.error_code for a in counts] == [0, 0]
    assert [a.result.table.column(0)[0].as_py() for a in counts] == [200, 200]  # type: ignore[union-attr]

    query = batch(200).column("vec").combine_chunks().values.to_numpy().reshape(-1, DIM)[3]
    request = SearchRequest("c", query.reshape(1, -1), 10)  # row 203 itself
    answers = [read(w.address, ReadCall("search", DB, request, 1, version), secret) for w in world.workers]
    merged = sorted(
        (float(score), int(pk))
        for a in answers
        for pk, score in zip(a.result.ids.to_pylist(), a.result.scores, strict=True)  # type: ignore[union-attr]
    )[:10]
    assert [pk for _, pk in merged] == world.engine.search(DB, request).ids.to_pylist()
    assert merged[0][1] == 203

    refused = read(leader.address, ReadCall("query", DB, count, 2, version), secret)
    assert refused.error_code == ReplicaNotAvailable.code
    with pytest.raises(grpc.RpcError) as denied:
        read(leader.address, ReadCall("query", DB, count, 1, version), None)
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as wrong:
        read(leader.address, ReadCall("query", DB, count, 1, version), str(world.secret + 1))
    assert wrong.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]


def test_the_actor_processes_keep_pymilvus_client_and_pandas_out(world: World) -> None:
    """As every server process (api/client_libraries.py): Ray unpickles the actor's config
    before our code runs in its process, so nothing it imports first may pull them in."""
    import pandas  # noqa: F401 - this process maps it: the check below can fail
    import ray

    version = world.catalog.placement_version()
    count = QueryRequest("c", output_fields=("count(*)",))
    for handle in world.workers:  # a read builds tables: pyarrow's first look for pandas
        read(handle.address, ReadCall("query", DB, count, 1, version), str(world.secret))
    pids = [ray.get(handle.actor.status.remote(), timeout=60)[2] for handle in world.workers]
    assert _maps_pandas(os.getpid())
    assert [pid for pid in pids if _maps_pandas(pid)] == []


def _maps_pandas(pid: int) -> bool:
    return "/pandas/" in Path(f"/proc/{pid}/maps").read_text()


def test_a_killed_worker_is_restarted_registers_again_and_reloads(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    import ray

    caplog.set_level(logging.INFO, logger="sheafdb.cluster.pool")

    wait_for("every segment acked", lambda: all_acked(world))
    victim = world.workers[1]
    worker_id = world.worker_ids[victim.name]
    incarnation = next(w.incarnation for w in world.catalog.list_workers() if w.worker_id == worker_id)
    pid = ray.get(victim.actor.pid.remote())
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        record = next(w for w in world.catalog.list_workers() if w.worker_id == worker_id)
        return record.incarnation > incarnation

    wait_for("the worker registered again", restarted)
    wait_for("its segments reloaded and acked", lambda: all_acked(world))
    new_pid = ray.get(victim.actor.pid.remote())
    assert new_pid != pid
    # The writer's pool saw it go and come back.
    wait_for(
        "the pool logged the restart",
        lambda: any(f"{victim.name} restarted" in r.getMessage() for r in caplog.records),
    )
    record = next(w for w in world.catalog.list_workers() if w.worker_id == worker_id)
    assert record.incarnation == incarnation + 1
    address = ray.get(victim.actor.start.remote())
    assert record.address == address
    count = QueryRequest("c", output_fields=("count(*)",))
    answer = read(
        address, ReadCall("query", DB, count, 1, world.catalog.placement_version()), str(world.secret)
    )
    assert answer.error_code == 0, answer.error_message
    assert answer.result.table.column(0)[0].as_py() == 200  # type: ignore[union-attr]


def test_a_node_that_joins_gets_a_worker(
    world: World, ray_cluster: RayCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sheafdb.cluster.pool")
    before = {w.worker_id for w in world.catalog.list_workers()}
    node = ray_cluster.cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1", include_dashboard=False)
    try:
        ray_cluster.cluster.wait_for_nodes()
        joined = node.node_id
        wait_for(
            "the pool started a worker on the new node",
            lambda: joined in {w.node_id for w in world.pool.workers},
        )
        (handle,) = [w for w in world.pool.workers if w.node_id == joined]
        wait_for(
            "the new worker registered",
            lambda: any(
                w.address == handle.address and w.worker_id not in before
                for w in world.catalog.list_workers()
            ),
        )
        assert any(f"node {joined[:12]} joined" in r.getMessage() for r in caplog.records)
    finally:
        # The session's other modules expect the fixture's two nodes.
        ray_cluster.cluster.remove_node(node)
