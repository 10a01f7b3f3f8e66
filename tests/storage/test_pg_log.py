"""The collections' logs in a real PostgreSQL (pg_log.py): append, replay, trim, tails and gaps,
group commit in lsn order, and fencing: a deposed writer's appends and catalog writes fail.
The behaviour both backends share runs on the file log too."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from sheafdb.errors import WriterFenced
from sheafdb.storage.catalog import Catalog, open_catalog
from sheafdb.storage.lease_rows import WRITER_LEASE, Lease
from sheafdb.storage.log import LogGap, LogStore, open_log_store

CID = 7


def rows(*values: int) -> pa.Table:
    return pa.table({"id": pa.array(values, pa.int64())})


def ids(store: LogStore, cid: int = CID, after: int = 0) -> list[tuple[int, list[int]]]:
    log = store.open(cid)
    try:
        return [(r.lsn, r.batch.column("id").to_pylist()) for r in log.replay(after)]
    finally:
        log.close()


@pytest.fixture
def catalog(postgres_database: str, tmp_path: Path) -> Iterator[Catalog]:
    """The catalog makes the log tables (and holds the leases)."""
    cat = open_catalog(postgres_database, tmp_path)
    yield cat
    cat.close()


@pytest.fixture
def pg_logs(catalog: Catalog, postgres_database: str, tmp_path: Path) -> Iterator[Callable[..., LogStore]]:
    opened: list[LogStore] = []

    def _open(**kwargs: object) -> LogStore:
        store = open_log_store(postgres_database, tmp_path, **kwargs)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture(params=["file", pytest.param("postgres", marks=pytest.mark.cluster)])
def logs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogStore]:
    if request.param == "file":
        store = open_log_store(None, tmp_path, fsync=False)
        yield store
        store.close()
    else:
        yield request.getfixturevalue("pg_logs")()


def test_appends_are_replayed_in_order_and_lsns_continue_after_a_reopen(logs: LogStore) -> None:
    log = logs.create(CID)
    assert log.last_lsn == 0
    assert [log.append("insert", 1, 100 + i, rows(i)) for i in range(3)] == [1, 2, 3]
    assert log.append("delete", 0, 200, rows(1)) == 4
    assert log.last_lsn == 4
    records = list(log.replay())
    assert [(r.lsn, r.kind, r.partition_id, r.timestamp) for r in records] == [
        (1, "insert", 1, 100),
        (2, "insert", 1, 101),
        (3, "insert", 1, 102),
        (4, "delete", 0, 200),
    ]
    assert records[3].batch.equals(rows(1))
    assert [r.lsn for r in log.replay(2)] == [3, 4]
    log.close()
    reopened = logs.open(CID)
    assert reopened.last_lsn == 4
    assert reopened.append("insert", 1, 300, rows(9)) == 5
    reopened.close()
    assert ids(logs) == [(1, [0]), (2, [1]), (3, [2]), (4, [1]), (5, [9])]


def test_concurrent_appends_get_every_lsn_once_and_replay_in_order(logs: LogStore) -> None:
    log = logs.create(CID)
    got: list[int] = []
    lock = threading.Lock()

    def write(worker: int) -> None:
        for i in range(20):
            lsn = log.append("insert", 1, 1, rows(worker * 100 + i))
            with lock:
                got.append(lsn)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 121))
    replayed = list(log.replay())
    assert [r.lsn for r in replayed] == list(range(1, 121))
    # Each worker's rows are in the order it wrote them.
    for w in range(6):
        mine = [
            r.batch.column("id")[0].as_py() for r in replayed if r.batch.column("id")[0].as_py() // 100 == w
        ]
        assert mine == [w * 100 + i for i in range(20)]
    log.close()


def test_a_collection_made_again_starts_empty_and_orphans_go(logs: LogStore) -> None:
    log = logs.create(CID)
    log.append("insert", 1, 1, rows(1))
    log.close()
    other = logs.create(CID + 1)
    other.append("insert", 1, 1, rows(2))
    other.close()
    fresh = logs.create(CID)
    assert fresh.last_lsn == 0 and list(fresh.replay()) == []
    fresh.close()
    logs.remove_orphans({CID})
    assert ids(logs, CID + 1) == []
    logs.remove(CID)
    assert ids(logs, CID) == []


@pytest.mark.cluster
def test_trim_deletes_and_lsns_never_restart(pg_logs: Callable[..., LogStore]) -> None:
    store = pg_logs()
    log = store.create(CID)
    for i in range(5):
        log.append("insert", 1, i, rows(i))
    log.trim(3)
    assert [r.lsn for r in log.replay()] == [4, 5]
    log.trim(5)  # everything sealed: the log is empty
    assert list(log.replay()) == []
    log.close()
    reopened = store.open(CID)
    assert reopened.last_lsn == 5
    assert reopened.append("insert", 1, 9, rows(9)) == 6
    reopened.close()


@pytest.mark.cluster
def test_a_tail_reads_what_was_committed_and_reports_a_gap(pg_logs: Callable[..., LogStore]) -> None:
    writer = pg_logs().create(CID)
    reader = pg_logs(read_only=True)
    tail = reader.tail(CID)
    assert tail.read_new() == []
    writer.append("insert", 1, 1, rows(1))
    writer.append("insert", 1, 2, rows(2))
    assert [r.lsn for r in tail.read_new()] == [1, 2]
    assert tail.read_new() == []
    writer.append("insert", 1, 3, rows(3))
    writer.trim(2)  # already read: no gap
    assert [r.lsn for r in tail.read_new()] == [3]
    writer.append("insert", 1, 4, rows(4))
    writer.append("insert", 1, 5, rows(5))
    writer.trim(4)  # 4 was never read: the tail must take the catalog again
    with pytest.raises(LogGap):
        tail.read_new()
    # A new tail starts from the oldest record kept.
    assert [r.lsn for r in reader.tail(CID).read_new()] == [5]
    writer.trim(5)
    fresh = reader.tail(CID)
    assert fresh.read_new() == []
    writer.append("insert", 1, 6, rows(6))
    assert [r.lsn for r in fresh.read_new()] == [6]
    # A follower cannot write.
    with pytest.raises(Exception, match="read-only"):
        reader.open(CID + 1)


@pytest.mark.cluster
def test_a_deposed_writer_can_neither_append_nor_change_the_catalog(
    catalog: Catalog, postgres_database: str, tmp_path: Path, pg_logs: Callable[..., LogStore]
) -> None:
    old = catalog.try_acquire_lease(WRITER_LEASE, "old:1", ttl_s=0)  # expires at once
    assert old is not None
    old_catalog = open_catalog(postgres_database, tmp_path)
    old_catalog.set_fence(old)
    old_logs = pg_logs(fence=old)
    old_log = old_logs.create(CID)
    assert old_log.append("insert", 1, 1, rows(1)) == 1
    old_catalog.note_timestamp(5)  # a fenced write while the lease is still its

    new = catalog.try_acquire_lease(WRITER_LEASE, "new:1", ttl_s=60)
    assert new is not None and new.token == old.token + 1
    with pytest.raises(WriterFenced, match="lost its lease"):
        old_log.append("insert", 1, 2, rows(2))
    # And it takes no more appends at all (its lsns would skip), nor trims, nor catalog writes.
    with pytest.raises(WriterFenced):
        old_log.append("insert", 1, 3, rows(3))
    with pytest.raises(WriterFenced):
        old_log.trim(1)
    with pytest.raises(WriterFenced):
        old_catalog.note_timestamp(10)
    assert catalog.max_timestamp() == 5
    old_catalog.close()

    # The new writer recovers exactly what the old one acknowledged and continues after it.
    new_log = pg_logs(fence=new).open(CID)
    assert [(r.lsn, r.batch.column("id").to_pylist()) for r in new_log.replay()] == [(1, [1])]
    assert new_log.append("insert", 1, 4, rows(4)) == 2
    new_log.close()


@pytest.mark.cluster
def test_an_append_in_flight_during_a_takeover_is_seen_by_the_new_writer(
    catalog: Catalog, postgres_database: str, tmp_path: Path, pg_logs: Callable[..., LogStore]
) -> None:
    """Appends race a takeover: each one either committed before it (and the new writer,
    which reads the log after its takeover, replays it) or was refused."""
    old = catalog.try_acquire_lease(WRITER_LEASE, "old:1", ttl_s=0)
    assert old is not None
    old_log = pg_logs(fence=old).create(CID)
    acked: list[int] = []
    refused: list[BaseException] = []
    started = threading.Event()

    def write() -> None:
        for i in range(10_000):
            try:
                old_log.append("insert", 1, i, rows(i))
            except WriterFenced as exc:
                refused.append(exc)
                return
            acked.append(i)
            started.set()

    writer = threading.Thread(target=write)
    writer.start()
    started.wait(30)
    takeover = open_catalog(postgres_database, tmp_path)
    new: Lease | None = takeover.try_acquire_lease(WRITER_LEASE, "new:1", ttl_s=60)
    assert new is not None
    replayed = [r.batch.column("id")[0].as_py() for r in pg_logs(fence=new).open(CID).replay()]
    writer.join()
    takeover.close()
    assert refused, "the old writer kept appending after the takeover"
    assert replayed == acked


@pytest.mark.cluster
def test_a_write_id_is_logged_with_its_record_and_found_until_trimmed(
    pg_logs: Callable[..., LogStore],
) -> None:
    store = pg_logs()
    log = store.open(CID)
    other = store.open(CID + 1)
    assert log.append("insert", 0, 10, rows(1, 2), "call-a") == 1
    assert log.append("insert", 0, 11, rows(3)) == 2  # a client's own call: no id
    assert other.append("insert", 0, 12, rows(9), "call-b") == 1
    found = log.find_write("call-a")
    assert found is not None
    assert (found.lsn, found.kind, found.timestamp) == (1, "insert", 10)
    assert found.batch.column("id").to_pylist() == [1, 2]
    assert log.find_write("call-b") is None  # another collection's
    assert log.find_write("never-sent") is None
    # Another process (a writer that took over) finds it too.
    again = pg_logs().open(CID)
    assert again.find_write("call-a") is not None
    log.trim(1)
    assert again.find_write("call-a") is None  # sealed into a segment: no longer in the log


def test_the_file_log_keeps_no_write_ids(tmp_path: Path) -> None:
    store = open_log_store(None, tmp_path, fsync=False)
    try:
        log = store.open(CID)
        assert log.append("insert", 0, 10, rows(1), "call-a") == 1
        assert log.find_write("call-a") is None
        assert [r.lsn for r in log.replay()] == [1]
        log.close()
    finally:
        store.close()
