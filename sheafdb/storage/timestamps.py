"""Hybrid timestamps: wall-clock milliseconds in the high bits, a counter in the low 18.

Milvus orders every write by such a timestamp (a TSO); a delete hides rows whose ``__ts`` is
smaller than its own, so the oracle must never hand out the same value twice or go backwards,
even when the wall clock does (NTP step) or after a restart (the ``floor``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

LOGICAL_BITS = 18
LOGICAL_MASK = (1 << LOGICAL_BITS) - 1


def compose(physical_ms: int, logical: int) -> int:
    if not 0 <= logical <= LOGICAL_MASK:
        raise ValueError(f"logical part {logical} does not fit in {LOGICAL_BITS} bits")
    return (physical_ms << LOGICAL_BITS) | logical


def physical_ms(ts: int) -> int:
    return ts >> LOGICAL_BITS


def logical(ts: int) -> int:
    return ts & LOGICAL_MASK


class TimestampOracle:
    """Issues strictly increasing hybrid timestamps; thread-safe.

    Lock: ``_lock`` guards ``_last`` so that two threads can never read the same previous
    value and issue the same timestamp.
    """

    def __init__(self, floor: int = 0) -> None:
        self._lock = threading.Lock()
        self._last = floor

    def next(self) -> int:
        with self._lock:
            # Prefer the clock; if it is behind the last value (clock step, burst within one
            # millisecond, or a restart floor in the future) count on from the last value.
            candidate = compose(int(time.time() * 1000), 0)
            self._last = max(candidate, self._last + 1)
            return self._last

    def last(self) -> int:
        with self._lock:
            return self._last

    def read_stamp(self) -> int:
        """A timestamp for a reply (a read's, AllocTimestamp): at or above every write this
        process stamped. Here a fresh one, as ``next``."""
        return self.next()


# Timestamps a shared oracle reserves per round trip to the catalog: a write costs one
# timestamp, so a busy writer reserves once per this many writes.
SHARED_BLOCK = 4096
# A block older than this is set aside for a fresh one, so that timestamps keep following
# the wall clock (an idle writer's next write costs one round trip).
SHARED_BLOCK_AGE_MS = 1000


class SharedTimestampOracle(TimestampOracle):
    """Issues timestamps from blocks reserved in the catalog (``reserve(count, floor)``:
    storage/allocator_rows.py), so that every writer process on one catalog issues unique
    timestamps, and one that starts (or takes over) issues only timestamps above every one
    the others reserved before. Strictly increasing in this process, as the local oracle.

    Lock: ``_lock`` (the base's) guards the block and ``_last``; a reservation runs under it
    (one round trip per block), so no two threads issue from the same block position.
    """

    def __init__(
        self,
        reserve: Callable[[int, int], range],
        floor: int = 0,
        *,
        block: int = SHARED_BLOCK,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        super().__init__(floor)
        self._reserve = reserve
        self._block = block
        self._clock_ms = clock_ms
        self._end = floor  # the last timestamp of the current block (none yet: _last == _end)
        self._block_ms = 0  # the wall clock's milliseconds when the block was reserved

    def next(self) -> int:
        with self._lock:
            now_ms = self._clock_ms()
            if self._last >= self._end or now_ms - self._block_ms > SHARED_BLOCK_AGE_MS:
                floor = max(compose(now_ms, 0), self._last)
                reserved = self._reserve(self._block, floor)
                self._last, self._end = reserved.start - 1, reserved.stop - 1
                self._block_ms = now_ms
            self._last += 1
            return self._last

    def read_stamp(self) -> int:
        """From this process's clock, at or above its last timestamp, without a reservation:
        a reply's timestamp orders nothing (it needs no uniqueness), and reads of loaded
        data go on while the catalog's database is away."""
        with self._lock:
            return max(compose(self._clock_ms(), 0), self._last)
