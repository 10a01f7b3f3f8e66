"""A cluster worker's view (engine/distribution/worker_view.py) following a real primary: it
loads exactly the sealed segments placed on it (only the loaded fields), acks them, serves the
growing rows only as its replica's leader, follows placement changes, and refuses calls for a
replica it does not hold or a placement it has not applied."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from sheafdb.engine.distribution.read_calls import ReadAnswer, ReadCall
from sheafdb.engine.distribution.worker_view import WorkerView
from sheafdb.engine.engine import Engine
from sheafdb.engine.follower import FollowerConfig
from sheafdb.engine.models import LoadState, QueryRequest, SearchRequest
from sheafdb.errors import ReplicaNotAvailable
from sheafdb.storage.catalog import CATALOG_FILE
from sheafdb.storage.placement_rows import ReplicaRecord, SegmentAssignment, WorkerRecord
from sheafdb.storage.sqlite_catalog import SqliteCatalog

DB = "default"
HNSW = {"index_type": "HNSW", "metric_type": "L2", "M": "8", "efConstruction": "32"}
PER_SEGMENT = 30


@pytest.fixture
def primary(open_engine: Callable[..., Engine]) -> Engine:
    return open_engine(share_pages=True, compaction_min_segments=None)


@pytest.fixture
def placement(primary: Engine) -> Iterator[SqliteCatalog]:
    catalog = SqliteCatalog(primary.config.data_dir / CATALOG_FILE)
    yield catalog
    catalog.close()


def _sealed(primary: Engine, kit) -> list[int]:  # type: ignore[no-untyped-def]
    """Three sealed segments of 30 rows, loaded with two of the three fields, then 5 growing rows."""
    primary.create_collection(DB, "c", kit.basic_schema())
    for start in range(0, 3 * PER_SEGMENT, PER_SEGMENT):
        primary.insert(DB, "c", kit.make_rows(range(start, start + PER_SEGMENT), seed=start))
        primary.flush(DB, ["c"])
    primary.create_index(DB, "c", "vec", "", HNSW)
    assert primary.wait_for_index_builds(timeout=60)
    primary.load_collection(DB, "c", load_fields=["id", "vec"])
    assert primary.wait_for_load(DB, "c", timeout=30) is LoadState.LOADED
    primary.insert(DB, "c", kit.make_rows(range(1000, 1005), seed=99))
    return sorted(s.segment_id for s in primary._resolve(DB, "c").snapshot().sealed)


def _workers(placement: SqliteCatalog, count: int) -> list[int]:
    return [
        placement.register_worker(WorkerRecord(0, f"127.0.0.1:{7000 + i}", "h", "")).worker_id
        for i in range(count)
    ]


def _place(
    placement: SqliteCatalog, cid: int, replicas: dict[int, tuple[tuple[int, ...], dict[int, int]]]
) -> int:
    """replica id -> (its workers, leader first; segment id -> worker)."""
    return placement.save_placement(
        cid,
        [ReplicaRecord(cid, rid, "__default_resource_group", ws, ws[0]) for rid, (ws, _) in replicas.items()],
        [
            SegmentAssignment(cid, rid, sid, wid)
            for rid, (_, segments) in replicas.items()
            for sid, wid in segments.items()
        ],
    )


def _settle(view: WorkerView, placement: SqliteCatalog) -> None:
    """Ack what the view has installed (what the runtime's heartbeat thread does) until all is."""
    for _ in range(2000):  # bounded
        view.apply_placement()
        for cid, rid, sid in view.unacked():
            placement.ack_segment(cid, rid, sid, view.worker_id)
        view.apply_placement()
        if not view.unacked() and all(all(p.assigned.values()) for p in view._placed.values()):
            # Installed and acked; the same loader pass then retires what moved away.
            assert view._loads.loader.wait_idle(60)
            return
        time.sleep(0.01)
    raise AssertionError("the worker never installed its segments")


def _call(method: str, request: object, replica: int, version: int) -> ReadCall:
    return ReadCall(method, DB, request, replica, version)  # type: ignore[arg-type]


def _ids(answer: ReadAnswer) -> list[int]:
    assert answer.error_code == 0, answer.error_message
    assert answer.result is not None
    table = answer.result.table  # type: ignore[union-attr]
    return sorted(table.column("id").to_pylist())


def test_each_worker_loads_and_serves_exactly_its_segments(
    primary: Engine, placement: SqliteCatalog, kit
) -> None:  # type: ignore[no-untyped-def]
    segments = _sealed(primary, kit)
    cid = primary._resolve(DB, "c").collection_id
    leader, other = _workers(placement, 2)
    version = _place(
        placement, cid, {1: ((leader, other), {segments[0]: leader, segments[1]: other, segments[2]: other})}
    )
    budget = 64 * 1024**2
    views = [
        WorkerView(FollowerConfig(primary.config.data_dir), placement, w, budget_bytes=budget)
        for w in (leader, other)
    ]
    try:
        for view in views:
            _settle(view, placement)
            assert view._loads.accountant.budget_bytes == budget  # the budget it registers with
        assert all(a.loaded for a in placement.list_assignments(collection_id=cid))
        version = placement.placement_version()
        everything = QueryRequest("c", filter="id >= 0", output_fields=("id",))
        got = [_ids(v.read(_call("query", everything, 1, version))) for v in views]
        # The leader: its segment and the growing rows; the other: its two segments.
        assert got[0] == [*range(0, 30), *range(1000, 1005)]
        assert got[1] == list(range(30, 90))
        # Only the placed segments and the loaded fields are held, and accounted.
        for view, expected in zip(views, ({segments[0]}, {segments[1], segments[2]}), strict=True):
            keys = view._loads.accountant.blocks()
            assert {k.segment_id for k in keys} == expected
            assert {k.name for k in keys if k.kind in ("field", "mapped")} <= {"id", "vec", "__ts"}
            assert "tag" not in {k.name for k in keys}

        # Search: the two workers' hits, merged, are the embedded engine's.
        query = kit.make_rows([45], seed=30).column("vec").to_numpy(zero_copy_only=False)[0]
        request = SearchRequest("c", np.asarray(query, dtype=np.float32).reshape(1, -1), 10)
        answers = [v.read(_call("search", request, 1, version)) for v in views]
        assert all(a.error_code == 0 and a.larger_is_better is False for a in answers)
        merged = sorted(
            (float(score), int(pk))
            for a in answers
            for pk, score in zip(a.result.ids.to_pylist(), a.result.scores, strict=True)  # type: ignore[union-attr]
        )[:10]
        expected = primary.search(DB, request)
        assert [pk for _, pk in merged] == expected.ids.to_pylist()

        # A replica this worker does not hold, a placement it cannot have applied.
        refused = views[0].read(_call("query", everything, 2, version))
        assert refused.error_code == ReplicaNotAvailable.code and refused.result is None
        ahead = views[0].read(_call("query", everything, 1, version + 1000))
        assert ahead.error_code == ReplicaNotAvailable.code

        # Deletes reach every worker; new rows only the leader.
        primary.delete(DB, "c", "id in [1, 40, 1001]")
        primary.insert(DB, "c", kit.make_rows([2000], seed=5))
        got = [_ids(v.read(_call("query", everything, 1, version))) for v in views]
        assert 1 not in got[0] and 1001 not in got[0] and 2000 in got[0]
        assert 40 not in got[1] and 2000 not in got[1]

        # The placement moves a segment: the other worker gives it up, the leader takes it.
        _place(
            placement,
            cid,
            {1: ((leader, other), {segments[0]: leader, segments[1]: leader, segments[2]: other})},
        )
        for view in views:
            _settle(view, placement)
        stale, version = version, placement.placement_version()
        # A caller still on the old placement would miss or double rows: refused by both.
        for view in views:
            assert view.read(_call("query", everything, 1, stale)).error_code == ReplicaNotAvailable.code
        got = [_ids(v.read(_call("query", everything, 1, version))) for v in views]
        assert got[1] == list(range(60, 90))
        assert set(range(30, 60)) - {40} <= set(got[0])
        assert {k.segment_id for k in views[1]._loads.accountant.blocks()} == {segments[2]}
    finally:
        for view in views:
            view.close()


def test_the_leader_serves_segments_sealed_before_they_are_placed(
    primary: Engine, placement: SqliteCatalog, kit
) -> None:  # type: ignore[no-untyped-def]
    segments = _sealed(primary, kit)
    cid = primary._resolve(DB, "c").collection_id
    (leader,) = _workers(placement, 1)
    _place(placement, cid, {1: ((leader,), {sid: leader for sid in segments})})
    view = WorkerView(FollowerConfig(primary.config.data_dir), placement, leader)
    try:
        _settle(view, placement)
        primary.flush(DB, ["c"])  # the growing rows become a segment nobody was assigned
        count = QueryRequest("c", output_fields=("count(*)",))
        for _ in range(500):  # the leader installs the new segment in the background
            answer = view.read(_call("query", count, 1, placement.placement_version()))
            if answer.error_code == 0:
                break
            assert answer.error_code == ReplicaNotAvailable.code
            time.sleep(0.01)
        assert answer.result is not None
        assert answer.result.table.column(0)[0].as_py() == 95  # type: ignore[union-attr]
    finally:
        view.close()


def test_a_read_asks_the_catalog_once_and_sees_what_was_acknowledged_before_it(
    primary: Engine, placement: SqliteCatalog, kit
) -> None:  # type: ignore[no-untyped-def]
    segments = _sealed(primary, kit)
    cid = primary._resolve(DB, "c").collection_id
    (leader,) = _workers(placement, 1)
    _place(placement, cid, {1: ((leader,), {sid: leader for sid in segments})})
    view = WorkerView(FollowerConfig(primary.config.data_dir), placement, leader)
    try:
        _settle(view, placement)
        version = placement.placement_version()
        asked: list[int] = []
        counter = view._catalog.change_counter

        def counted() -> int:
            asked.append(1)
            return counter()

        view._catalog.change_counter = counted  # type: ignore[method-assign]
        everything = QueryRequest("c", filter="id >= 0", output_fields=("id",))
        assert len(_ids(view.read(_call("query", everything, 1, version)))) == 95
        assert len(asked) == 1  # the replica check's look, not one more by the read itself

        # A catalog change (an alias) and a logged write, acknowledged just before the call.
        primary.create_alias(DB, "c", "a")
        primary.insert(DB, "c", kit.make_rows([3000], seed=3))
        by_alias = QueryRequest("a", filter="id >= 0", output_fields=("id",))
        assert 3000 in _ids(view.read(_call("query", by_alias, 1, version)))
    finally:
        view.close()
