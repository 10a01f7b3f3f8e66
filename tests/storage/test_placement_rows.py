"""Contract B: the catalog rows of query workers and placements, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sheafdb.storage.catalog import Catalog, open_catalog
from sheafdb.storage.placement_rows import (
    DEFAULT_WORKER_GROUP,
    FIRST_WORKER_ID,
    ReplicaRecord,
    SegmentAssignment,
    WorkerRecord,
)

OpenCatalog = Callable[[], Catalog]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.cluster)])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> OpenCatalog:
    if request.param == "sqlite":
        return lambda: open_catalog(None, tmp_path / "meta")
    url = request.getfixturevalue("postgres_database")
    return lambda: open_catalog(url, tmp_path)


@pytest.fixture
def catalog(reopen: OpenCatalog) -> Iterator[Catalog]:
    cat = reopen()
    yield cat
    cat.close()


def worker(address: str, *, worker_id: int = 0, budget: int = 1000) -> WorkerRecord:
    return WorkerRecord(
        worker_id=worker_id,
        address=address,
        hostname="h",
        ray_node_id="",
        budget_bytes=budget,
        expires_at=100.5,
    )


def test_register_assigns_ids_and_lists(catalog: Catalog) -> None:
    v0 = catalog.placement_version()
    a = catalog.register_worker(worker("127.0.0.1:1"))
    b = catalog.register_worker(worker("127.0.0.1:2", budget=7))
    assert (a.worker_id, b.worker_id) == (FIRST_WORKER_ID, FIRST_WORKER_ID + 1)
    assert a.incarnation == b.incarnation == 1
    assert a.resource_group == DEFAULT_WORKER_GROUP
    assert catalog.list_workers() == [a, b]
    assert catalog.placement_version() > v0


def test_renew_and_remove(catalog: Catalog) -> None:
    a = catalog.register_worker(worker("w"))
    assert catalog.renew_worker(a.worker_id, used_bytes=55, expires_at=200.25)
    [stored] = catalog.list_workers()
    assert (stored.used_bytes, stored.expires_at) == (55, 200.25)
    catalog.remove_worker(a.worker_id)
    assert catalog.list_workers() == []
    assert not catalog.renew_worker(a.worker_id, used_bytes=0, expires_at=300.0)


def test_reregistering_is_a_new_incarnation_that_keeps_its_group_and_loses_its_acks(catalog: Catalog) -> None:
    a = catalog.register_worker(worker("w:1"))
    catalog.move_workers([a.worker_id], "rg1")
    catalog.save_placement(
        5,
        [ReplicaRecord(5, 1, "rg1", (a.worker_id,), a.worker_id)],
        [SegmentAssignment(5, 1, 10, a.worker_id)],
    )
    catalog.ack_segment(5, 1, 10, a.worker_id)
    assert catalog.list_assignments()[0].loaded
    again = catalog.register_worker(worker("w:9", worker_id=a.worker_id))
    assert (again.worker_id, again.incarnation, again.resource_group, again.address) == (
        a.worker_id,
        2,
        "rg1",
        "w:9",
    )
    assert catalog.list_workers() == [again]
    assert not catalog.list_assignments()[0].loaded


def test_a_chosen_id_is_never_handed_out_again(catalog: Catalog) -> None:
    chosen = catalog.register_worker(worker("w:1", worker_id=40))
    fresh = catalog.register_worker(worker("w:2"))
    assert chosen.worker_id == 40 and fresh.worker_id == 41


def test_placement_saved_listed_and_dropped(catalog: Catalog) -> None:
    replicas = [ReplicaRecord(7, 1, "__default_resource_group", (2, 3), 2), ReplicaRecord(7, 2, "g", (4,), 4)]
    assignments = [
        SegmentAssignment(7, 1, 100, 2),
        SegmentAssignment(7, 1, 101, 3),
        SegmentAssignment(7, 2, 100, 4),
        SegmentAssignment(7, 2, 101, 4),
    ]
    other = [ReplicaRecord(8, 3, "g", (5,), 5)]
    v1 = catalog.save_placement(7, replicas, assignments)
    v2 = catalog.save_placement(8, other, [SegmentAssignment(8, 3, 200, 5)])
    assert v2 > v1 == catalog.placement_version() - 1
    assert catalog.list_replicas(7) == replicas
    assert catalog.list_replicas() == replicas + other
    assert catalog.list_assignments(collection_id=7) == assignments
    assert catalog.list_assignments(worker_id=4) == assignments[2:]
    assert catalog.list_assignments(collection_id=8, worker_id=5) == [SegmentAssignment(8, 3, 200, 5)]
    catalog.drop_placement(7)
    assert catalog.list_replicas() == other
    assert catalog.list_assignments(collection_id=7) == []
    assert catalog.placement_version() > v2


def test_save_replaces_the_whole_placement_and_keeps_acks_of_unmoved_segments(catalog: Catalog) -> None:
    catalog.save_placement(
        7,
        [ReplicaRecord(7, 1, "g", (2, 3), 2), ReplicaRecord(7, 2, "g", (4,), 4)],
        [SegmentAssignment(7, 1, 100, 2), SegmentAssignment(7, 1, 101, 3), SegmentAssignment(7, 2, 100, 4)],
    )
    for replica, segment, w in [(1, 100, 2), (1, 101, 3), (2, 100, 4)]:
        catalog.ack_segment(7, replica, segment, w)
    # Worker 3 died: segment 101 moves to worker 2; replica 2 is gone; a new segment 102 arrives.
    catalog.save_placement(
        7,
        [ReplicaRecord(7, 1, "g", (2,), 2)],
        [
            SegmentAssignment(7, 1, 100, 2, loaded=False),
            SegmentAssignment(7, 1, 101, 2),
            SegmentAssignment(7, 1, 102, 2),
        ],
    )
    assert catalog.list_replicas(7) == [ReplicaRecord(7, 1, "g", (2,), 2)]
    assert catalog.list_assignments(collection_id=7) == [
        SegmentAssignment(7, 1, 100, 2, loaded=True),
        SegmentAssignment(7, 1, 101, 2, loaded=False),
        SegmentAssignment(7, 1, 102, 2, loaded=False),
    ]


def test_ack_of_a_segment_not_placed_on_the_worker_changes_nothing(catalog: Catalog) -> None:
    catalog.save_placement(7, [ReplicaRecord(7, 1, "g", (2,), 2)], [SegmentAssignment(7, 1, 100, 2)])
    version = catalog.placement_version()
    catalog.ack_segment(7, 1, 100, 3)
    catalog.ack_segment(7, 1, 999, 2)
    assert catalog.placement_version() == version
    assert not catalog.list_assignments()[0].loaded
    catalog.ack_segment(7, 1, 100, 2)
    assert catalog.list_assignments()[0].loaded
    assert catalog.placement_version() == version + 1


def test_everything_survives_a_reopen(reopen: OpenCatalog) -> None:
    cat = reopen()
    a = cat.register_worker(worker("w"))
    cat.save_placement(
        3, [ReplicaRecord(3, 1, "g", (a.worker_id,), a.worker_id)], [SegmentAssignment(3, 1, 9, 2)]
    )
    cat.ack_segment(3, 1, 9, a.worker_id)
    version = cat.placement_version()
    cat.close()
    cat = reopen()
    try:
        assert cat.list_workers() == [a]
        assert cat.list_replicas() == [ReplicaRecord(3, 1, "g", (a.worker_id,), a.worker_id)]
        assert cat.list_assignments() == [SegmentAssignment(3, 1, 9, a.worker_id, loaded=True)]
        assert cat.placement_version() == version
        assert cat.register_worker(worker("w2")).worker_id == a.worker_id + 1
    finally:
        cat.close()
