"""The cluster writer's loads: placements on query workers registered through the catalog's
real API, load state from their acks, the coordinator's repairs, replicas and resource groups
from the placement. A real Engine (cluster=True) on SQLite, and on PostgreSQL (``cluster``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.distribution.coordinator import Coordinator
from sheafdb.engine.distribution.loaded_bytes import load_target
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState
from sheafdb.engine.resource_groups import DEFAULT_RESOURCE_GROUP, ResourceGroupConfig
from sheafdb.engine.write.shard_writer import ShardWriter
from sheafdb.errors import MemoryLimitExceeded, ParameterInvalid, ResourceGroupNodeNotEnough
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.placement_rows import SegmentAssignment, WorkerRecord
from sheafdb.storage.records import LoadConfigRecord
from tests.engine.log_owners import attach_log_owner, take_log

DB = "default"
DIM = 16
SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
        FieldSchema("body", DataType.VARCHAR, max_length=4096),
    ),
)
FLAT = {"index_type": "FLAT", "metric_type": "L2"}
LEASE_S = 600.0  # workers in these tests live until a test kills them

OpenEngine = Callable[[], Engine]


def rows(start: int, n: int) -> pa.Table:
    vecs = np.random.default_rng(start).standard_normal((n, DIM)).astype(np.float32)
    return pa.table(
        {
            "id": pa.array(np.arange(start, start + n, dtype=np.int64)),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), DIM),
            "body": pa.array(["x" * 200 + str(i) for i in range(start, start + n)]),
        }
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.cluster)])
def open_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenEngine]:
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_database")
    config = EngineConfig(
        tmp_path / "data", fsync=False, cluster=True, catalog_url=url, compaction_min_segments=None
    )
    owners: list[ShardWriter] = []

    def _open() -> Engine:
        engine = Engine(config)
        if url is not None:  # the coordinator on PostgreSQL writes through its log owner member
            owners.append(attach_log_owner(engine, url, tmp_path / f"owner{len(owners)}"))
        return engine

    yield _open
    for owner in owners:
        owner.close()


@pytest.fixture
def engine(open_engine: OpenEngine) -> Iterator[Engine]:
    eng = open_engine()
    yield eng
    eng.close()


def catalog_of(engine: Engine) -> Catalog:
    return engine._catalog


def coordinator_of(engine: Engine) -> Coordinator:
    assert engine._cluster is not None
    return engine._cluster.coordinator


def make(engine: Engine, name: str = "c", *, segments: int = 3, per: int = 40) -> None:
    engine.create_collection(DB, name, SCHEMA)
    take_log(engine, name)
    for s in range(segments):
        engine.insert(DB, name, rows(s * per, per))
        engine.flush(DB, [name])
    engine.create_index(DB, name, "vec", "", FLAT)
    engine.wait_for_index_builds(30)


def register(engine: Engine, count: int, budget: int = 10**9) -> list[int]:
    return [
        catalog_of(engine)
        .register_worker(
            WorkerRecord(
                0, f"127.0.0.1:{7000 + i}", "h", "", budget_bytes=budget, expires_at=time.time() + LEASE_S
            )
        )
        .worker_id
        for i in range(count)
    ]


def ack_all(engine: Engine) -> None:
    catalog = catalog_of(engine)
    for a in catalog.list_assignments():
        catalog.ack_segment(a.collection_id, a.replica_id, a.segment_id, a.worker_id)


def collection_id(engine: Engine, name: str = "c") -> int:
    return engine._resolve(DB, name).collection_id


def segment_ids(engine: Engine, name: str = "c") -> set[int]:
    return {s.segment_id for s in engine._resolve(DB, name).snapshot().sealed}


def check_disjoint_and_complete(engine: Engine, name: str = "c") -> None:
    catalog = catalog_of(engine)
    cid = collection_id(engine, name)
    replicas = catalog.list_replicas(cid)
    members = [w for r in replicas for w in r.worker_ids]
    assert len(members) == len(set(members))
    assignments = catalog.list_assignments(collection_id=cid)
    for r in replicas:
        mine = {a.segment_id: a.worker_id for a in assignments if a.replica_id == r.replica_id}
        assert set(mine) == segment_ids(engine, name)
        assert set(mine.values()) <= set(r.worker_ids)


def test_a_load_places_replicas_on_disjoint_workers_and_is_loaded_when_all_acked(engine: Engine) -> None:
    make(engine)
    workers = register(engine, 3)
    engine.load_collection(DB, "c", replica_number=2)
    check_disjoint_and_complete(engine)
    assert engine.get_load_state(DB, "c") is LoadState.LOADING
    assert engine.get_loading_progress(DB, "c").progress == 0
    replicas = engine.replicas.get_replicas(DB, "c")
    assert len(replicas) == 2
    assert sorted(n for r in replicas for n in r.node_ids) == sorted(workers)
    for r in replicas:
        assert all(shard.leader_id in r.node_ids for shard in r.shards)
    # Half the acks: still loading, progress in between.
    catalog = catalog_of(engine)
    first = catalog.list_assignments()[: len(catalog.list_assignments()) // 2]
    for a in first:
        catalog.ack_segment(a.collection_id, a.replica_id, a.segment_id, a.worker_id)
    assert 0 < engine.get_loading_progress(DB, "c").progress < 100
    ack_all(engine)
    assert engine.get_load_state(DB, "c") is LoadState.LOADED
    assert engine.wait_for_load(DB, "c", timeout=5) is LoadState.LOADED
    assert engine.get_loading_progress(DB, "c").progress == 100
    # The writer itself loaded nothing.
    assert engine._loads.state(engine._resolve(DB, "c")) is LoadState.NOT_LOAD


def test_a_load_without_enough_workers_or_memory_is_refused_and_nothing_is_placed(engine: Engine) -> None:
    make(engine)
    with pytest.raises(ResourceGroupNodeNotEnough, match="currentNodeNum=0"):
        engine.load_collection(DB, "c")
    register(engine, 2, budget=20_000)
    with pytest.raises(ResourceGroupNodeNotEnough, match=r"\[currentNodeNum=2\]\[expectedNodeNum=3\]"):
        engine.load_collection(DB, "c", replica_number=3)
    with pytest.raises(MemoryLimitExceeded) as refused:
        engine.load_collection(DB, "c", replica_number=2)
    assert refused.value.code == 3 and "bytes free" in refused.value.message
    assert engine.get_load_state(DB, "c") is LoadState.NOT_LOAD
    assert catalog_of(engine).list_replicas() == [] and catalog_of(engine).list_assignments() == []
    assert catalog_of(engine).get_load_config(collection_id(engine)) is None


def test_only_the_loaded_fields_count_against_the_budget(engine: Engine) -> None:
    make(engine)
    record = engine._resolve(DB, "c").record
    full = load_target(catalog_of(engine), record, LoadConfigRecord(record.collection_id)).total_bytes
    partial = load_target(
        catalog_of(engine), record, LoadConfigRecord(record.collection_id, load_fields=("id", "vec"))
    ).total_bytes
    assert partial < full
    register(engine, 1, budget=(partial + full) // 2)
    with pytest.raises(MemoryLimitExceeded):
        engine.load_collection(DB, "c")
    engine.load_collection(DB, "c", load_fields=["id", "vec"])
    ack_all(engine)
    assert engine.get_load_state(DB, "c") is LoadState.LOADED
    assert engine.loaded_fields(DB, "c") == ("id", "vec")
    with pytest.raises(ParameterInvalid, match="can't change the load field list"):
        engine.load_collection(DB, "c")


def test_a_dead_workers_segments_move_to_its_replicas_other_workers(engine: Engine) -> None:
    make(engine, segments=4)
    register(engine, 4)
    engine.load_collection(DB, "c", replica_number=2)
    ack_all(engine)
    catalog = catalog_of(engine)
    cid = collection_id(engine)
    victim_replica = catalog.list_replicas(cid)[0]
    victim = next(w for w in victim_replica.worker_ids if catalog.list_assignments(worker_id=w))
    untouched = [a for a in catalog.list_assignments(collection_id=cid) if a.worker_id != victim]
    assert catalog.renew_worker(victim, 0, expires_at=time.time() - 1)  # its lease ran out
    coordinator_of(engine).reconcile()
    check_disjoint_and_complete(engine)
    assert not catalog.list_assignments(worker_id=victim)
    [replica] = [r for r in catalog.list_replicas(cid) if r.replica_id == victim_replica.replica_id]
    assert victim not in replica.worker_ids and replica.leader_id in replica.worker_ids
    # What did not move kept its acks; the moved segments load again.
    now = {(a.replica_id, a.segment_id): a for a in catalog.list_assignments(collection_id=cid)}
    assert all(now[(a.replica_id, a.segment_id)] == a for a in untouched)
    assert engine.get_load_state(DB, "c") is LoadState.LOADING
    ack_all(engine)
    assert engine.get_load_state(DB, "c") is LoadState.LOADED


def test_a_spare_worker_takes_over_a_replica_whose_workers_all_died(engine: Engine) -> None:
    make(engine)
    a, b = register(engine, 2)
    engine.load_collection(DB, "c", replica_number=2)
    catalog = catalog_of(engine)
    catalog.renew_worker(a, 0, expires_at=time.time() - 1)
    coordinator_of(engine).reconcile()
    assert engine.get_load_state(DB, "c") is LoadState.LOADING  # a replica has no worker
    [spare] = register(engine, 1)
    coordinator_of(engine).reconcile()
    check_disjoint_and_complete(engine)
    assert sorted(w for r in catalog.list_replicas() for w in r.worker_ids) == sorted([b, spare])


def test_new_seals_are_placed_and_release_drops_the_placement(engine: Engine) -> None:
    make(engine)
    register(engine, 2)
    engine.load_collection(DB, "c")
    ack_all(engine)
    engine.insert(DB, "c", rows(1000, 10))
    engine.flush(DB, ["c"])
    coordinator_of(engine).reconcile()
    check_disjoint_and_complete(engine)
    [replica] = catalog_of(engine).list_replicas()
    newest = max(segment_ids(engine))
    [placed] = [a for a in catalog_of(engine).list_assignments() if a.segment_id == newest]
    assert placed.worker_id == replica.leader_id and not placed.loaded
    assert engine.get_load_state(DB, "c") is LoadState.LOADING
    version = catalog_of(engine).placement_version()
    engine.release_collection(DB, "c")
    assert engine.get_load_state(DB, "c") is LoadState.NOT_LOAD
    assert catalog_of(engine).list_assignments() == [] and catalog_of(engine).list_replicas() == []
    assert catalog_of(engine).placement_version() > version
    assert engine.replicas.get_replicas(DB, "c") == []


def test_compacted_segments_leave_the_placement(engine: Engine) -> None:
    make(engine, segments=4, per=10)
    register(engine, 1)
    engine.load_collection(DB, "c")
    ack_all(engine)
    before = segment_ids(engine)
    engine.compact(DB, "c")
    engine.wait_for_index_builds(30)
    deadline = time.monotonic() + 30
    while segment_ids(engine) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    coordinator_of(engine).reconcile()
    placed = {a.segment_id for a in catalog_of(engine).list_assignments()}
    assert placed == segment_ids(engine) != before


def test_a_restarted_writer_finds_load_and_placement_in_the_catalog(open_engine: OpenEngine) -> None:
    engine = open_engine()
    try:
        make(engine)
        register(engine, 2)
        engine.load_collection(DB, "c", replica_number=2)
        ack_all(engine)
        replicas = engine.replicas.get_replicas(DB, "c")
    finally:
        engine.close()
    engine = open_engine()
    try:
        assert engine.get_load_state(DB, "c") is LoadState.LOADED
        assert engine.replicas.get_replicas(DB, "c") == replicas
    finally:
        engine.close()


def test_partitions_load_and_release(engine: Engine) -> None:
    engine.create_collection(DB, "c", SCHEMA)
    engine.create_partition(DB, "c", "p1")
    take_log(engine, "c")
    engine.insert(DB, "c", rows(0, 20))
    engine.insert(DB, "c", rows(100, 20), partition="p1")
    engine.flush(DB, ["c"])
    engine.create_index(DB, "c", "vec", "", FLAT)
    engine.wait_for_index_builds(30)
    register(engine, 1)
    engine.load_partitions(DB, "c", ["p1"])
    ack_all(engine)
    assert engine.get_load_state(DB, "c", ["p1"]) is LoadState.LOADED
    assert engine.get_load_state(DB, "c", ["_default"]) is LoadState.NOT_LOAD
    p1 = engine._resolve(DB, "c").partitions["p1"]
    in_p1 = {s.segment_id for s in engine._resolve(DB, "c").snapshot().sealed if s.partition_id == p1}
    assert {a.segment_id for a in catalog_of(engine).list_assignments()} == in_p1
    engine.load_partitions(DB, "c", ["_default"])
    assert {a.segment_id for a in catalog_of(engine).list_assignments()} == segment_ids(engine)
    engine.release_partitions(DB, "c", ["p1"])
    assert {a.segment_id for a in catalog_of(engine).list_assignments()} == segment_ids(engine) - in_p1
    engine.release_partitions(DB, "c", ["_default"])
    assert engine.get_load_state(DB, "c") is LoadState.NOT_LOAD
    assert catalog_of(engine).list_replicas() == []


def test_resource_groups_hold_the_workers_and_replicas_move_between_them(engine: Engine) -> None:
    make(engine)
    workers = register(engine, 3)
    groups = engine.replicas.groups
    assert engine.replicas.describe_group(DEFAULT_RESOURCE_GROUP).nodes == tuple(workers)
    groups.create("rg1", ResourceGroupConfig(requests=1, limits=1))
    [moved] = engine.replicas.describe_group("rg1").nodes
    assert {w.worker_id: w.resource_group for w in catalog_of(engine).list_workers()}[moved] == "rg1"
    assert len(engine.replicas.describe_group(DEFAULT_RESOURCE_GROUP).nodes) == 2
    with pytest.raises(ResourceGroupNodeNotEnough):
        engine.load_collection(DB, "c", replica_number=2, resource_groups=["rg1"])
    engine.load_collection(DB, "c", replica_number=1, resource_groups=["rg1"])
    [replica] = engine.replicas.get_replicas(DB, "c")
    assert replica.resource_group == "rg1" and replica.node_ids == (moved,)
    assert engine.replicas.describe_group("rg1").num_loaded_replica == {"c": 1}
    with pytest.raises(ParameterInvalid, match="some replicas still loaded"):
        engine.replicas.drop_group("rg1")
    # TransferNode: Milvus rewrites both configs; a worker follows.
    groups.transfer_node(DEFAULT_RESOURCE_GROUP, "rg1", 1)
    assert len(engine.replicas.describe_group("rg1").nodes) == 2
    coordinator_of(engine).reconcile()
    [replica] = engine.replicas.get_replicas(DB, "c")
    assert len(replica.node_ids) == 2  # the newcomer joined the collection's replica there
    # TransferReplica: re-placed on the target group's workers.
    engine.replicas.transfer_replica("rg1", DEFAULT_RESOURCE_GROUP, DB, "c", 1)
    [replica] = engine.replicas.get_replicas(DB, "c")
    default_nodes = set(engine.replicas.describe_group(DEFAULT_RESOURCE_GROUP).nodes)
    assert replica.resource_group == DEFAULT_RESOURCE_GROUP and set(replica.node_ids) == default_nodes
    check_disjoint_and_complete(engine)
    assert {a.worker_id for a in catalog_of(engine).list_assignments()} <= default_nodes


def test_load_balance_moves_segments_inside_a_replica(engine: Engine) -> None:
    make(engine, segments=4)
    a, b = register(engine, 2)
    engine.load_collection(DB, "c")
    ack_all(engine)
    catalog = catalog_of(engine)
    source = max((a, b), key=lambda w: len(catalog.list_assignments(worker_id=w)))
    other = b if source == a else a
    moving = [x.segment_id for x in catalog.list_assignments(worker_id=source)][:1]
    engine.replicas.balance(DB, "c", source, [other], moving)
    [after] = [x for x in catalog.list_assignments() if x.segment_id == moving[0]]
    assert after == SegmentAssignment(after.collection_id, after.replica_id, moving[0], other, False)


def test_a_new_replica_number_changes_the_replicas_in_place(engine: Engine) -> None:
    make(engine)
    register(engine, 4)
    engine.load_collection(DB, "c")
    ack_all(engine)
    catalog = catalog_of(engine)
    [first] = catalog.list_replicas()
    assert len(first.worker_ids) == 4  # the group's workers all serve its one replica
    engine.load_collection(DB, "c", replica_number=2)
    check_disjoint_and_complete(engine)
    replicas = catalog.list_replicas()
    assert len(replicas) == 2 and first.replica_id in {r.replica_id for r in replicas}
    assert sorted(len(r.worker_ids) for r in replicas) == [2, 2]
    # The old replica's segments on workers it kept are still acked.
    kept = next(r for r in replicas if r.replica_id == first.replica_id)
    stayed = [a for a in catalog.list_assignments() if a.replica_id == kept.replica_id and a.loaded]
    assert stayed
    ack_all(engine)
    assert engine.get_load_state(DB, "c") is LoadState.LOADED
    engine.load_collection(DB, "c", replica_number=1)
    assert [r.replica_id for r in catalog.list_replicas()] == [first.replica_id]
    check_disjoint_and_complete(engine)


def test_loading_again_while_a_dead_workers_segments_wait_for_room_succeeds(engine: Engine) -> None:
    make(engine, segments=4)
    record = engine._resolve(DB, "c").record
    total = load_target(catalog_of(engine), record, LoadConfigRecord(record.collection_id)).total_bytes
    a, b = register(engine, 2, budget=total * 2 // 3)
    engine.load_collection(DB, "c")
    ack_all(engine)
    catalog = catalog_of(engine)
    catalog.renew_worker(a, 0, expires_at=time.time() - 1)
    coordinator_of(engine).reconcile()
    # What worker a held does not all fit on b: it waits for a worker with room.
    assert {x.worker_id for x in catalog.list_assignments()} == {b}
    assert len(catalog.list_assignments()) < len(segment_ids(engine))
    engine.load_collection(DB, "c")  # Milvus: loading a loaded collection again succeeds
    assert engine.get_load_state(DB, "c") is LoadState.LOADING
    register(engine, 1, budget=total)
    coordinator_of(engine).reconcile()
    check_disjoint_and_complete(engine)
