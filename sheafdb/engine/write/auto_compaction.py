"""Background compaction: one thread per engine merges segments when it is worth it.

The thread wakes when a seal happened (``poke``) or every ``interval`` seconds, and compacts
each collection that ``worth_compacting`` picks (compaction.py: tiny segments, a large group
of half the target, or as many deletes segments). A partition whose data (its sealed segments,
its growing rows) has not changed for ``idle_s`` seconds is packed: the small tail the large
rule leaves is merged once writes stop. Compaction holds the collection's ``seal_lock``
only to swap: readers work on snapshots and writers never wait for it. ``close`` stops the
thread after the compaction it may be in finishes, so the catalog is never closed under it.

Locks: none of its own; ``_wake`` and ``_stop`` are thread-safe Events, and the idle tracker
is touched by this thread only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError

from sheafdb.engine.collection import Collection
from sheafdb.engine.write.compaction import CompactionPolicy, Compactor, worth_compacting

log = logging.getLogger(__name__)

# What a partition's data looks like to the tracker: its sealed segment ids, its growing rows.
Fingerprint = tuple[tuple[int, ...], int]


class IdleTracker:
    """When each (collection, partition) last changed, as seen at each look."""

    def __init__(self, idle_s: float, clock: Callable[[], float]) -> None:
        self._idle_s = idle_s
        self._clock = clock
        self._seen: dict[tuple[int, int], tuple[Fingerprint, float]] = {}

    def idle_partitions(self, coll: Collection) -> frozenset[int]:
        """The partitions of ``coll`` unchanged for ``idle_s`` seconds (first look: not idle)."""
        snapshot = coll.snapshot()
        now = self._clock()
        idle = set()
        for partition_id in coll.partitions.values():
            segment_ids = tuple(s.segment_id for s in snapshot.sealed if s.partition_id == partition_id)
            growing = snapshot.growing.get(partition_id)
            fingerprint = (segment_ids, 0 if growing is None else growing.num_rows)
            key = (coll.collection_id, partition_id)
            seen = self._seen.get(key)
            if seen is None or seen[0] != fingerprint:
                self._seen[key] = (fingerprint, now)
            elif now - seen[1] >= self._idle_s:
                idle.add(partition_id)
        return frozenset(idle)

    def forget_others(self, collection_ids: set[int]) -> None:
        """Drop what is known about collections no longer there."""
        self._seen = {k: v for k, v in self._seen.items() if k[0] in collection_ids}


class BackgroundCompactor:
    def __init__(
        self,
        compactor: Compactor,
        collections: Callable[[], Iterable[Collection]],
        *,
        policy: CompactionPolicy,
        interval: float,
        idle_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compactor = compactor
        self._collections = collections
        self._policy = policy
        self._interval = interval
        self._idle = IdleTracker(idle_s, clock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sheafdb-compaction", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Something was sealed: look again soon."""
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            collections = list(self._collections())
            self._idle.forget_others({c.collection_id for c in collections})
            for coll in collections:
                if self._stop.is_set():
                    return
                self._compact_if_worth_it(coll)

    def _compact_if_worth_it(self, coll: Collection) -> None:
        try:
            idle = self._idle.idle_partitions(coll)
            if worth_compacting(coll, self._policy, idle):
                self._compactor.compact(coll, self._policy, idle)
        except CancelledError:
            log.info("compaction of collection %s abandoned: the engine is closing", coll.name)
        except Exception:  # noqa: BLE001 - a failed compaction must not kill the thread
            # The next round looks again; the merged files of a failed attempt are deleted.
            log.exception("background compaction of collection %s failed", coll.name)
