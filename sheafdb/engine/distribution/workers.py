"""The registry of query workers as the coordinator sees it: live or dead by their leases.

Workers register and renew their own rows (storage/placement_rows.py); a worker whose lease
(``expires_at``, the worker's clock) has passed is dead: it serves nothing and its segments are
placed elsewhere. A worker dead for ``FORGET_AFTER_S`` is removed from the catalog, so the
lists and the resource groups' nodes stop naming it (a worker that comes back registers again).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sheafdb.storage.placement_rows import WorkerRecord

FORGET_AFTER_S = 300.0


@dataclass(frozen=True)
class WorkerView:
    live: tuple[WorkerRecord, ...]
    dead: tuple[WorkerRecord, ...]

    @property
    def live_ids(self) -> frozenset[int]:
        return frozenset(w.worker_id for w in self.live)

    def in_group(self, group: str) -> list[WorkerRecord]:
        return [w for w in self.live if w.resource_group == group]

    def forgettable(self, now: float) -> list[int]:
        return [w.worker_id for w in self.dead if now - w.expires_at > FORGET_AFTER_S]


def worker_view(workers: Iterable[WorkerRecord], now: float) -> WorkerView:
    live: list[WorkerRecord] = []
    dead: list[WorkerRecord] = []
    for w in workers:
        (live if w.expires_at > now else dead).append(w)
    return WorkerView(tuple(live), tuple(dead))
