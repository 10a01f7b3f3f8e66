"""LogOwnership (engine/write/log_ownership.py): members of one PostgreSQL catalog share the
collections' logs, adopt the logs of a member that left or paused past its ttl, and a steal
(``take``) moves a log at once; each member is told what it acquired and what it lost.

Members are LogOwnership objects with their own catalog connections (as separate processes
have), and, for the pause, a real second process stopped with SIGSTOP."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from sheafdb.engine.write.log_ownership import LogOwnership
from sheafdb.errors import ServiceUnavailable
from sheafdb.storage.catalog import DEFAULT_DATABASE, Catalog, open_catalog
from sheafdb.storage.lease_rows import (
    LOG_LEASE_PREFIX,
    MEMBER_LEASE_PREFIX,
    Lease,
    log_lease_collection,
    log_lease_name,
    member_lease_name,
)

TTL_S = 2.0
WAIT_S = 60.0


class Member:
    """A LogOwnership and what it was told."""

    def __init__(self, catalog: Catalog, holder: str) -> None:
        self.holder = holder
        self.acquired: list[Lease] = []
        self.lost: list[int] = []
        self._events = threading.Lock()
        self.ownership = LogOwnership(
            catalog, holder, ttl_s=TTL_S, on_acquired=self._acquired, on_lost=self._lost
        )

    def _acquired(self, lease: Lease) -> None:
        with self._events:
            self.acquired.append(lease)

    def _lost(self, collection_id: int) -> None:
        with self._events:
            self.lost.append(collection_id)

    def owned(self) -> set[int]:
        return set(self.ownership.owned())


@pytest.fixture
def members(catalogs: Callable[[], Catalog]) -> Iterator[Callable[[str], Member]]:
    made: list[Member] = []

    def _start(holder: str) -> Member:
        member = Member(catalogs(), holder)
        member.ownership.start()
        made.append(member)
        return member

    yield _start
    for member in made:
        member.ownership.close()


def make_collections(catalog: Catalog, *names: str) -> list[int]:
    from tests.engine.conftest import basic_schema

    return [
        catalog.create_collection(
            DEFAULT_DATABASE,
            name,
            basic_schema(),
            partition_names=["_default"],
            properties={},
            consistency_level=0,
            shards_num=1,
            created_ts=1,
        ).collection_id
        for name in names
    ]


def wait_for(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def owners(catalog: Catalog) -> dict[int, str]:
    """Who holds each live log lease, by collection id, as the catalog says."""
    found: dict[int, str] = {}
    for lease in catalog.live_leases(LOG_LEASE_PREFIX):
        cid = log_lease_collection(lease.name)
        assert cid is not None
        found[cid] = lease.holder
    return found


def member_expiry(catalog: Catalog, holder: str) -> float:
    lease = catalog.current_lease(member_lease_name(holder))
    assert lease is not None
    return lease.expires_at


def wait_for_rounds(catalog: Catalog, holder: str, rounds: int) -> None:
    """Until ``holder`` has renewed its member lease ``rounds`` more times."""
    for _ in range(rounds):
        before = member_expiry(catalog, holder)
        wait_for(f"a round of {holder}", lambda: member_expiry(catalog, holder) > before)  # noqa: B023


@pytest.mark.cluster
def test_new_collections_are_shared_among_the_live_members(
    catalogs: Callable[[], Catalog], members: Callable[[str], Member]
) -> None:
    catalog = catalogs()
    group = [members(holder) for holder in ("a:1", "b:1", "c:1")]
    wait_for("three live members", lambda: len(catalog.live_leases(MEMBER_LEASE_PREFIX)) == 3)
    ids = make_collections(catalog, *(f"c{i}" for i in range(6)))
    wait_for("every log owned", lambda: set().union(*(m.owned() for m in group)) == set(ids))
    # Each log has one owner, the one the catalog names, and the load is even.
    by_catalog = owners(catalog)
    for member in group:
        mine = member.owned()
        assert mine == {cid for cid, holder in by_catalog.items() if holder == member.holder}
        assert len(mine) == 2, {m.holder: sorted(m.owned()) for m in group}
        assert {log_lease_collection(lease.name) for lease in member.acquired} == mine
        for cid in mine:
            lease = member.ownership.lease_of(cid)
            assert lease is not None and lease == catalog.current_lease(log_lease_name(cid))
    assert group[0].ownership.lease_of(next(iter(group[1].owned()))) is None


@pytest.mark.cluster
def test_the_only_live_member_takes_every_log_and_a_closed_members_logs_are_adopted(
    catalogs: Callable[[], Catalog], members: Callable[[str], Member]
) -> None:
    catalog = catalogs()
    ids = make_collections(catalog, "x", "y", "z", "w")
    first = members("a:1")
    wait_for("the only member owning every log", lambda: first.owned() == set(ids))
    second = members("b:1")
    wait_for_rounds(catalog, "b:1", 2)
    assert second.owned() == set()  # nothing is taken from a live owner
    first.ownership.close()  # gives everything up at once
    assert first.owned() == set() and first.ownership.lease_of(ids[0]) is None
    with pytest.raises(ServiceUnavailable):
        first.ownership.take(ids[0])
    assert [lease.name for lease in catalog.live_leases(MEMBER_LEASE_PREFIX)] == [member_lease_name("b:1")]
    wait_for("the other member adopting every log", lambda: second.owned() == set(ids))
    for cid in ids:
        lease = catalog.current_lease(log_lease_name(cid))
        assert lease is not None and lease.holder == "b:1" and lease.token == 2
    assert first.lost == []  # closing is no loss


@pytest.mark.cluster
def test_a_steal_moves_a_log_at_once_and_its_old_owner_is_told(
    catalogs: Callable[[], Catalog], members: Callable[[str], Member]
) -> None:
    catalog = catalogs()
    (cid,) = make_collections(catalog, "stolen")
    owner = members("a:1")
    wait_for("an owner", lambda: owner.owned() == {cid})
    before = owner.ownership.lease_of(cid)
    assert before is not None
    coordinator = members("coord:1")
    taken = coordinator.ownership.take(cid)
    assert (taken.holder, taken.token) == ("coord:1", before.token + 1)
    assert coordinator.acquired == [taken]  # told before take returned
    assert coordinator.ownership.lease_of(cid) == taken
    wait_for("the old owner told of its loss", lambda: owner.lost == [cid])
    assert owner.ownership.lease_of(cid) is None and owner.owned() == set()
    wait_for_rounds(catalog, "coord:1", 2)
    renewed = coordinator.ownership.lease_of(cid)  # kept and renewed by its rounds
    assert renewed is not None and renewed.token == taken.token and renewed.expires_at > taken.expires_at
    assert owner.acquired == [before]  # the old owner does not take it back while it lives


@pytest.mark.cluster
def test_a_dropped_lease_is_lost_and_a_forgotten_one_is_not(
    catalogs: Callable[[], Catalog], members: Callable[[str], Member]
) -> None:
    catalog = catalogs()
    dropped, forgotten = make_collections(catalog, "dropped", "forgotten")
    owner = members("a:1")
    wait_for("an owner", lambda: owner.owned() == {dropped, forgotten})
    # The coordinator drops both collections: out of the catalog, and their leases deleted.
    catalog.drop_collection(dropped)
    catalog.drop_collection(forgotten)
    owner.ownership.forget(forgotten)
    assert owner.ownership.lease_of(forgotten) is None
    catalog.drop_lease(log_lease_name(dropped))
    catalog.drop_lease(log_lease_name(forgotten))
    wait_for("the dropped lease lost", lambda: owner.lost == [dropped])
    wait_for_rounds(catalog, "a:1", 2)
    assert owner.lost == [dropped] and owner.owned() == set()
    assert catalog.live_leases(LOG_LEASE_PREFIX) == []  # a dropped collection is not adopted


@pytest.mark.cluster
def test_a_member_whose_renewals_hang_stops_claiming_its_log_at_expiry(
    catalogs: Callable[[], Catalog], members: Callable[[str], Member], postgres_database: str
) -> None:
    catalog = catalogs()
    (cid,) = make_collections(catalog, "hang")
    member = members("a:1")
    wait_for("an owner", lambda: member.owned() == {cid})
    first = member.ownership.lease_of(cid)
    assert first is not None
    # The leases table locked away: every statement of the member's rounds waits.
    with psycopg.connect(postgres_database, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE leases IN ACCESS EXCLUSIVE MODE")
        wait_for("the lease to run out", lambda: member.ownership.lease_of(cid) is None)
        assert member.owned() == set() and member.lost == []  # its round still waits
        blocker.execute("ROLLBACK")
    wait_for("the log owned again", lambda: member.ownership.lease_of(cid) is not None)
    again = member.ownership.lease_of(cid)
    assert again is not None
    if member.lost:  # the round that waited found it expired: lost, then adopted anew
        assert member.lost == [cid] and again.token == first.token + 1
    else:  # the renewal that waited went through: nobody took it meanwhile, same token
        assert again.token == first.token


class MemberProcess:
    """A member in a process of its own (this file run as a script): its events, line by line."""

    def __init__(self, url: str, data_dir: Path, holder: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, url, str(data_dir), holder, str(TTL_S)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def next_lines(self, count: int) -> list[str]:
        return [self.lines.get(timeout=WAIT_S) for _ in range(count)]

    def stop(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)
        assert self.process.stdin is not None
        self.process.stdin.close()  # it closes its ownership and exits
        try:
            self.process.wait(WAIT_S)
        finally:
            self.process.kill()


@pytest.mark.cluster
def test_a_paused_member_loses_its_logs_to_a_live_one(
    catalogs: Callable[[], Catalog], members: Callable[[str], Member], postgres_database: str, tmp_path: Path
) -> None:
    catalog = catalogs()
    ids = make_collections(catalog, "p", "q", "r")
    paused = MemberProcess(postgres_database, tmp_path, "paused:1")
    try:
        first_lines = paused.next_lines(4)  # its first round may print before "started"
        assert "started" in first_lines
        adopted = [line.split() for line in first_lines if line != "started"]
        assert sorted((word, int(cid)) for word, cid, _ in adopted) == [
            ("acquired", cid) for cid in sorted(ids)
        ]
        os.kill(paused.process.pid, signal.SIGSTOP)  # a GC pause, a frozen VM: no renewals
        live = members("live:1")
        wait_for("the live member adopting every log", lambda: live.owned() == set(ids))
        os.kill(paused.process.pid, signal.SIGCONT)
        # Awake, its leases are past their expiry: lost, whoever holds them now.
        woke = paused.next_lines(3)
        assert sorted(woke) == sorted(f"lost {cid}" for cid in ids)
        wait_for_rounds(catalog, "paused:1", 2)
        assert live.owned() == set(ids) and live.lost == []
        assert set(owners(catalog).values()) == {"live:1"}
    finally:
        paused.stop()
    assert paused.process.returncode == 0
    assert paused.lines.empty()  # nothing acquired nor lost after it woke


def _member_process(url: str, data_dir: str, holder: str, ttl_s: str) -> None:
    catalog = open_catalog(url, Path(data_dir))

    def acquired(lease: Lease) -> None:
        print(f"acquired {log_lease_collection(lease.name)} {lease.token}", flush=True)

    def lost(collection_id: int) -> None:
        print(f"lost {collection_id}", flush=True)

    ownership = LogOwnership(catalog, holder, ttl_s=float(ttl_s), on_acquired=acquired, on_lost=lost)
    ownership.start()
    print("started", flush=True)
    sys.stdin.read()  # until the test closes it
    ownership.close()
    catalog.close()


if __name__ == "__main__":
    _member_process(*sys.argv[1:5])
