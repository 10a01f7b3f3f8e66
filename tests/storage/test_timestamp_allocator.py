"""The catalog's shared allocator (storage/allocator_rows.py, SharedTimestampOracle): timestamps
and ids that several writer processes on one catalog take without ever colliding, on SQLite and
on a real PostgreSQL (connections of their own, and separate OS processes)."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sheafdb.storage.catalog import Catalog, open_catalog
from sheafdb.storage.timestamps import SHARED_BLOCK_AGE_MS, SharedTimestampOracle, compose, physical_ms

OpenCatalog = Callable[[], Catalog]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.cluster)])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> OpenCatalog:
    """Opens another connection to the test's catalog (another process, as far as it knows)."""
    if request.param == "sqlite":
        return lambda: open_catalog(None, tmp_path / "meta")
    url = request.getfixturevalue("postgres_database")
    return lambda: open_catalog(url, tmp_path)


def test_reservations_never_overlap_and_each_is_above_the_earlier_ones_and_its_floor(
    reopen: OpenCatalog,
) -> None:
    a, b = reopen(), reopen()
    try:
        blocks = [a.reserve_timestamps(100, 0), b.reserve_timestamps(5, 0), a.reserve_timestamps(1, 0)]
        for earlier, later in zip(blocks, blocks[1:], strict=False):
            assert later.start > earlier[-1]
        assert [len(block) for block in blocks] == [100, 5, 1]
        high = blocks[-1][-1] + 10**9
        above = b.reserve_timestamps(10, high)
        assert above.start > high
        assert a.reserve_timestamps(1, 0).start > above[-1]  # a low floor never goes back
        with pytest.raises(ValueError):
            a.reserve_timestamps(0, 0)
    finally:
        a.close()
        b.close()


def test_oracles_on_one_catalog_issue_unique_timestamps_each_strictly_increasing(
    reopen: OpenCatalog,
) -> None:
    catalogs = [reopen(), reopen()]
    issued: list[list[int]] = [[], []]
    try:
        oracles = [SharedTimestampOracle(c.reserve_timestamps, block=8) for c in catalogs]

        def issue(i: int) -> None:
            issued[i].extend(oracles[i].next() for _ in range(1500))

        threads = [threading.Thread(target=issue, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for mine in issued:
            assert all(x < y for x, y in zip(mine, mine[1:], strict=False))
        everything = issued[0] + issued[1]
        assert len(set(everything)) == len(everything)
        # A writer that starts later (a takeover) with no floor of its own (nothing recovered)
        # still issues above every timestamp the others could have used.
        later = SharedTimestampOracle(catalogs[0].reserve_timestamps)
        assert later.next() > max(everything)
    finally:
        for catalog in catalogs:
            catalog.close()


def test_a_block_older_than_its_age_is_set_aside_for_one_at_the_clock(reopen: OpenCatalog) -> None:
    catalog = reopen()
    now = [1_000_000]  # the oracle's wall clock, in ms, moved by the test
    try:
        oracle = SharedTimestampOracle(catalog.reserve_timestamps, block=1000, clock_ms=lambda: now[0])
        first = oracle.next()
        assert physical_ms(first) >= now[0]
        assert oracle.next() == first + 1  # from the same block
        now[0] += SHARED_BLOCK_AGE_MS + 1
        fresh = oracle.next()
        assert fresh > compose(now[0], 0)  # a new block, at the clock again
    finally:
        catalog.close()


def _allocate_in_a_process(url: str, data_dir: str, rounds: int) -> tuple[list[int], list[int]]:
    catalog = open_catalog(url, Path(data_dir))
    try:
        oracle = SharedTimestampOracle(catalog.reserve_timestamps, block=16)
        timestamps, ids = [], []
        for _ in range(rounds):
            timestamps.extend(oracle.next() for _ in range(50))
            ids.extend(catalog.allocate_ids(50))
        return timestamps, ids
    finally:
        catalog.close()


@pytest.mark.cluster
def test_writer_processes_on_one_postgresql_never_share_a_timestamp_or_an_id(
    postgres_database: str, tmp_path: Path
) -> None:
    open_catalog(postgres_database, tmp_path).close()  # the tables, made once
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        results = pool.starmap(
            _allocate_in_a_process, [(postgres_database, str(tmp_path / f"p{i}"), 40) for i in range(3)]
        )
    all_timestamps = [ts for timestamps, _ in results for ts in timestamps]
    all_ids = [i for _, ids in results for i in ids]
    assert len(all_timestamps) == len(set(all_timestamps)) == 3 * 40 * 50
    assert len(all_ids) == len(set(all_ids)) == 3 * 40 * 50
    for timestamps, ids in results:
        assert all(x < y for x, y in zip(timestamps, timestamps[1:], strict=False))
        assert all(x < y for x, y in zip(ids, ids[1:], strict=False))


def test_a_read_stamp_needs_no_reservation_and_is_not_below_any_write() -> None:
    reserved: list[range] = []

    def reserve(count: int, floor: int) -> range:
        block = range(floor + 1, floor + 1 + count)
        reserved.append(block)
        return block

    oracle = SharedTimestampOracle(reserve, block=4, clock_ms=lambda: 5)
    assert oracle.read_stamp() == compose(5, 0) and not reserved  # no write yet: the clock
    written = [oracle.next() for _ in range(3)]
    assert len(reserved) == 1
    assert oracle.read_stamp() >= written[-1] and len(reserved) == 1
