"""Per-collection fences in the PostgreSQL log (pg_log.py, pg_log_group.py): a log opened with
its collection's log owner lease appends, trims and is removed only while that lease keeps its
token; a log owner that lost one collection keeps appending to its others; one group commit
carries records under many fences and fails only those under a fence that no longer held.

Two ``PgLogs`` stores on one database stand for two processes, each with its own catalog
connection (as a shard writer and the coordinator have)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from sheafdb.errors import CommitOutcomeUnknown, MetaStoreUnavailable, WriterFenced
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.lease_rows import Lease, log_lease_name
from sheafdb.storage.log import CollectionLog, LogStore, open_log_store
from sheafdb.storage.pg_log import PgLogs
from tests.net_faults import Relay


def rows(*values: int) -> pa.Table:
    return pa.table({"id": pa.array(values, pa.int64())})


def logged(log: CollectionLog) -> list[tuple[int, list[int]]]:
    return [(r.lsn, r.batch.column("id").to_pylist()) for r in log.replay()]


@pytest.fixture
def stores(
    catalogs: Callable[[], Catalog], postgres_database: str, tmp_path: Path
) -> Iterator[Callable[..., PgLogs]]:
    catalogs()  # the tables
    opened: list[LogStore] = []

    def _open(**kwargs: object) -> PgLogs:
        store = open_log_store(postgres_database, tmp_path, **kwargs)  # type: ignore[arg-type]
        assert isinstance(store, PgLogs)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


def own(catalog: Catalog, collection_id: int, holder: str) -> Lease:
    lease = catalog.try_acquire_lease(log_lease_name(collection_id), holder, ttl_s=600)
    assert lease is not None
    return lease


@pytest.mark.cluster
def test_a_log_owner_that_lost_one_collection_keeps_appending_to_its_others(
    catalogs: Callable[[], Catalog], stores: Callable[..., PgLogs]
) -> None:
    owner_catalog, other_catalog = catalogs(), catalogs()
    owner = stores()
    first = owner.open(1, fence=own(owner_catalog, 1, "a:1"))
    second = owner.open(2, fence=own(owner_catalog, 2, "a:1"))
    assert first.append("insert", 0, 1, rows(1)) == 1
    assert second.append("insert", 0, 1, rows(10)) == 1
    first.trim(0)  # a trim under a fence that holds

    # Another process steals collection 1's log (the coordinator's take_lease).
    stolen = other_catalog.take_lease(log_lease_name(1), "b:1", ttl_s=600)
    with pytest.raises(WriterFenced, match=r"log/1"):
        first.append("insert", 0, 2, rows(2))
    with pytest.raises(WriterFenced):  # and at once from now on: its lsns would skip
        first.append("insert", 0, 3, rows(3))
    with pytest.raises(WriterFenced):
        first.trim(1)
    with pytest.raises(WriterFenced):
        owner.remove(1)
    # The same store's other collection goes on, under its own fence.
    assert second.append("insert", 0, 2, rows(11)) == 2
    second.trim(1)
    assert logged(second) == [(2, [11])]

    # The new owner sees exactly what the old one acknowledged and continues after it.
    thief = stores()
    taken = thief.open(1, fence=stolen)
    assert logged(taken) == [(1, [1])]
    assert taken.append("insert", 0, 4, rows(4)) == 2
    assert logged(first) == [(1, [1]), (2, [4])]  # the old store reads it too
    thief.remove(1)  # removal checks the new owner's fence, which holds
    assert logged(thief.open(1)) == []


@pytest.mark.cluster
def test_a_store_fence_and_a_collection_fence_are_independent(
    catalogs: Callable[[], Catalog], stores: Callable[..., PgLogs]
) -> None:
    """The coordinator's store is fenced by the writer lease; a log it opened with a log
    owner lease checks that one instead, so losing either leaves the other's logs going."""
    catalog = catalogs()
    writer = catalog.try_acquire_lease("writer", "a:1", ttl_s=600)
    assert writer is not None
    store = stores(fence=writer)
    own_log = store.open(5, fence=own(catalog, 5, "a:1"))
    store_log = store.open(6)
    assert own_log.append("insert", 0, 1, rows(1)) == 1
    assert store_log.append("insert", 0, 1, rows(2)) == 1
    catalogs().take_lease("writer", "b:1", ttl_s=600)
    with pytest.raises(WriterFenced, match="writer"):
        store_log.append("insert", 0, 2, rows(3))
    assert own_log.append("insert", 0, 2, rows(4)) == 2
    catalogs().take_lease(log_lease_name(5), "b:1", ttl_s=600)
    with pytest.raises(WriterFenced, match="log/5"):
        own_log.append("insert", 0, 3, rows(5))
    assert logged(own_log) == [(1, [1]), (2, [4])]
    assert logged(store_log) == [(1, [2])]


def queued(store: PgLogs) -> int:
    """How many appends wait in the store's group commit queue (white box: the test needs
    them queued behind one blocked commit so that they go out as one group)."""
    with store._cond:
        return len(store._queue)


@pytest.mark.cluster
def test_one_group_commit_under_mixed_fences_fails_only_the_lost_fences_appenders(
    catalogs: Callable[[], Catalog], stores: Callable[..., PgLogs], postgres_database: str
) -> None:
    # Opened first: a writable catalog's schema statements would wait for the blocked commit.
    catalog, thief = catalogs(), catalogs()
    store = stores()
    blocker_log = store.open(1, fence=own(catalog, 1, "a:1"))
    lost_log = store.open(2, fence=own(catalog, 2, "a:1"))
    kept_log = store.open(3, fence=own(catalog, 3, "a:1"))
    unfenced_log = store.open(4)
    for log in (blocker_log, lost_log, kept_log, unfenced_log):
        assert log.append("insert", 0, 1, rows(0)) == 1

    results: dict[str, object] = {}

    def append(name: str, log: CollectionLog, value: int) -> None:
        try:
            results[name] = log.append("insert", 0, 2, rows(value))
        except WriterFenced as exc:
            results[name] = exc

    # Another connection holds collection 1's lease row: the next commit (under that fence)
    # waits in the database, and the appends after it queue behind it as one group.
    with psycopg.connect(postgres_database, autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM leases WHERE name = %s FOR UPDATE", (log_lease_name(1),))
        threads = [threading.Thread(target=append, args=("blocker", blocker_log, 1))]
        threads[0].start()
        deadline = time.monotonic() + 60
        while not holder.execute("SELECT 1 FROM pg_locks WHERE NOT granted").fetchone():
            assert time.monotonic() < deadline, "the first commit never waited for the lease row"
            time.sleep(0.01)
        # Collection 2 is taken over while its appends wait in the queue.
        thief.take_lease(log_lease_name(2), "b:1", ttl_s=600)
        for name, log, value in (
            ("lost", lost_log, 2),
            ("kept", kept_log, 3),
            ("unfenced", unfenced_log, 4),
            ("blocker again", blocker_log, 5),
        ):
            thread = threading.Thread(target=append, args=(name, log, value))
            thread.start()
            threads.append(thread)
        while queued(store) < 4:
            assert time.monotonic() < deadline, "the appends never queued"
            time.sleep(0.01)
        holder.execute("ROLLBACK")
    for thread in threads:
        thread.join(60)
    assert results["blocker"] == 2
    assert isinstance(results["lost"], WriterFenced)
    assert results["kept"] == 2
    assert results["unfenced"] == 2
    assert results["blocker again"] == 3
    assert logged(lost_log) == [(1, [0])]
    assert logged(kept_log) == [(1, [0]), (2, [3])]
    assert logged(unfenced_log) == [(1, [0]), (2, [4])]
    assert logged(blocker_log) == [(1, [0]), (2, [1]), (3, [5])]
    # The three that went through were one group: one transaction inserted them.
    with psycopg.connect(postgres_database) as conn:
        xmins = conn.execute(
            "SELECT DISTINCT xmin::text FROM log_records "
            "WHERE (collection_id, lsn) IN ((1, 3), (3, 2), (4, 2))"
        ).fetchall()
    assert len(xmins) == 1
    # The lost fence's log takes no more appends; the others do.
    with pytest.raises(WriterFenced):
        lost_log.append("insert", 0, 3, rows(6))
    assert kept_log.append("insert", 0, 3, rows(7)) == 3


@pytest.mark.cluster
def test_a_lost_answer_to_a_group_of_mixed_fences_is_settled_by_any_fence_that_held(
    catalogs: Callable[[], Catalog], postgres_database: str, tmp_path: Path
) -> None:
    """A group whose first record's fence was lost (not inserted) but whose other fence held
    (inserted), and whose answer the network lost: the settling finds the inserted records,
    so the store stops (CommitOutcomeUnknown, store-wide), rather than calling it a gap."""
    catalog, thief = catalogs(), catalogs()
    address = psycopg.conninfo.conninfo_to_dict(postgres_database)
    link = Relay((str(address["host"]), int(str(address["port"]))))
    told: list[CommitOutcomeUnknown] = []
    store = open_log_store(
        postgres_database.replace(f":{address['port']}/", f":{link.port}/"),
        tmp_path,
        on_commit_unknown=told.append,
    )
    assert isinstance(store, PgLogs)
    try:
        blocker_log = store.open(1, fence=own(catalog, 1, "a:1"))
        lost_log = store.open(2, fence=own(catalog, 2, "a:1"))
        held_log = store.open(3, fence=own(catalog, 3, "a:1"))
        results: dict[str, object] = {}

        def append(name: str, log: CollectionLog, value: int) -> None:
            try:
                results[name] = log.append("insert", 0, 1, rows(value))
            except Exception as exc:  # noqa: BLE001 - the test looks at what each one got
                results[name] = exc

        with psycopg.connect(postgres_database, autocommit=True) as holder:
            holder.execute("BEGIN")
            holder.execute("SELECT 1 FROM leases WHERE name = %s FOR UPDATE", (log_lease_name(1),))
            threads = [threading.Thread(target=append, args=("blocker", blocker_log, 1))]
            threads[0].start()
            wait_until(lambda: holder.execute("SELECT 1 FROM pg_locks WHERE NOT granted").fetchone())
            thief.take_lease(log_lease_name(2), "b:1", ttl_s=600)
            # The next INSERT to go out is the group's; its answer never arrives.
            link.lose_reply(b"INSERT INTO log_records", b"INSERT 0 1")
            for name, log, value in (("lost", lost_log, 2), ("held", held_log, 3)):
                threads.append(threading.Thread(target=append, args=(name, log, value)))
                threads[-1].start()
                wait_until(lambda: queued(store) == len(threads) - 1)  # noqa: B023
            holder.execute("ROLLBACK")
        for thread in threads:
            thread.join(60)
        assert results["blocker"] == 1
        assert isinstance(results["lost"], MetaStoreUnavailable)
        assert isinstance(results["held"], MetaStoreUnavailable)
        wait_until(lambda: len(told) == 1)
        with pytest.raises(CommitOutcomeUnknown):
            blocker_log.append("insert", 0, 2, rows(4))
    finally:
        store.close()
        link.close()
    direct = open_log_store(postgres_database, tmp_path)
    try:
        assert logged(direct.open(2)) == []
        assert logged(direct.open(3)) == [(1, [3])]
    finally:
        direct.close()


def wait_until(condition: Callable[[], object]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.01)


@pytest.mark.cluster
def test_a_group_commit_chosen_as_a_deadlocks_victim_goes_out_again(
    catalogs: Callable[[], Catalog], stores: Callable[..., PgLogs], postgres_database: str
) -> None:
    """A group under fences log/1 and log/2 holds row log/1 and waits for log/2, which a
    renewal of both leases holds while it waits for log/1: PostgreSQL rolls the group back
    (its session detects the cycle first), and the group goes out again once the renewal
    committed, instead of failing its appenders and the whole store."""
    catalog = catalogs()
    store = stores()
    blocker_log = store.open(3, fence=own(catalog, 3, "a:1"))
    first_log = store.open(1, fence=own(catalog, 1, "a:1"))
    second_log = store.open(2, fence=own(catalog, 2, "a:1"))
    results: dict[str, object] = {}

    def append(name: str, log: CollectionLog, value: int) -> None:
        try:
            results[name] = log.append("insert", 0, 1, rows(value))
        except Exception as exc:  # noqa: BLE001 - the test looks at what each one got
            results[name] = exc

    def waiting(conn: psycopg.Connection[Any]) -> bool:
        return conn.execute("SELECT 1 FROM pg_locks WHERE NOT granted").fetchone() is not None

    with (
        psycopg.connect(postgres_database, autocommit=True) as renewal,
        psycopg.connect(postgres_database, autocommit=True) as blocker,
    ):
        renewal.execute("BEGIN")
        renewal.execute("SET LOCAL deadlock_timeout = '60s'")  # the group's session detects it
        renewal.execute("UPDATE leases SET expires_at = expires_at + 1 WHERE name = %s", (log_lease_name(2),))
        blocker.execute("BEGIN")
        blocker.execute("SELECT 1 FROM leases WHERE name = %s FOR UPDATE", (log_lease_name(3),))
        threads = [threading.Thread(target=append, args=("blocker", blocker_log, 3))]
        threads[0].start()
        wait_until(lambda: waiting(blocker))
        for name, log, value in (("first", first_log, 1), ("second", second_log, 2)):
            threads.append(threading.Thread(target=append, args=(name, log, value)))
            threads[-1].start()
            wait_until(lambda: queued(store) == len(threads) - 1)  # noqa: B023
        blocker.execute("ROLLBACK")  # the group [log/1, log/2] goes out: log/1 held, log/2 waited for
        wait_until(lambda: results.get("blocker") == 1 and waiting(blocker))
        # The renewal now asks for log/1: a cycle; the group is rolled back, this goes on.
        renewal.execute("UPDATE leases SET expires_at = expires_at + 1 WHERE name = %s", (log_lease_name(1),))
        renewal.execute("COMMIT")
    for thread in threads:
        thread.join(60)
    assert results == {"blocker": 1, "first": 1, "second": 1}
    assert logged(first_log) == [(1, [1])] and logged(second_log) == [(1, [2])]
    assert blocker_log.append("insert", 0, 2, rows(4)) == 2  # the store goes on


@pytest.mark.cluster
def test_concurrent_appends_under_many_fences_while_one_is_taken_over(
    catalogs: Callable[[], Catalog], stores: Callable[..., PgLogs]
) -> None:
    """Appenders of four collections race a takeover of one: that one's acknowledged appends
    are exactly what its new owner replays; the other three lose nothing."""
    catalog, thief = catalogs(), catalogs()
    store, new_store = stores(), stores()
    logs = {cid: store.open(cid, fence=own(catalog, cid, "a:1")) for cid in (1, 2, 3, 4)}
    acked: dict[int, list[int]] = {cid: [] for cid in logs}
    refused: list[int] = []
    started = threading.Barrier(len(logs) + 1)

    def write(cid: int) -> None:
        started.wait()
        for i in range(150):
            try:
                logs[cid].append("insert", 0, i, rows(i))
            except WriterFenced:
                refused.append(cid)
                return
            acked[cid].append(i)

    threads = [threading.Thread(target=write, args=(cid,)) for cid in logs]
    for thread in threads:
        thread.start()
    started.wait()
    deadline = time.monotonic() + 60
    while len(acked[2]) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    stolen = thief.take_lease(log_lease_name(2), "b:1", ttl_s=600)
    new_owner = new_store.open(2, fence=stolen)
    replayed = [values[0] for _, values in logged(new_owner)]
    for thread in threads:
        thread.join(120)
    assert refused == [2]
    assert replayed == acked[2]
    for cid in (1, 3, 4):
        assert acked[cid] == list(range(150))
        assert [values[0] for _, values in logged(logs[cid])] == list(range(150))


def test_the_file_log_accepts_a_fence_and_ignores_it(tmp_path: Path) -> None:
    store = open_log_store(None, tmp_path, fsync=False)
    try:
        log = store.open(3, fence=Lease(log_lease_name(3), "a:1", 1, 0.0))  # expired: no matter
        assert log.append("insert", 0, 1, rows(1)) == 1
        log.close()
    finally:
        store.close()
