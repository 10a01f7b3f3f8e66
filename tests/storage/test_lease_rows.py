"""Leases with fencing tokens (Contract A), on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sheafdb.storage.catalog import Catalog, open_catalog
from sheafdb.storage.lease_rows import WRITER_LEASE, Lease

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
