"""Leases with fencing tokens (Contract A) and the log owners' helpers (take, list, renew many,
drop), on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sheafdb.storage.catalog import DEFAULT_DATABASE, Catalog, open_catalog
from sheafdb.storage.lease_rows import (
    LOG_LEASE_PREFIX,
    MEMBER_LEASE_PREFIX,
    WRITER_LEASE,
    Lease,
    log_lease_collection,
    log_lease_name,
    member_lease_name,
)

OpenCatalog = Callable[[], Catalog]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.cluster)])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> OpenCatalog:
    """Opens another connection to the test's catalog (another process, as far as it knows)."""
    if request.param == "sqlite":
        return lambda: open_catalog(None, tmp_path / "meta")
    url = request.getfixturevalue("postgres_database")
    return lambda: open_catalog(url, tmp_path)


def test_first_taker_gets_token_one_and_others_wait(reopen: OpenCatalog) -> None:
    a, b = reopen(), reopen()
    try:
        assert a.current_lease(WRITER_LEASE) is None
        lease = a.try_acquire_lease(WRITER_LEASE, "a:1", ttl_s=60)
        assert lease is not None
        assert (lease.name, lease.holder, lease.token) == (WRITER_LEASE, "a:1", 1)
        assert b.current_lease(WRITER_LEASE) == lease
        assert b.try_acquire_lease(WRITER_LEASE, "b:1", ttl_s=60) is None
        # The holder itself cannot take it twice either: a restarted holder waits like anyone.
        assert a.try_acquire_lease(WRITER_LEASE, "a:1", ttl_s=60) is None
        assert b.current_lease(WRITER_LEASE) == lease
    finally:
        a.close()
        b.close()


def test_expired_lease_is_taken_over_with_the_next_token_and_the_old_holder_is_fenced(
    reopen: OpenCatalog,
) -> None:
    a, b = reopen(), reopen()
    try:
        old = a.try_acquire_lease(WRITER_LEASE, "a:1", ttl_s=0)  # expires at once
        assert old is not None
        new = b.try_acquire_lease(WRITER_LEASE, "b:1", ttl_s=60)
        assert new is not None and (new.holder, new.token) == ("b:1", old.token + 1)
        assert a.renew_lease(old, ttl_s=60) is None  # lost: someone else's token now
        renewed = b.renew_lease(new, ttl_s=120)
        assert renewed is not None and renewed.token == new.token
        assert renewed.expires_at >= new.expires_at
        assert a.current_lease(WRITER_LEASE) == renewed
    finally:
        a.close()
        b.close()


def test_an_expired_lease_nobody_took_is_renewed_with_its_token(reopen: OpenCatalog) -> None:
    cat = reopen()
    try:
        lease = cat.try_acquire_lease(WRITER_LEASE, "a:1", ttl_s=0)
        assert lease is not None
        renewed = cat.renew_lease(lease, ttl_s=60)
        assert renewed is not None and renewed.token == lease.token
    finally:
        cat.close()


def test_released_lease_is_free_at_once_and_release_of_a_lost_one_changes_nothing(
    reopen: OpenCatalog,
) -> None:
    a, b = reopen(), reopen()
    try:
        first = a.try_acquire_lease(WRITER_LEASE, "a:1", ttl_s=60)
        assert first is not None
        a.release_lease(first)
        second = b.try_acquire_lease(WRITER_LEASE, "b:1", ttl_s=60)
        assert second is not None and second.token == first.token + 1
        a.release_lease(first)  # stale: the new holder keeps it
        assert b.current_lease(WRITER_LEASE) == second
        # Leases are per name: another name is its own row with its own tokens.
        other = a.try_acquire_lease("writer/shard-1", "a:1", ttl_s=60)
        assert other is not None and other.token == 1
    finally:
        a.close()
        b.close()


def test_of_many_contenders_for_an_expired_lease_exactly_one_wins(reopen: OpenCatalog) -> None:
    catalogs = [reopen() for _ in range(6)]
    try:
        expired = catalogs[0].try_acquire_lease(WRITER_LEASE, "old:1", ttl_s=0)
        assert expired is not None
        won: list[Lease] = []
        start = threading.Barrier(len(catalogs))

        def contend(i: int) -> None:
            start.wait()
            lease = catalogs[i].try_acquire_lease(WRITER_LEASE, f"h{i}:1", ttl_s=60)
            if lease is not None:
                won.append(lease)

        threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(catalogs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1
        assert won[0].token == expired.token + 1
        assert catalogs[0].current_lease(WRITER_LEASE) == won[0]
    finally:
        for cat in catalogs:
            cat.close()


def test_log_and_member_lease_names() -> None:
    assert log_lease_name(42) == "log/42" and log_lease_name(42).startswith(LOG_LEASE_PREFIX)
    assert member_lease_name("h:19530") == "member/h:19530"
    assert member_lease_name("h:19530").startswith(MEMBER_LEASE_PREFIX)
    assert log_lease_collection(log_lease_name(42)) == 42
    assert log_lease_collection(member_lease_name("h:1")) is None
    assert log_lease_collection("log/x") is None


def test_take_lease_steals_whoever_holds_it_and_fences_the_holder(reopen: OpenCatalog) -> None:
    a, b = reopen(), reopen()
    name = log_lease_name(7)
    try:
        first = b.take_lease(name, "b:1", ttl_s=60)  # a missing row is made
        assert (first.name, first.holder, first.token) == (name, "b:1", 1)
        held = a.try_acquire_lease(log_lease_name(8), "a:1", ttl_s=60)
        assert held is not None
        stolen = a.take_lease(name, "a:1", ttl_s=60)  # live, someone else's: taken anyway
        assert (stolen.holder, stolen.token) == ("a:1", 2)
        assert b.current_lease(name) == stolen
        assert b.renew_lease(first, ttl_s=60) is None  # the old holder lost it
        assert a.take_lease(name, "a:1", ttl_s=60).token == 3  # its own: token + 1 again
        assert b.current_lease(log_lease_name(8)) == held  # other rows untouched
    finally:
        a.close()
        b.close()


def test_live_leases_lists_the_unexpired_leases_of_a_prefix(reopen: OpenCatalog) -> None:
    cat = reopen()
    try:
        assert cat.live_leases(LOG_LEASE_PREFIX) == []
        live = [cat.take_lease(log_lease_name(cid), "a:1", ttl_s=60) for cid in (3, 1)]
        cat.take_lease(log_lease_name(2), "b:1", ttl_s=0)  # expired
        member = cat.take_lease(member_lease_name("a:1"), "a:1", ttl_s=60)
        writer = cat.try_acquire_lease(WRITER_LEASE, "a:1", ttl_s=60)
        assert writer is not None
        # A name that merely looks alike ("login/...", "LOG/...") is not of the prefix.
        cat.take_lease("login/1", "a:1", ttl_s=60)
        cat.take_lease("LOG/1", "a:1", ttl_s=60)
        assert cat.live_leases(LOG_LEASE_PREFIX) == sorted(live, key=lambda lease: lease.name)
        assert cat.live_leases(MEMBER_LEASE_PREFIX) == [member]
        cat.drop_lease(log_lease_name(1))
        assert [lease.name for lease in cat.live_leases(LOG_LEASE_PREFIX)] == [log_lease_name(3)]
        assert cat.current_lease(log_lease_name(1)) is None
        cat.drop_lease(log_lease_name(99))  # no such row: nothing happens
    finally:
        cat.close()


def test_renew_leases_renews_those_still_held_in_one_go(reopen: OpenCatalog) -> None:
    a, b = reopen(), reopen()
    try:
        assert a.renew_leases([], ttl_s=60) == []
        mine = [a.take_lease(log_lease_name(cid), "a:1", ttl_s=1) for cid in (1, 2, 3, 4)]
        member = a.take_lease(member_lease_name("a:1"), "a:1", ttl_s=0)  # expired, not taken
        b.take_lease(log_lease_name(2), "b:1", ttl_s=60)  # taken over
        b.drop_lease(log_lease_name(3))  # dropped (its collection was)
        renewed = a.renew_leases([member, *mine], ttl_s=120)
        assert [(lease.name, lease.token) for lease in renewed] == [
            (member.name, member.token),
            (mine[0].name, mine[0].token),
            (mine[3].name, mine[3].token),
        ]
        assert all(lease.expires_at > mine[0].expires_at + 60 for lease in renewed)
        for lease in renewed:
            assert b.current_lease(lease.name) == lease
        taken = b.current_lease(log_lease_name(2))
        assert taken is not None and taken.holder == "b:1"
        # Only a lease with the same holder is renewed, whatever its token.
        forged = Lease(mine[0].name, "b:1", mine[0].token, 0.0)
        assert a.renew_leases([forged], ttl_s=60) == []
    finally:
        a.close()
        b.close()


def test_dropping_the_log_lease_of_a_collection_still_there_keeps_its_tokens_growing(
    reopen: OpenCatalog,
) -> None:
    """A drop that failed part way drops the lease of a collection still in the catalog: the
    row stays, free and fenced, so the next owner's token is not one an old owner carries."""
    from tests.engine.conftest import basic_schema

    cat = reopen()
    try:
        cid = cat.create_collection(
            DEFAULT_DATABASE,
            "kept",
            basic_schema(),
            partition_names=["_default"],
            properties={},
            consistency_level=0,
            shards_num=1,
            created_ts=1,
        ).collection_id
        name = log_lease_name(cid)
        old = cat.try_acquire_lease(name, "a:1", ttl_s=60)
        assert old is not None and old.token == 1
        cat.drop_lease(name)
        assert cat.live_leases(LOG_LEASE_PREFIX) == []
        assert cat.renew_leases([old], ttl_s=60) == []  # its holder is fenced
        new = cat.try_acquire_lease(name, "b:1", ttl_s=60)
        assert new is not None and new.token == old.token + 2
        # Once the collection is gone, its lease row goes with the drop.
        cat.drop_collection(cid)
        cat.drop_lease(name)
        assert cat.current_lease(name) is None
    finally:
        cat.close()
