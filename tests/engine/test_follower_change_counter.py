"""A query worker's read, when the primary changed nothing, makes no syscall and no SQLite
statement: the shared change counter (storage/change_counter.py) says nothing changed since
its last look. Counted on a real primary engine and follower in this process: the follower's
catalog connection traces every statement it runs (sqlite3's trace callback), and the
reading thread's profile hook sees every call into ``os`` (posix: stat, open, ...).
Every change the primary makes (a write, a DDL, a load, a credential change) is still
seen by the next read."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from sheafdb.engine.access import AccessControl
from sheafdb.engine.engine import Engine
from sheafdb.engine.follower import Follower, FollowerConfig
from sheafdb.engine.models import LoadState, QueryRequest, SearchRequest
from sheafdb.errors import CollectionNotLoaded, PermissionDenied
from sheafdb.storage.change_counter import COUNTERS_FILE
from sheafdb.storage.credentials import open_credentials

DB = "default"


class Looks:
    """What one thread asks the OS and SQLite while it runs a block."""

    def __init__(self, follower: Follower) -> None:
        self.statements: list[str] = []
        self.os_calls: list[str] = []
        follower._catalog._conn.set_trace_callback(self.statements.append)  # type: ignore[attr-defined]

    def during(self, block: Callable[[], Any]) -> Any:
        self.statements.clear()
        self.os_calls.clear()

        def profile(_frame: FrameType, event: str, arg: Any) -> None:
            if event == "c_call" and getattr(arg, "__module__", None) == "posix":
                self.os_calls.append(arg.__name__)

        sys.setprofile(profile)
        try:
            return block()
        finally:
            sys.setprofile(None)


@pytest.fixture
def pair(open_engine: Callable[..., Engine], kit) -> Iterator[tuple[Engine, Follower]]:  # type: ignore[no-untyped-def]
    primary = open_engine(share_pages=True, compaction_min_segments=None, shared_changes=True)
    primary.create_collection(DB, "c", kit.basic_schema())
    primary.create_index(DB, "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
    primary.load_collection(DB, "c")
    assert primary.wait_for_load(DB, "c", timeout=30) is LoadState.LOADED
    follower = Follower(FollowerConfig(primary.config.data_dir, shared_changes=True))
    yield primary, follower
    follower.close()


def _ids(follower: Follower, ids: list[int], partitions: tuple[str, ...] = ()) -> list[int]:
    request = QueryRequest("c", ids=ids, partition_names=partitions, output_fields=("id",))
    return sorted(follower.query(DB, request).table.column("id").to_pylist())


def test_an_unchanged_read_asks_nothing_and_a_change_is_seen(pair: tuple[Engine, Follower], kit) -> None:  # type: ignore[no-untyped-def]
    primary, follower = pair
    looks = Looks(follower)
    vec = kit.make_rows([0], seed=0).column("vec").to_numpy(zero_copy_only=False)[0].reshape(1, -1)
    for i in range(30):
        primary.insert(DB, "c", kit.make_rows([i], seed=i))
        # The first read after the write looks (and sees it) ...
        assert looks.during(lambda i=i: _ids(follower, [i])) == [i]
        assert "PRAGMA data_version" in looks.statements, looks.statements
        assert "stat" in looks.os_calls, looks.os_calls
        # ... the next ones find the counter where it was: no statement, no syscall.
        for _ in range(3):
            assert looks.during(lambda i=i: _ids(follower, list(range(i + 1)))) == list(range(i + 1))
            assert (looks.statements, looks.os_calls) == ([], [])
            hits = looks.during(lambda: follower.search(DB, SearchRequest("c", vec, 1)))
            assert hits.ids.to_pylist() == [0]
            assert (looks.statements, looks.os_calls) == ([], [])
        if i % 10 == 9:  # a seal (a catalog change and a log trim) along the way
            primary.flush(DB, ["c"])
            assert primary.wait_for_index_builds(timeout=60)  # its commits, done before the reads
    primary.delete(DB, "c", "id in [0, 1]")
    assert _ids(follower, [0, 1, 2]) == [2]


def test_without_the_counter_every_read_asks(open_engine: Callable[..., Engine], kit) -> None:  # type: ignore[no-untyped-def]
    """The counting above can see the checks: a follower told of no counter makes them."""
    primary = open_engine(share_pages=True, compaction_min_segments=None)
    primary.create_collection(DB, "c", kit.basic_schema())
    primary.create_index(DB, "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
    primary.load_collection(DB, "c")
    primary.insert(DB, "c", kit.make_rows([1]))
    follower = Follower(FollowerConfig(primary.config.data_dir))
    try:
        looks = Looks(follower)
        assert _ids(follower, [1]) == [1]
        for _ in range(3):
            assert looks.during(lambda: _ids(follower, [1])) == [1]
            assert looks.statements == ["PRAGMA data_version"]
            assert "stat" in looks.os_calls
        assert not (primary.config.data_dir / COUNTERS_FILE).exists()  # the default is as it was
    finally:
        follower.close()


def test_catalog_changes_are_seen_at_the_next_read(pair: tuple[Engine, Follower], kit) -> None:  # type: ignore[no-untyped-def]
    primary, follower = pair
    primary.insert(DB, "c", kit.make_rows([1]))
    assert _ids(follower, [1]) == [1]
    primary.create_partition(DB, "c", "p")
    primary.insert(DB, "c", kit.make_rows([2]), partition="p")
    assert _ids(follower, [1, 2], ("p",)) == [2]
    primary.release_collection(DB, "c")
    with pytest.raises(CollectionNotLoaded):
        _ids(follower, [1])
    assert follower.load_state(DB, "c") is LoadState.NOT_LOAD
    primary.load_collection(DB, "c")
    assert _ids(follower, [1, 2]) == [1, 2]


def test_reads_from_many_threads_see_every_acknowledged_write(pair: tuple[Engine, Follower], kit) -> None:  # type: ignore[no-untyped-def]
    """Readers that skip their checks while a write lands: each read that starts after an
    insert returned sees it."""
    primary, follower = pair
    acknowledged = 0
    stop = threading.Event()
    failures: list[str] = []

    def read() -> None:
        while not stop.is_set():
            floor = acknowledged
            seen = len(_ids(follower, list(range(200))))
            if seen < floor:
                failures.append(f"saw {seen} rows after {floor} were acknowledged")

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for i in range(200):
            primary.insert(DB, "c", kit.make_rows([i], seed=i))
            acknowledged = i + 1
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert failures == []


def test_a_credential_change_is_followed_without_asking_sqlite(tmp_path: Path) -> None:
    writer = AccessControl(open_credentials(None, tmp_path, shared_changes=True), enabled=True)
    reader = AccessControl(
        open_credentials(None, tmp_path, read_only=True, shared_changes=True), enabled=True
    )
    try:
        writer.create_user("ann", "Secret-123")
        writer.create_role("readers")
        writer.grant_role("ann", "readers")
        writer.grant("readers", "Collection", "c", "Search", DB, "root")
        reader.follow_store()
        reader.authorize("ann", "Search", DB, "c")
        traced: list[str] = []
        reader._store._db.set_trace_callback(traced.append)  # type: ignore[attr-defined]
        for _ in range(5):
            reader.follow_store()
        assert traced == []  # the store's own data_version was not asked
        writer.revoke("readers", "Collection", "c", "Search", DB)
        reader.follow_store()
        with pytest.raises(PermissionDenied):
            reader.authorize("ann", "Search", DB, "c")
    finally:
        reader.close()
        writer.close()
