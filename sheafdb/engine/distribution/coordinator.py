"""The coordinator: the cluster writer's thread that keeps every loaded collection placed.

It reads everything it needs from the catalog (load configs, segment rows, worker rows, the
placement) and writes the placement back, so a restarted writer (or a standby that takes the
lease) carries on where the last one stopped. A pass, every ``interval_s`` or when poked:

- workers past their lease leave their replicas; their segments go to the replica's other
  live workers, or to a spare worker of the replica's group (still disjoint: a worker joins at
  most one replica of a collection); live workers of a group that no replica of a loaded
  collection holds join its replica with the fewest workers (Milvus spreads a group's nodes
  fairly); a worker moved to another group (TransferNode) leaves;
- new sealed segments (seals, compaction results, imports) are placed, the replica leader
  first when it has room; segments gone from the catalog leave the placement;
- placements of collections no longer loaded (released, dropped) are dropped.

A segment that fits nowhere during a pass stays unplaced (the collection reads Loading) until
a worker with room appears; a new load that does not fit is refused at once instead (``load``).

Lock: ``_lock`` serialises passes with the writer's load and release calls, so a load's
placement is never computed from a half-written one. Thread: ``sheafdb-coordinator``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sheafdb.engine.distribution.loaded_bytes import LoadTarget, load_target
from sheafdb.engine.distribution.placement import (
    WorkerSpace,
    check_fits,
    place_segments,
    replicas_per_group,
    reshape_replicas,
    spread_workers,
)
from sheafdb.engine.distribution.workers import WorkerView, worker_view
from sheafdb.errors import CollectionNotFound
from sheafdb.storage.catalog import Catalog, LoadConfigRecord
from sheafdb.storage.placement_rows import DEFAULT_WORKER_GROUP, ReplicaRecord, SegmentAssignment

log = logging.getLogger(__name__)

INTERVAL_S = 0.5


@dataclass(frozen=True)
class Placement:
    replicas: tuple[ReplicaRecord, ...]
    assignments: tuple[SegmentAssignment, ...]

    def layout(self) -> frozenset[tuple[int, int, int]]:
        """What a save would change (acks aside)."""
        return frozenset((a.replica_id, a.segment_id, a.worker_id) for a in self.assignments)


class Coordinator:
    def __init__(
        self, catalog: Catalog, *, interval_s: float = INTERVAL_S, clock: Callable[[], float] = time.time
    ) -> None:
        self._catalog = catalog
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Called at the start of every pass (the resource groups follow their workers).
        self.before_pass: Callable[[], None] | None = None

    # -- the thread ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sheafdb-coordinator", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception:  # a pass that failed (a lost connection) is tried again next time
                log.exception("placement pass failed")
            self._wake.wait(self._interval_s)
            self._wake.clear()

    # -- the writer's calls ----------------------------------------------------------------
    def workers(self) -> WorkerView:
        return worker_view(self._catalog.list_workers(), self._clock())

    def load(self, config: LoadConfigRecord, resource_groups: Sequence[str]) -> None:
        """Persist a load and its placement, or refuse it at once (nothing saved): Milvus's
        "resource group node not enough" when a group has too few live workers, "memory limit
        exceeded" when a segment fits on no worker of a replica. No resource groups named: the
        groups the collection's replicas live in now (else the default group). A loaded
        collection's replicas change in place: what stays on its worker stays loaded."""
        with self._lock:
            catalog = self._catalog
            record = catalog.get_collection_by_id(config.collection_id)
            target = load_target(catalog, record, config)
            workers = self.workers()
            current = catalog.list_replicas(record.collection_id)
            groups = list(resource_groups) or [r.resource_group for r in current] or [DEFAULT_WORKER_GROUP]
            if not resource_groups and len(current) != config.replica_number:
                groups = groups[:1]
            wanted = replicas_per_group(config.replica_number, groups, DEFAULT_WORKER_GROUP)
            spaces = self._spaces(workers, exclude=record.collection_id)
            assignments = catalog.list_assignments(collection_id=record.collection_id)
            if Counter(r.resource_group for r in current) == Counter(wanted):
                replicas = self._repair(record.collection_id, current, workers)
            elif current:  # a new replica number or new groups: Milvus updates the load in place
                ids = list(catalog.allocate_ids(config.replica_number))
                replicas = reshape_replicas(record.collection_id, current, wanted, ids, list(spaces.values()))
            else:
                ids = list(catalog.allocate_ids(config.replica_number))
                replicas = spread_workers(record.collection_id, wanted, ids, list(spaces.values()))
            placement, unplaced = self._place(target, replicas, assignments, spaces, fresh=False)
            # Refused for what this load adds; a loaded segment waiting for a worker (its own
            # died) is the passes' to place, and a repeated load of it succeeds as in Milvus.
            previous = catalog.get_load_config(record.collection_id)
            before = load_target(catalog, record, previous).sizes if previous is not None else {}
            kept = {r.replica_id for r in current}
            added = {r: [s for s in segs if r not in kept or s not in before] for r, segs in unplaced.items()}
            check_fits(record.name, replicas, target.sizes, spaces, added)
            # The placement first: a crash between the two leaves a placement with no load
            # config, which the next pass drops (a load config with no placement would stay
            # Loading for ever).
            catalog.save_placement(record.collection_id, placement.replicas, placement.assignments)
            catalog.set_load_config(config)

    def release(self, collection_id: int) -> None:
        with self._lock:
            self._catalog.clear_load_config(collection_id)
            self._catalog.drop_placement(collection_id)

    def set_target(self, config: LoadConfigRecord) -> None:
        """A loaded collection's target shrank (partitions released): placed again at once."""
        with self._lock:
            self._catalog.set_load_config(config)
            self._reconcile_locked()

    def move_replicas(self, collection_id: int, replica_ids: Sequence[int], target_group: str) -> None:
        """TransferReplica: the replicas move to ``target_group``'s workers (their segments
        are placed again there by the pass that follows, at once)."""
        with self._lock:
            moved = set(replica_ids)
            replicas = [
                ReplicaRecord(r.collection_id, r.replica_id, target_group, (), 0)
                if r.replica_id in moved
                else r
                for r in self._catalog.list_replicas(collection_id)
            ]
            kept = [
                a
                for a in self._catalog.list_assignments(collection_id=collection_id)
                if a.replica_id not in moved
            ]
            self._catalog.save_placement(collection_id, replicas, kept)
            self._reconcile_locked()

    # -- passes ------------------------------------------------------------------------------
    def reconcile(self) -> None:
        with self._lock:
            self._reconcile_locked()

    def _reconcile_locked(self) -> None:
        catalog = self._catalog
        if self.before_pass is not None:
            self.before_pass()
        now = self._clock()
        workers = self.workers()
        for worker_id in workers.forgettable(now):
            catalog.remove_worker(worker_id)
        configs = {c.collection_id: c for c in catalog.list_load_configs()}
        for collection_id in {r.collection_id for r in catalog.list_replicas()} - set(configs):
            catalog.drop_placement(collection_id)
        targets: dict[int, LoadTarget] = {}
        for collection_id, config in configs.items():
            try:
                record = catalog.get_collection_by_id(collection_id)
            except CollectionNotFound:
                continue  # dropped between the two reads: its placement goes next pass
            targets[collection_id] = load_target(catalog, record, config)
        for collection_id, target in targets.items():
            current = catalog.list_replicas(collection_id)
            if not current:
                continue  # a load still being saved, or one that never was: nothing to repair
            spaces = self._spaces(workers, exclude=collection_id, targets=targets)
            assignments = catalog.list_assignments(collection_id=collection_id)
            replicas = self._repair(collection_id, current, workers)
            placement, unplaced = self._place(target, replicas, assignments, spaces, fresh=True)
            for replica_id, segments in unplaced.items():
                log.warning(
                    "collection %s: %d segment(s) of replica %d fit on no live worker",
                    target.record.name,
                    len(segments),
                    replica_id,
                )
            before = Placement(tuple(current), tuple(assignments))
            if placement.replicas != before.replicas or placement.layout() != before.layout():
                catalog.save_placement(collection_id, placement.replicas, placement.assignments)

    # -- inside the lock ---------------------------------------------------------------------
    def _spaces(
        self, workers: WorkerView, *, exclude: int, targets: Mapping[int, LoadTarget] | None = None
    ) -> dict[int, WorkerSpace]:
        """Every live worker with what it holds for collections other than ``exclude``."""
        if targets is None:
            targets = {}
            for config in self._catalog.list_load_configs():
                if config.collection_id == exclude:
                    continue
                try:
                    record = self._catalog.get_collection_by_id(config.collection_id)
                except CollectionNotFound:
                    continue
                targets[config.collection_id] = load_target(self._catalog, record, config)
        held: dict[int, int] = {}
        for a in self._catalog.list_assignments():
            target = targets.get(a.collection_id)
            if a.collection_id != exclude and target is not None:
                held[a.worker_id] = held.get(a.worker_id, 0) + target.sizes.get(a.segment_id, 0)
        return {
            w.worker_id: WorkerSpace(w.worker_id, w.resource_group, w.budget_bytes, held.get(w.worker_id, 0))
            for w in workers.live
        }

    @staticmethod
    def _repair(
        collection_id: int, current: Sequence[ReplicaRecord], workers: WorkerView
    ) -> list[ReplicaRecord]:
        """Replicas keep their live workers still in their group; the group's workers no replica
        of the collection holds join the replica with the fewest; a lost leader is replaced."""
        live = {w.worker_id: w for w in workers.live}
        members = {
            r.replica_id: [
                w for w in r.worker_ids if w in live and live[w].resource_group == r.resource_group
            ]
            for r in current
        }
        taken = {w for ws in members.values() for w in ws}
        for w in sorted(live.values(), key=lambda w: w.worker_id):
            if w.worker_id in taken:
                continue
            in_group = [r for r in current if r.resource_group == w.resource_group]
            if in_group:
                smallest = min(in_group, key=lambda r: (len(members[r.replica_id]), r.replica_id))
                members[smallest.replica_id].append(w.worker_id)
                taken.add(w.worker_id)
        repaired = []
        for r in current:
            ws = tuple(members[r.replica_id])
            leader = r.leader_id if r.leader_id in ws else (ws[0] if ws else 0)
            repaired.append(ReplicaRecord(collection_id, r.replica_id, r.resource_group, ws, leader))
        return repaired

    @staticmethod
    def _place(
        target: LoadTarget,
        replicas: Sequence[ReplicaRecord],
        assignments: Sequence[SegmentAssignment],
        spaces: Mapping[int, WorkerSpace],
        *,
        fresh: bool,
    ) -> tuple[Placement, dict[int, list[int]]]:
        """Keep what stays, place the rest. ``fresh``: segments the collection never had placed
        are new seals (the leader first); on a load everything is placed by size alone."""
        kept = {(a.replica_id, a.segment_id): a.worker_id for a in assignments}
        known = {a.segment_id for a in assignments}
        new = [s for s in target.sizes if s not in known] if fresh else []
        placed, unplaced = place_segments(replicas, target.sizes, spaces, kept, new_segments=new)
        loaded = {(a.replica_id, a.segment_id, a.worker_id) for a in assignments if a.loaded}
        cid = target.record.collection_id
        rows = tuple(
            SegmentAssignment(cid, replica, segment, worker, (replica, segment, worker) in loaded)
            for (replica, segment), worker in sorted(placed.items())
        )
        return Placement(tuple(replicas), rows), unplaced
