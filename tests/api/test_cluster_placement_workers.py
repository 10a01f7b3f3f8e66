"""The cluster writer's placement served by real query workers (api/cluster/worker_runtime.py,
in this process, on the writer's SQLite catalog and files: one machine, no Ray): the writer
places, the workers load what is placed on them and ack, the writer reports Loaded from the
acks, each replica answers every row; a collection that needs 1.5x one worker's budget loads
across two; a worker that stops renewing its lease loses its segments to its replica's other
worker, which loads them, and the collection is Loaded again with no call from anyone."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pytest

from sheafdb.api.cluster.worker_config import WorkerConfig
from sheafdb.api.cluster.worker_runtime import WorkerRuntime
from sheafdb.engine.config import EngineConfig
from sheafdb.engine.distribution.loaded_bytes import load_target
from sheafdb.engine.distribution.read_calls import READ_METHOD, SECRET_METADATA_KEY, ReadAnswer, ReadCall
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState, QueryRequest
from sheafdb.errors import MemoryLimitExceeded
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.records import LoadConfigRecord

DB = "default"
DIM = 8
SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
        FieldSchema("body", DataType.VARCHAR, max_length=4096),
    ),
)
FLAT = {"index_type": "FLAT", "metric_type": "L2"}
SEGMENTS, PER_SEGMENT = 4, 100


def batch(start: int) -> pa.Table:
    vectors = np.random.default_rng(start).random((PER_SEGMENT, DIM), dtype=np.float32)
    ids = range(start, start + PER_SEGMENT)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
            "body": ["x" * 1000 for _ in ids],
        }
    )


def wait_for(what: str, check: Callable[[], bool]) -> None:
    for _ in range(3000):  # x 0.02 s, bounded; nothing timed is asserted
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.engine = Engine(
            EngineConfig(root / "writer", cluster=True, fsync=False, compaction_min_segments=None)
        )
        self.catalog = self.engine._catalog
        self.secret = self.catalog.ensure_cluster_secret()
        self.workers: list[WorkerRuntime] = []

    def start_workers(self, count: int, budget: int) -> None:
        for _ in range(count):
            n = len(self.workers)
            runtime = WorkerRuntime(
                WorkerConfig(
                    state_dir=self.root / f"w{n}", data_dir=self.root / "writer", budget_bytes=budget
                )
            )
            runtime.start()
            self.workers.append(runtime)

    def make(self) -> None:
        engine = self.engine
        engine.create_collection(DB, "c", SCHEMA)
        for segment in range(SEGMENTS):
            engine.insert(DB, "c", batch(segment * PER_SEGMENT))
            engine.flush(DB, ["c"])
        engine.create_index(DB, "c", "vec", "", FLAT)
        assert engine.wait_for_index_builds(60)

    def loaded_bytes(self, load_fields: tuple[str, ...]) -> int:
        record = self.engine._resolve(DB, "c").record
        config = LoadConfigRecord(record.collection_id, load_fields=load_fields)
        return load_target(self.catalog, record, config).total_bytes

    def count(self, worker_id: int, replica_id: int) -> int:
        address = {w.worker_id: w.address for w in self.catalog.list_workers()}[worker_id]
        call = ReadCall(
            "query",
            DB,
            QueryRequest("c", output_fields=("count(*)",)),
            replica_id,
            self.catalog.placement_version(),
        )
        with grpc.insecure_channel(address) as channel:
            raw = channel.unary_unary(READ_METHOD)(
                pickle.dumps(call), metadata=[(SECRET_METADATA_KEY, str(self.secret))], timeout=30
            )
        answer = pickle.loads(raw)
        assert isinstance(answer, ReadAnswer) and answer.error_code == 0, answer
        assert answer.result is not None
        return int(answer.result.table.column(0)[0].as_py())  # type: ignore[union-attr]

    def rows_per_replica(self) -> dict[int, int]:
        """Each replica's rows, summed over its workers (each counts the segments placed on it)."""
        return {
            r.replica_id: sum(
                self.count(w, r.replica_id) for w in r.worker_ids if self._holds(w, r.replica_id)
            )
            for r in self.catalog.list_replicas()
        }

    def _holds(self, worker_id: int, replica_id: int) -> bool:
        return any(a.replica_id == replica_id for a in self.catalog.list_assignments(worker_id=worker_id))

    def close(self) -> None:
        for runtime in self.workers:
            runtime.stop()
        self.engine.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    world = Cluster(tmp_path)
    try:
        yield world
    finally:
        world.close()


def test_two_replicas_loaded_from_the_workers_acks_and_a_dead_workers_segments_reloaded(
    cluster: Cluster,
) -> None:
    cluster.make()
    cluster.start_workers(3, budget=256 * 1024**2)
    cluster.engine.load_collection(DB, "c", replica_number=2, load_fields=["id", "vec"])
    assert cluster.engine.wait_for_load(DB, "c", timeout=60) is LoadState.LOADED
    replicas = cluster.catalog.list_replicas()
    assert len(replicas) == 2
    assert set(replicas[0].worker_ids).isdisjoint(replicas[1].worker_ids)
    assert set(cluster.rows_per_replica().values()) == {SEGMENTS * PER_SEGMENT}

    # The replica with two workers loses the one holding segments: it stops renewing its lease.
    wide = next(r for r in replicas if len(r.worker_ids) == 2)
    victim_id = next(w for w in wide.worker_ids if cluster._holds(w, wide.replica_id))
    [victim] = [w for w in cluster.workers if w.worker_id == victim_id]
    victim.stop()
    cluster.workers.remove(victim)

    def served_without_the_victim() -> bool:
        assignments = cluster.catalog.list_assignments()
        return all(a.worker_id != victim_id and a.loaded for a in assignments) and (
            cluster.engine.get_load_state(DB, "c") is LoadState.LOADED
        )

    wait_for("the victim's segments reloaded on its replica's other worker", served_without_the_victim)
    [survivor] = [w for w in wide.worker_ids if w != victim_id]
    assert {a.worker_id for a in cluster.catalog.list_assignments() if a.replica_id == wide.replica_id} == {
        survivor
    }
    assert set(cluster.rows_per_replica().values()) == {SEGMENTS * PER_SEGMENT}


def test_a_collection_of_one_and_a_half_budgets_loads_across_two_workers(cluster: Cluster) -> None:
    cluster.make()
    needed = cluster.loaded_bytes(("id", "vec"))
    budget = needed * 3 // 4  # the collection is 1.5x one worker's budget (4/3 of it, here)
    cluster.start_workers(1, budget=budget)
    with pytest.raises(MemoryLimitExceeded, match="memory limit exceeded"):
        cluster.engine.load_collection(DB, "c", load_fields=["id", "vec"])
    assert cluster.catalog.list_assignments() == []
    cluster.start_workers(1, budget=budget)
    cluster.engine.load_collection(DB, "c", load_fields=["id", "vec"])
    assert cluster.engine.wait_for_load(DB, "c", timeout=60) is LoadState.LOADED
    [replica] = cluster.catalog.list_replicas()
    holders = {a.worker_id for a in cluster.catalog.list_assignments()}
    assert holders == set(replica.worker_ids) and len(holders) == 2
    assert cluster.rows_per_replica() == {replica.replica_id: SEGMENTS * PER_SEGMENT}
