from __future__ import annotations

import threading
import time

from hypothesis import given
from hypothesis import strategies as st

from sheafdb.storage.timestamps import LOGICAL_MASK, TimestampOracle, compose, logical, physical_ms


@given(st.integers(0, 2**45), st.integers(0, LOGICAL_MASK))
def test_compose_round_trips(ms: int, counter: int) -> None:
    ts = compose(ms, counter)
    assert (physical_ms(ts), logical(ts)) == (ms, counter)


def test_physical_part_is_wall_clock_milliseconds() -> None:
    before = int(time.time() * 1000)
    ts = TimestampOracle().next()
    assert before <= physical_ms(ts) <= int(time.time() * 1000)


def test_never_issues_at_or_below_the_floor() -> None:
    future = compose(int(time.time() * 1000) + 3_600_000, 5)
    oracle = TimestampOracle(floor=future)
    assert [oracle.next() for _ in range(3)] == [future + 1, future + 2, future + 3]


def test_strictly_increasing_across_threads() -> None:
    oracle = TimestampOracle()
    results: list[list[int]] = [[] for _ in range(4)]

    def issue(bucket: list[int]) -> None:
        bucket.extend(oracle.next() for _ in range(2_000))

    threads = [threading.Thread(target=issue, args=(b,)) for b in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [ts for bucket in results for ts in bucket]
    assert len(set(everything)) == len(everything)
    assert all(bucket == sorted(bucket) for bucket in results)
    assert oracle.last() == max(everything)
