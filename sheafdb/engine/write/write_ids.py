"""Relayed inserts and upserts applied once, though a proxy may send them twice.

A cluster proxy relays a write to the writer and, when that call ends with UNAVAILABLE (the
writer died or is being replaced), sends it again to the next writer. If the first writer had
committed the write before its answer was lost, a second insert would add the rows again
under new ids (an upsert of an auto_id collection too). So the proxy tags each relayed
insert and upsert with an id of the client's call (the same on every try) and marks the
tries after the first (``WriteTag``). The write's log record carries the id
(storage/log.py, PostgreSQL); a retried try first looks for that record in the collection's
log and, when it is there, answers from it (its keys, count and timestamp) without writing.

Why this is enough: a writer that took over recovered the log after its takeover, which waits
for every append of the deposed writer (the fence), so the record, if it committed, is
there; and a retry that reaches the same writer while the first try still runs waits for that
try to end first, and either try that comes after the other answered gets that answer
(``TaggedWrites``, which keeps the last answers in memory). Not covered: a record already
sealed into a segment (the log is trimmed at a seal) when the retry looks on another writer;
retries come within the proxy's wait (30 s), and a seal in that window is unlikely but
possible. Deletes need no id: a repeated delete of the same keys changes nothing.

Lock: ``TaggedWrites._lock`` guards ``_running`` (the ids of the tries running here) and
``_answered`` (the last answers, oldest first).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sheafdb.engine.collection import Collection
from sheafdb.engine.models import MutationResult

# The answers kept in memory, bounded by their rows (their keys are kept): a retry comes
# within the proxy's wait, by when far fewer writes than this passed.
ANSWERS_KEPT_ROWS = 1 << 20


@dataclass(frozen=True)
class WriteTag:
    id: str  # the client call's id, the same on every try
    retried: bool  # an earlier try may have been applied (here, or by a deposed writer)


class TaggedWrites:
    """The tagged tries of this writer: one try of a call runs at a time, and the answers of
    the last ones are kept, so a try that comes after another of the same call answered
    (a retry that overtook the first try, or the first try after its retry) answers alike."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Keyed by (collection id, call id).
        self._running: dict[tuple[int, str], threading.Event] = {}
        self._answered: OrderedDict[tuple[int, str], MutationResult] = OrderedDict()
        self._answered_rows = 0

    def apply_once(
        self, coll: Collection, tag: WriteTag, write: Callable[[], MutationResult]
    ) -> MutationResult:
        """``write()``'s answer, unless a try of the same call answered here already or, for a
        retried try, was logged (then that answer, and nothing is written)."""
        key = (coll.collection_id, tag.id)
        while True:
            with self._lock:
                answered = self._answered.get(key)
                if answered is not None:
                    return answered
                running = self._running.get(key)
                if running is None:
                    self._running[key] = done = threading.Event()
                    break
            running.wait()  # the same call's other try, running here: its outcome first
        try:
            result = logged_result(coll, tag.id) if tag.retried else None
            if result is None:
                result = write()
            self._keep(key, result)
            return result
        finally:
            with self._lock:
                del self._running[key]
            done.set()

    def _keep(self, key: tuple[int, str], result: MutationResult) -> None:
        with self._lock:
            self._answered[key] = result
            self._answered_rows += result.count
            while self._answered_rows > ANSWERS_KEPT_ROWS and len(self._answered) > 1:
                _, oldest = self._answered.popitem(last=False)
                self._answered_rows -= oldest.count


def logged_result(coll: Collection, write_id: str) -> MutationResult | None:
    """The answer of the write logged with ``write_id``, if its record is in the log."""
    record = coll.wal.find_write(write_id)
    if record is None:
        return None
    keys = record.batch.column(coll.schema.primary_field.name).combine_chunks()
    return MutationResult(ids=keys, count=record.batch.num_rows, timestamp=record.timestamp)
