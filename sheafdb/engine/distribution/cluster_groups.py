"""Resource groups whose nodes are the cluster's live query workers.

The declared configs and Milvus's rules are the embedded ones (engine/resource_groups.py);
what changes is what a node is: every registered, live worker, in the group its catalog row
names (a new worker starts in ``__default_resource_group``). After every change of configs
(and on each coordinator pass, as workers come and go) the workers are settled by Milvus's
requests / limits rules, now for many nodes: a group short of its ``requests`` takes workers
from groups holding more than they request (its ``transfer_from`` first, then the default
group); a group over its ``limits`` gives workers to groups with room (its ``transfer_to``
first), else back to the default group. A worker whose group was dropped goes home too. Each
move is saved on the worker's row (``move_workers``), which the coordinator then follows.

Lock: the base class's ``_lock`` (the groups map), held while workers are settled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from sheafdb.engine.distribution.workers import worker_view
from sheafdb.engine.resource_groups import (
    DEFAULT_RESOURCE_GROUP,
    ResourceGroup,
    ResourceGroups,
    ResourceGroupStore,
)
from sheafdb.storage.placement_rows import WorkerRecord


class WorkerStore(ResourceGroupStore, Protocol):
    def list_workers(self) -> list[WorkerRecord]: ...
    def move_workers(self, worker_ids: Sequence[int], resource_group: str) -> None: ...


class ClusterResourceGroups(ResourceGroups):
    def __init__(self, store: WorkerStore, clock: Callable[[], float] = time.time) -> None:
        self._workers = store
        self._clock = clock
        super().__init__(store)

    def refresh(self) -> None:
        """Follow the workers that came, went or must move."""
        with self._lock:
            self._settle_node()

    def get(self, name: str) -> ResourceGroup:
        self.refresh()
        return super().get(name)

    def drop(self, name: str) -> None:
        super().drop(name)
        self.refresh()

    def transfer_node(self, source: str, target: str, num_node: int) -> None:
        self.refresh()  # the node counts it checks are the live workers'
        super().transfer_node(source, target, num_node)

    # -- inside the lock ---------------------------------------------------------------------
    def _settle_node(self) -> None:
        live = worker_view(self._workers.list_workers(), self._clock()).live
        was = {w.worker_id: w.resource_group for w in live}
        group_of = {w: (g if g in self._groups else DEFAULT_RESOURCE_GROUP) for w, g in was.items()}
        for _ in range(len(group_of) * len(self._groups) + 1):
            move = self._next_move(group_of)
            if move is None:
                break
            group_of[move[0]] = move[1]
        moved: dict[str, list[int]] = {}
        for worker, group in group_of.items():
            if was[worker] != group:
                moved.setdefault(group, []).append(worker)
        for group, workers in moved.items():
            self._workers.move_workers(workers, group)
        nodes = {name: tuple(sorted(w for w, g in group_of.items() if g == name)) for name in self._groups}
        self._commit({n: replace(g, nodes=nodes[n]) for n, g in self._groups.items() if g.nodes != nodes[n]})

    def _next_move(self, group_of: Mapping[int, str]) -> tuple[int, str] | None:
        """One worker to move and where, or None when every rule is content."""
        count = {name: 0 for name in self._groups}
        for group in group_of.values():
            count[group] += 1

        def members(name: str) -> list[int]:
            return sorted((w for w, g in group_of.items() if g == name), reverse=True)

        short = [g for g in self._groups.values() if g.config.requested > count[g.name]]
        for needy in sorted(short, key=lambda g: (count[g.name] - g.config.requested, g.name)):
            donors = [
                g for g in self._groups.values() if count[g.name] > g.config.requested and g is not needy
            ]
            if donors:
                donor = max(
                    donors,
                    key=lambda g: (
                        g.name in needy.config.transfer_from,
                        g.name == DEFAULT_RESOURCE_GROUP,
                        count[g.name] - g.config.requested,
                    ),
                )
                return members(donor.name)[0], needy.name
        for over in self._groups.values():
            if over.name == DEFAULT_RESOURCE_GROUP or count[over.name] <= over.config.limited:
                continue
            room = [g for g in self._groups.values() if g is not over and g.config.limited > count[g.name]]
            there = (
                max(room, key=lambda g: (g.name in over.config.transfer_to, g.config.limited - count[g.name]))
                if room
                else self._groups[DEFAULT_RESOURCE_GROUP]
            )
            return members(over.name)[0], there.name
        return None
