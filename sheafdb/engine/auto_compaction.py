"""Background compaction: one thread per engine merges small segments when it is worth it.

The thread wakes when a seal happened (``poke``) or every ``interval`` seconds, and compacts
each collection that ``worth_compacting`` picks (a partition with ``min_segments`` small
segments, or as many deletes segments). Compaction holds only the collection's ``seal_lock``:
readers work on snapshots and writers never wait for it (a writer that finds a seal or a
compaction running skips its own seal). ``close`` stops the thread after the compaction it
may be in finishes, so the catalog is never closed under it.

Locks: none of its own; ``_wake`` and ``_stop`` are thread-safe Events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from sheafdb.engine.collection import Collection
from sheafdb.engine.compaction import Compactor, worth_compacting

log = logging.getLogger(__name__)


class BackgroundCompactor:
    def __init__(
        self,
        compactor: Compactor,
        collections: Callable[[], Iterable[Collection]],
        *,
        seal_bytes: int,
        min_segments: int,
        interval: float,
    ) -> None:
        self._compactor = compactor
        self._collections = collections
        self._seal_bytes = seal_bytes
        self._min_segments = min_segments
        self._interval = interval
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
            for coll in list(self._collections()):
                if self._stop.is_set():
                    return
                self._compact_if_worth_it(coll)

    def _compact_if_worth_it(self, coll: Collection) -> None:
        try:
            if worth_compacting(coll, self._seal_bytes, self._min_segments):
                self._compactor.compact(coll, self._seal_bytes)
        except Exception:  # noqa: BLE001 - a failed compaction must not kill the thread
            # The next round looks again; the merged files of a failed attempt are deleted.
            log.exception("background compaction of collection %s failed", coll.name)
