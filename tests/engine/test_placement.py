"""The placement rules as pure functions: disjoint replicas, budgets, largest-first onto the
least filled, refusal with the bytes named (property tests with hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheafdb.engine.distribution.placement import (
    WorkerSpace,
    check_fits,
    place_segments,
    replicas_per_group,
    reshape_replicas,
    spread_workers,
)
from sheafdb.errors import MemoryLimitExceeded, ResourceGroupNodeNotEnough

DEFAULT = "__default_resource_group"

workers_st = st.lists(
    st.tuples(st.sampled_from([DEFAULT, "rg1"]), st.integers(0, 1000), st.integers(0, 300)),
    min_size=1,
    max_size=8,
).map(lambda ws: [WorkerSpace(i + 2, g, budget, min(held, budget)) for i, (g, budget, held) in enumerate(ws)])
sizes_st = st.dictionaries(st.integers(100, 140), st.integers(0, 400), max_size=12)


def place_all(
    workers: list[WorkerSpace], sizes: dict[int, int], replica_number: int, groups: list[str]
) -> tuple[list, dict, dict]:
    wanted = replicas_per_group(replica_number, groups, DEFAULT)
    replicas = spread_workers(7, wanted, list(range(1000, 1000 + replica_number)), workers)
    spaces = {w.worker_id: w for w in workers}
    placed, unplaced = place_segments(replicas, sizes, spaces, {})
    return replicas, placed, unplaced


@settings(max_examples=300, deadline=None)
@given(workers_st, sizes_st, st.integers(1, 3), st.sampled_from([[], ["rg1"], [DEFAULT, "rg1"]]))
def test_replicas_are_disjoint_and_budgets_hold(
    workers: list[WorkerSpace], sizes: dict[int, int], replica_number: int, groups: list[str]
) -> None:
    if len(groups) == 2:
        replica_number = 2
    try:
        replicas, placed, unplaced = place_all(workers, sizes, replica_number, groups)
    except ResourceGroupNodeNotEnough:
        wanted = replicas_per_group(replica_number, groups, DEFAULT)
        assert any(len([w for w in workers if w.resource_group == g]) < n for g, n in wanted.items())
        return
    assert len(replicas) == replica_number
    # Disjoint: a worker serves at most one replica of the collection, in the replica's group.
    members = [w for r in replicas for w in r.worker_ids]
    assert len(members) == len(set(members))
    group_of = {w.worker_id: w.resource_group for w in workers}
    for r in replicas:
        assert r.worker_ids and r.leader_id in r.worker_ids
        assert all(group_of[w] == r.resource_group for w in r.worker_ids)
    # A group's workers are shared fairly by its replicas (counts differ by at most one).
    for group in {r.resource_group for r in replicas}:
        counts = [len(r.worker_ids) for r in replicas if r.resource_group == group]
        assert max(counts) - min(counts) <= 1
    # Each segment once per replica (or reported unplaced), on a worker of that replica.
    for r in replicas:
        for segment in sizes:
            where = placed.get((r.replica_id, segment))
            assert (where is None) == (segment in unplaced.get(r.replica_id, []))
            assert where is None or where in r.worker_ids
    # Budgets: what a worker already holds plus what it gets never passes its budget.
    spaces = {w.worker_id: w for w in workers}
    for w in workers:
        got = sum(sizes[s] for (_, s), worker in placed.items() if worker == w.worker_id)
        assert w.held_bytes + got <= w.budget_bytes or got == 0
    # A replica with one worker roomy enough for everything is never short; one whose
    # workers have less room in all than the load needs always is.
    total = sum(sizes.values())
    for r in replicas:
        free = [spaces[w].free_bytes for w in r.worker_ids]
        if max(free) >= total:
            assert r.replica_id not in unplaced
        if sum(free) < total:
            assert unplaced.get(r.replica_id)
            with pytest.raises(MemoryLimitExceeded):
                check_fits("c", replicas, sizes, spaces, unplaced)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=20), st.integers(2, 4))
def test_largest_first_onto_the_least_filled(segment_sizes: list[int], n_workers: int) -> None:
    workers = [WorkerSpace(i + 2, DEFAULT, 10_000) for i in range(n_workers)]
    sizes = {100 + i: size for i, size in enumerate(segment_sizes)}
    replicas, placed, unplaced = place_all(workers, sizes, 1, [])
    assert not unplaced
    # Greedy LPT: no worker ends more than the largest segment above the least filled one.
    fill = {w.worker_id: 0 for w in workers}
    for (_, segment), worker in placed.items():
        fill[worker] += sizes[segment]
    assert max(fill.values()) - min(fill.values()) <= max(segment_sizes)


def test_a_load_that_cannot_fit_is_refused_naming_bytes_needed_and_free() -> None:
    workers = [WorkerSpace(2, DEFAULT, 1000, held_bytes=400), WorkerSpace(3, DEFAULT, 500)]
    sizes = {100: 700, 101: 600}
    replicas, placed, unplaced = place_all(workers, sizes, 1, [])
    assert unplaced == {1000: [101]} or unplaced == {1000: [100]}
    with pytest.raises(MemoryLimitExceeded) as refused:
        check_fits("big", replicas, sizes, {w.worker_id: w for w in workers}, unplaced)
    assert refused.value.code == 3
    assert "memory limit exceeded" in refused.value.message
    assert "needs 1300 bytes" in refused.value.message and "has 1100 bytes free" in refused.value.message


def test_more_replicas_than_workers_is_refused_as_milvus_does() -> None:
    with pytest.raises(ResourceGroupNodeNotEnough) as refused:
        place_all([WorkerSpace(2, DEFAULT, 100)], {}, 2, [])
    assert refused.value.message == (
        "resource group node not enough[rg=__default_resource_group][currentNodeNum=1][expectedNodeNum=2]"
    )


def test_kept_segments_stay_and_new_ones_go_to_the_leader_when_it_has_room() -> None:
    workers = [WorkerSpace(2, DEFAULT, 1000), WorkerSpace(3, DEFAULT, 1000)]
    replicas = spread_workers(7, {DEFAULT: 1}, [50], workers)
    leader = replicas[0].leader_id
    other = next(w for w in replicas[0].worker_ids if w != leader)
    spaces = {w.worker_id: w for w in workers}
    placed, _ = place_segments(replicas, {1: 300, 2: 10}, spaces, {(50, 1): leader}, new_segments=[2])
    assert placed == {(50, 1): leader, (50, 2): leader}
    # Without the leader preference the new one goes to the least filled worker.
    placed, _ = place_segments(replicas, {1: 300, 2: 10}, spaces, {(50, 1): leader})
    assert placed == {(50, 1): leader, (50, 2): other}


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.integers(1, 4), st.integers(1, 4))
def test_reshaped_replicas_stay_disjoint_fair_and_keep_the_oldest(
    n_workers: int, before: int, after: int
) -> None:
    workers = [WorkerSpace(i + 2, DEFAULT, 100) for i in range(n_workers)]
    if before > n_workers:
        return
    current = spread_workers(7, {DEFAULT: before}, list(range(10, 10 + before)), workers)
    try:
        replicas = reshape_replicas(7, current, {DEFAULT: after}, list(range(50, 50 + after)), workers)
    except ResourceGroupNodeNotEnough:
        assert after > n_workers
        return
    members = [w for r in replicas for w in r.worker_ids]
    assert sorted(members) == [w.worker_id for w in workers]  # every worker, each in one replica
    counts = [len(r.worker_ids) for r in replicas]
    assert max(counts) - min(counts) <= 1 and min(counts) >= 1
    assert all(r.leader_id in r.worker_ids for r in replicas)
    oldest = sorted(r.replica_id for r in current)[: min(before, after)]
    assert set(oldest) <= {r.replica_id for r in replicas}
    for r in replicas:
        old = next((c for c in current if c.replica_id == r.replica_id), None)
        if old is not None:  # a kept replica keeps its workers up to its share
            assert len(set(r.worker_ids) & set(old.worker_ids)) == min(len(old.worker_ids), len(r.worker_ids))
