"""Hybrid timestamps: wall-clock milliseconds in the high bits, a counter in the low 18.

Milvus orders every write by such a timestamp (a TSO); a delete hides rows whose ``__ts`` is
smaller than its own, so the oracle must never hand out the same value twice or go backwards,
even when the wall clock does (NTP step) or after a restart (the ``floor``).
"""

from __future__ import annotations

import threading
import time

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
