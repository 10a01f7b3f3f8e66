"""Compaction into large segments (compaction.py): which groups merge while writes go on and
when a partition is idle, and the merged segment indexed before it replaces the small ones,
with deletes, upserts, index changes and truncates racing the build."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.engine import Engine
from sheafdb.engine.models import IndexState, LoadState, SearchRequest
from sheafdb.engine.snapshot import DataEvent, SealedSegment
from sheafdb.engine.write.auto_compaction import IdleTracker
from sheafdb.engine.write.compaction import CompactionPolicy

HNSW = {"index_type": "HNSW", "metric_type": "L2", "M": "8"}
ROWS_PER_SEAL = 1000


NOT_IDLE: frozenset[int] = frozenset()


def sealed(e: Engine) -> tuple[SealedSegment, ...]:
    return e._resolve("default", "c").snapshot().sealed


def fill(e: Engine, kit, seals: int, *, start: int = 0) -> None:
    for first in range(start, start + seals * ROWS_PER_SEAL, ROWS_PER_SEAL):
        e.insert("default", "c", kit.make_rows(range(first, first + ROWS_PER_SEAL), seed=first))
        e.flush("default", ["c"])


def policy_for(e: Engine, *, halves: float, min_segments: int = 100) -> CompactionPolicy:
    """A target of ``2 * halves`` current segments (all segments are about the same size)."""
    seg_bytes = sealed(e)[0].nbytes
    return CompactionPolicy(
        seal_bytes=e.config.seal_bytes, target_bytes=int(seg_bytes * 2 * halves), min_segments=min_segments
    )


def test_large_merge_waits_until_a_group_reaches_half_the_target(
    open_engine: Callable[..., Engine], kit
) -> None:
    e = open_engine(compaction_min_segments=None, seal_bytes=64 * 1024 * 1024)
    e.create_collection("default", "c", kit.basic_schema())
    fill(e, kit, 3)
    coll = e._resolve("default", "c")
    policy = policy_for(e, halves=3.5)  # half the target: 3.5 segments
    assert e._compactor.compact(coll, policy, NOT_IDLE) == 0
    fill(e, kit, 2, start=3 * ROWS_PER_SEAL)
    assert e._compactor.compact(coll, policy, NOT_IDLE) == 4  # the four oldest
    after = sealed(e)
    assert sorted(s.num_rows for s in after) == [ROWS_PER_SEAL, 4 * ROWS_PER_SEAL]
    # The merged segment is past half the target: never a large candidate again.
    fill(e, kit, 3, start=5 * ROWS_PER_SEAL)
    assert e._compactor.compact(coll, policy, NOT_IDLE) == 4
    assert sorted(s.num_rows for s in sealed(e)) == [4 * ROWS_PER_SEAL, 4 * ROWS_PER_SEAL]
    assert kit.visible_ids(e, "c") == list(range(8 * ROWS_PER_SEAL))


def test_packing_fills_groups_up_to_the_target(open_engine: Callable[..., Engine], kit) -> None:
    e = open_engine(compaction_min_segments=None, seal_bytes=64 * 1024 * 1024)
    e.create_collection("default", "c", kit.basic_schema())
    fill(e, kit, 7)
    coll = e._resolve("default", "c")
    policy = policy_for(e, halves=1.6)  # a target of three segments and a bit
    assert e._compactor.compact(coll, policy, NOT_IDLE, manual=True) == 6
    assert sorted(s.num_rows for s in sealed(e)) == [ROWS_PER_SEAL, 3 * ROWS_PER_SEAL, 3 * ROWS_PER_SEAL]
    assert e._compactor.compact(coll, policy, NOT_IDLE, manual=True) == 0  # nothing fits together
    assert kit.visible_ids(e, "c") == list(range(7 * ROWS_PER_SEAL))


def test_an_idle_partition_packs_its_tail_but_leaves_a_segment_past_half_the_target(
    open_engine: Callable[..., Engine], kit
) -> None:
    e = open_engine(compaction_min_segments=None, seal_bytes=64 * 1024 * 1024)
    e.create_collection("default", "c", kit.basic_schema())
    fill(e, kit, 6)
    coll = e._resolve("default", "c")
    policy = policy_for(e, halves=3.5)
    assert e._compactor.compact(coll, policy, NOT_IDLE) == 4
    idle = frozenset(coll.partitions.values())
    assert e._compactor.compact(coll, policy, idle) == 2  # the two left, not the merged four
    assert sorted(s.num_rows for s in sealed(e)) == [2 * ROWS_PER_SEAL, 4 * ROWS_PER_SEAL]
    assert e._compactor.compact(coll, policy, idle) == 0
    # A manual pack takes every segment under the target: the six rows' worth fit in one.
    assert e._compactor.compact(coll, policy, NOT_IDLE, manual=True) == 2
    assert [s.num_rows for s in sealed(e)] == [6 * ROWS_PER_SEAL]
    assert kit.visible_ids(e, "c") == list(range(6 * ROWS_PER_SEAL))


def test_tiny_segments_still_merge_while_writes_go_on(open_engine: Callable[..., Engine], kit) -> None:
    e = open_engine(compaction_min_segments=None)  # 64 MiB seals: every flush here is tiny
    e.create_collection("default", "c", kit.basic_schema())
    fill(e, kit, 3)
    coll = e._resolve("default", "c")
    policy = CompactionPolicy(e.config.seal_bytes, e.config.segment_target_bytes, min_segments=3)
    assert e._compactor.compact(coll, policy, NOT_IDLE) == 3
    assert len(sealed(e)) == 1


def test_idle_tracker_reports_a_partition_unchanged_for_the_idle_time(
    open_engine: Callable[..., Engine], kit
) -> None:
    e = open_engine(compaction_min_segments=None)
    e.create_collection("default", "c", kit.basic_schema())
    coll = e._resolve("default", "c")
    partition_id = coll.partitions["_default"]
    now = [100.0]
    tracker = IdleTracker(10.0, lambda: now[0])
    assert tracker.idle_partitions(coll) == frozenset()  # first look
    now[0] += 9.9
    assert tracker.idle_partitions(coll) == frozenset()
    now[0] += 0.1
    assert tracker.idle_partitions(coll) == {partition_id}
    e.insert("default", "c", kit.make_rows(range(3)))  # a growing write resets it
    now[0] += 100
    assert tracker.idle_partitions(coll) == frozenset()
    e.flush("default", ["c"])  # so does a seal
    now[0] += 5
    assert tracker.idle_partitions(coll) == frozenset()
    now[0] += 10
    assert tracker.idle_partitions(coll) == {partition_id}
    tracker.forget_others(set())
    assert tracker.idle_partitions(coll) == frozenset()


def test_background_packs_a_partition_once_it_is_idle(open_engine: Callable[..., Engine], kit) -> None:
    # min_segments out of reach and a huge target: only the idle rule can merge anything.
    e = open_engine(compaction_min_segments=100, compaction_interval_s=0.05)
    e.create_collection("default", "c", kit.basic_schema())
    fill(e, kit, 3)
    deadline = time.monotonic() + 30
    while len(sealed(e)) > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(sealed(e)) == 1
    assert kit.visible_ids(e, "c") == list(range(3 * ROWS_PER_SEAL))


def indexed_collection(e: Engine, kit, seals: int = 3) -> None:
    e.create_collection("default", "c", kit.basic_schema())
    e.create_index("default", "c", "vec", "", HNSW)
    fill(e, kit, seals)
    assert e.wait_for_index_builds(60)


def vec_state(e: Engine) -> IndexState:
    return e.describe_indexes("default", "c", field_name="vec")[0].state


def test_merged_segment_arrives_with_its_index(open_engine: Callable[..., Engine], kit) -> None:
    e = open_engine(compaction_min_segments=None)
    indexed_collection(e, kit)
    coll = e._resolve("default", "c")
    arrivals: list[SealedSegment] = []
    states: list[IndexState] = []

    def on_event(event: DataEvent) -> None:
        if event.kind == "compacted":
            arrivals.extend(event.added)
            states.append(vec_state(e))

    coll.add_listener(on_event)
    assert vec_state(e) is IndexState.FINISHED
    assert e.compact("default", "c") == 3
    assert len(arrivals) == 1 and "vec" in arrivals[0].index_files
    assert states == [IndexState.FINISHED]  # DescribeIndex never went back
    merged = sealed(e)[0]
    records = e._catalog.list_segment_indexes(coll.collection_id)
    assert [(r.segment_id, r.path) for r in records] == [(merged.segment_id, merged.index_files["vec"].path)]
    assert e.wait_for_index_builds(60)
    assert e._catalog.list_segment_indexes(coll.collection_id) == records  # no second build
    e.close()
    again = open_engine(compaction_min_segments=None)
    assert "vec" in sealed(again)[0].index_files
    assert vec_state(again) is IndexState.FINISHED


def around_the_build(
    e: Engine, before: Callable[[], None] = lambda: None, after: Callable[[], None] = lambda: None
) -> None:
    """Run ``before`` once the merged files are written, ``after`` once its indexes are built
    (both before the swap)."""
    compactor = e._compactor
    build = compactor._build_indexes

    def build_between(coll, staged):  # type: ignore[no-untyped-def]
        before()
        built = build(coll, staged)
        after()
        return built

    compactor._build_indexes = build_between  # type: ignore[method-assign]


def test_a_delete_and_an_upsert_during_the_build_survive_the_swap(
    open_engine: Callable[..., Engine], kit
) -> None:
    e = open_engine(compaction_min_segments=None)
    indexed_collection(e, kit)
    new_vector = np.full((1, kit.DIM), 7.0, dtype=np.float32)

    def write() -> None:
        e.delete("default", "c", "id in [5, 1500]")
        e.upsert(
            "default",
            "c",
            pa.table(
                {
                    "id": pa.array([7], pa.int64()),
                    "vec": pa.FixedSizeListArray.from_arrays(pa.array(new_vector.ravel()), kit.DIM),
                    "tag": pa.array(["new"]),
                }
            ),
        )

    around_the_build(e, before=write)
    assert e.compact("default", "c") == 3
    expected = [i for i in range(3 * ROWS_PER_SEAL) if i not in (5, 1500)]
    assert kit.visible_ids(e, "c") == expected
    table = kit.visible_table(e, "default", "c")
    assert table.filter(pa.compute.equal(table.column("id"), 7)).column("tag").to_pylist() == ["new"]
    e.close()
    again = open_engine(compaction_min_segments=None)
    assert kit.visible_ids(again, "c") == expected
    again.flush("default", ["c"])
    assert again.compact("default", "c") == 2
    assert kit.visible_ids(again, "c") == expected


def test_an_index_dropped_during_the_build_is_not_registered(open_engine: Callable[..., Engine], kit) -> None:
    e = open_engine(compaction_min_segments=None)
    indexed_collection(e, kit)
    cid = e._resolve("default", "c").collection_id
    around_the_build(e, after=lambda: e.drop_index("default", "c", "vec"))
    assert e.compact("default", "c") == 3
    merged = sealed(e)[0]
    assert merged.index_files == {}
    assert e._catalog.list_segment_indexes(cid) == []
    assert not [p for p in e._store.list(merged.directory) if "index_" in p]
    assert e.wait_for_index_builds(60)
    assert sealed(e)[0].index_files == {}


def test_an_index_created_during_the_build_is_built_after_the_swap(
    open_engine: Callable[..., Engine], kit
) -> None:
    e = open_engine(compaction_min_segments=None)
    e.create_collection("default", "c", kit.basic_schema())
    fill(e, kit, 3)
    around_the_build(e, after=lambda: e.create_index("default", "c", "vec", "", HNSW))
    assert e.compact("default", "c") == 3
    assert sealed(e)[0].index_files == {}  # swapped without it: the build follows
    assert e.wait_for_index_builds(60)
    assert "vec" in sealed(e)[0].index_files
    assert vec_state(e) is IndexState.FINISHED


@pytest.mark.parametrize("removal", ["truncate", "drop"])
def test_a_merge_racing_a_truncate_or_drop_is_abandoned(
    open_engine: Callable[..., Engine], kit, removal: str
) -> None:
    e = open_engine(compaction_min_segments=None)
    indexed_collection(e, kit)
    coll = e._resolve("default", "c")
    if removal == "truncate":
        around_the_build(e, after=lambda: e.truncate_collection("default", "c"))
    else:
        around_the_build(e, after=lambda: e.drop_collection("default", "c"))
    before = set(e._store.list("collections"))
    assert e._compactor.compact(coll, policy_for(e, halves=10), NOT_IDLE, manual=True) == 0
    leftover = {p for p in e._store.list("collections") if p not in before}
    assert leftover == set()  # the merged files and their index are discarded
    if removal == "truncate":
        assert sealed(e) == ()
        assert kit.visible_ids(e, "c") == []
    assert e._catalog.list_segment_indexes(coll.collection_id) == []


def test_a_loaded_collection_serves_the_merged_segment_with_its_index(
    open_engine: Callable[..., Engine], kit
) -> None:
    e = open_engine(compaction_min_segments=None)
    indexed_collection(e, kit, seals=4)
    e.load_collection("default", "c")
    deadline = time.monotonic() + 30
    while e.get_load_state("default", "c") is not LoadState.LOADED and time.monotonic() < deadline:
        time.sleep(0.01)
    query = kit.make_rows([0]).column("vec").combine_chunks().flatten().to_numpy().reshape(1, -1)
    request = SearchRequest("c", query, 10, params={"ef": 64})
    before = e.search("default", request).ids.to_pylist()
    used_before = e._accountant.used_bytes
    assert e.compact("default", "c") == 4
    merged = sealed(e)[0]
    runtime = e._loads._runtimes[e._resolve("default", "c").collection_id]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with runtime.lock:
            loaded = runtime.segments.get(merged.segment_id)
            ids = set(runtime.segments)
        if loaded is not None and loaded.index("vec") is not None and ids == {merged.segment_id}:
            break
        time.sleep(0.01)
    assert ids == {merged.segment_id}
    assert loaded is not None and loaded.index("vec") is not None
    assert e.search("default", request).ids.to_pylist() == before
    # One copy again: the old segments' columns and graphs are unregistered.
    assert e._accountant.used_bytes < 1.5 * used_before
