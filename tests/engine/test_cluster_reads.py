"""cluster_reads: routes from real placement rows (SQLite catalog), reads fanned out to real
engines standing in for a replica's query workers (each answers over its own rows, as a worker
answers over the segments placed on it), retries excluding a failed worker, waits for a
complete replica, refuses an unloaded collection. The gRPC transport and the Ray workers are
proven end to end in tests/cluster/."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from sheafdb.engine.distribution.cluster_reads import CALL_METADATA, ClusterReads
from sheafdb.engine.distribution.read_calls import ReadAnswer, ReadCall
from sheafdb.engine.distribution.reduce import metric_for
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import HybridSearchRequest, LoadState, QueryRequest, Ranker, SearchRequest
from sheafdb.errors import CollectionNotLoaded, ReplicaNotAvailable, ServiceUnavailable, SheafError
from sheafdb.storage.placement_rows import ReplicaRecord, SegmentAssignment, WorkerRecord

from .split_world import DB, DIM, assert_same_search, split_engines

engines = pytest.fixture(scope="module")(split_engines)

LEASE_S = 3600.0


class EngineWorkers:
    """WorkerClient answering each address from an engine, as a query worker answers."""

    def __init__(self, by_address: dict[str, Engine]) -> None:
        self.by_address = by_address
        self.down: set[str] = set()
        self.refusing: set[str] = set()
        self.calls: list[tuple[str, ReadCall, tuple[tuple[str, str], ...]]] = []

    def read(
        self, address: str, call: ReadCall, metadata: Sequence[tuple[str, str]], timeout_s: float | None
    ) -> ReadAnswer:
        self.calls.append((address, call, tuple(metadata)))
        if address in self.down:
            raise ReplicaNotAvailable(f"query worker {address} did not answer: UNAVAILABLE")
        if address in self.refusing:
            return ReadAnswer(None, ReplicaNotAvailable.code, "replica not available")
        engine = self.by_address[address]
        try:
            if call.method == "search":
                assert isinstance(call.request, SearchRequest)
                record = engine.describe_collection(DB, call.request.collection)
                indexes = engine._catalog.list_indexes(record.collection_id)
                metric = metric_for(record.schema, indexes, call.request.anns_field, call.request.metric_type)
                return ReadAnswer(engine.search(call.db, call.request), larger_is_better=metric != "L2")
            assert isinstance(call.request, QueryRequest)
            return ReadAnswer(engine.query(call.db, call.request))
        except SheafError as exc:
            return ReadAnswer(None, exc.code, exc.message)

    def close(self) -> None:
        pass


@pytest.fixture
def cluster(engines) -> Iterator[tuple[ClusterReads, EngineWorkers, Engine, int]]:
    """Replica 1 = workers "left" + "right" (the rows split), replica 2 = worker "whole"."""
    whole, left, right = engines
    catalog = whole._catalog
    cid = whole.describe_collection(DB, "c").collection_id
    ids = {}
    for address in ("left", "right", "whole"):
        ids[address] = catalog.register_worker(
            WorkerRecord(0, address, "host", "", expires_at=time.time() + LEASE_S)
        ).worker_id
    replicas = [
        ReplicaRecord(cid, 1, "__default_resource_group", (ids["left"], ids["right"]), ids["left"]),
        ReplicaRecord(cid, 2, "__default_resource_group", (ids["whole"],), ids["whole"]),
    ]
    assignments = [
        SegmentAssignment(cid, 1, 1001, ids["left"], True),
        SegmentAssignment(cid, 1, 1002, ids["right"], True),
        SegmentAssignment(cid, 2, 1001, ids["whole"], True),
        SegmentAssignment(cid, 2, 1002, ids["whole"], True),
    ]
    catalog.save_placement(cid, replicas, assignments)
    workers = EngineWorkers({"left": left, "right": right, "whole": whole})
    reads = ClusterReads(catalog, workers, wait_s=1.0)
    yield reads, workers, whole, cid
    reads.close()
    catalog.drop_placement(cid)
    for worker_id in ids.values():
        catalog.remove_worker(worker_id)


def vectors(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, DIM)).astype(np.float32)


def test_reads_alternate_replicas_and_answer_as_one_engine(cluster) -> None:
    reads, workers, whole, _ = cluster
    request = SearchRequest("c", vectors(1), limit=6, offset=1, anns_field="vec", output_fields=("num",))
    for _ in range(4):
        assert_same_search(reads.search(DB, request), whole.search(DB, request))
    replicas = [call.replica_id for _, call, _ in workers.calls]
    assert sorted(set(replicas)) == [1, 2]
    # Replica 1 is asked through both its workers, each for the whole window.
    assert {a for a, c, _ in workers.calls if c.replica_id == 1} == {"left", "right"}
    assert all(c.request.offset == 0 for _, c, _ in workers.calls)
    hybrid = HybridSearchRequest(
        "c",
        (
            SearchRequest("c", vectors(2), 9, anns_field="vec"),
            SearchRequest("c", vectors(3), 9, anns_field="vec2"),
        ),
        Ranker("rrf", {}),
        limit=5,
    )
    for _ in range(2):
        assert_same_search(reads.hybrid_search(DB, hybrid), whole.hybrid_search(DB, hybrid))
    count = QueryRequest("c", output_fields=("count(*)",))
    assert reads.query(DB, count).table.to_pydict() == whole.query(DB, count).table.to_pydict()
    assert reads.load_state(DB, "c") is LoadState.LOADED
    assert reads.collection_schema(DB, "c") == whole.describe_collection(DB, "c").schema


@pytest.mark.parametrize("failure", ["down", "refusing"])
def test_a_failed_worker_retries_the_whole_read_on_the_other_replica(cluster, failure) -> None:
    reads, workers, whole, _ = cluster
    getattr(workers, failure).add("right")
    request = QueryRequest("c", filter="num == 2", output_fields=("tag",))
    want = whole.query(
        DB, QueryRequest("c", filter="num == 2", output_fields=("tag",), order_by_primary_key=True)
    )
    for _ in range(3):
        assert reads.query(DB, request).table.to_pydict() == want.table.to_pydict()
    # Every read that tried replica 1 went on to replica 2.
    assert any(a == "right" for a, _, _ in workers.calls)
    assert sum(a == "whole" for a, _, _ in workers.calls) == 3


def test_metadata_goes_to_the_workers(cluster) -> None:
    reads, workers, _, _ = cluster
    token = CALL_METADATA.set((("authorization", "dXNlcjpwYXNz"),))
    try:
        reads.query(DB, QueryRequest("c", filter="id < 3"))
    finally:
        CALL_METADATA.reset(token)
    assert {md for _, _, md in workers.calls} == {(("authorization", "dXNlcjpwYXNz"),)}


def test_no_complete_replica_waits_then_fails(cluster) -> None:
    reads, workers, whole, cid = cluster
    workers.down.update({"left", "whole"})
    with pytest.raises(ServiceUnavailable, match=r"no available replica of collection c.*did not answer"):
        reads.search(DB, SearchRequest("c", vectors(4), 3, anns_field="vec"))
    # An assignment not acked yet: the replica is not complete, and the read waits for it.
    catalog = whole._catalog
    replicas = catalog.list_replicas(cid)
    pending = [
        SegmentAssignment(a.collection_id, a.replica_id, a.segment_id, a.worker_id, False)
        for a in catalog.list_assignments(collection_id=cid)
    ]
    catalog.drop_placement(cid)
    catalog.save_placement(cid, replicas, pending)
    workers.down.clear()
    assert reads.load_state(DB, "c") is LoadState.LOADING
    with pytest.raises(ServiceUnavailable):
        reads.query(DB, QueryRequest("c", filter="id < 3"))
    for a in pending:
        catalog.ack_segment(a.collection_id, a.replica_id, a.segment_id, a.worker_id)
    assert reads.query(DB, QueryRequest("c", filter="id < 3")).table.num_rows == 3


def test_an_unloaded_collection_fails_at_once(cluster) -> None:
    reads, workers, whole, cid = cluster
    whole.release_collection(DB, "c")  # as the writer's release: no load config, no placement
    whole._catalog.drop_placement(cid)
    try:
        with pytest.raises(
            CollectionNotLoaded, match=rf"failed to search: collection not loaded\[collection={cid}\]"
        ):
            reads.search(DB, SearchRequest("c", vectors(5), 3, anns_field="vec"))
        assert reads.load_state(DB, "c") is LoadState.NOT_LOAD
    finally:
        whole.load_collection(DB, "c")
        whole.wait_for_loads(60)
