"""Where replicas and segments go: the placement rules as pure functions.

Milvus's rules (querycoordv2's replica manager and row-count balancer, scale-out.md §1), with
memory instead of rows, because a SheafDB worker's limit is its memory budget:

- A collection's R replicas live on disjoint workers: a worker serves at most one replica of
  a collection. The replicas in one resource group share its workers fairly (their counts
  differ by at most one), as Milvus spreads a group's nodes over its replicas.
- Inside a replica, segments go largest first onto the least-filled worker, measured in the
  bytes of the fields the load holds, against each worker's budget minus what it already
  holds for other collections. A new segment of a loaded collection goes to the replica
  leader (the worker serving the growing rows) when it fits there.
- A load that cannot fit is refused at once, naming the bytes it needs and the bytes free,
  and nothing is placed (``check_fits``).

Nothing here reads the catalog or the clock: the coordinator gathers the inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sheafdb.errors import MemoryLimitExceeded, ResourceGroupNodeNotEnough
from sheafdb.storage.placement_rows import ReplicaRecord

MIB = 1024 * 1024


@dataclass(frozen=True)
class WorkerSpace:
    """A live worker as placement sees it."""

    worker_id: int
    resource_group: str
    budget_bytes: int
    # Bytes placed on it for other collections.
    held_bytes: int = 0

    @property
    def free_bytes(self) -> int:
        return max(self.budget_bytes - self.held_bytes, 0)


# (replica id, segment id) -> worker id
Assignments = dict[tuple[int, int], int]


def replicas_per_group(
    replica_number: int, resource_groups: Sequence[str], default_group: str
) -> dict[str, int]:
    """How many replicas each group holds: all of them in the one group named (or the default
    group), else one per group named (the caller checked the count is 1 or R)."""
    names = list(resource_groups) or [default_group]
    wanted: dict[str, int] = {}
    for name in names:
        wanted[name] = wanted.get(name, 0) + (replica_number if len(names) == 1 else 1)
    return wanted


def check_enough_workers(wanted: Mapping[str, int], workers: Iterable[WorkerSpace]) -> None:
    """Milvus's refusal when a group has fewer nodes than the replicas it must hold."""
    counts: dict[str, int] = {}
    for w in workers:
        counts[w.resource_group] = counts.get(w.resource_group, 0) + 1
    for group, count in wanted.items():
        have = counts.get(group, 0)
        if count > have:
            raise ResourceGroupNodeNotEnough(
                f"resource group node not enough[rg={group}][currentNodeNum={have}][expectedNodeNum={count}]"
            )


def spread_workers(
    collection_id: int,
    wanted: Mapping[str, int],
    replica_ids: Sequence[int],
    workers: Sequence[WorkerSpace],
) -> list[ReplicaRecord]:
    """New replicas: each group's workers dealt out to its replicas, the roomiest first, so
    every replica gets a fair share of workers and of free bytes; each replica's leader is its
    roomiest worker. ``replica_ids`` has one id per replica, in group order."""
    check_enough_workers(wanted, workers)
    ids = iter(replica_ids)
    replicas: list[ReplicaRecord] = []
    for group, count in wanted.items():
        members = sorted(
            (w for w in workers if w.resource_group == group), key=lambda w: (-w.free_bytes, w.worker_id)
        )
        hands: list[list[int]] = [[] for _ in range(count)]
        for i, w in enumerate(members):
            hands[i % count].append(w.worker_id)
        for hand in hands:
            replicas.append(ReplicaRecord(collection_id, next(ids), group, tuple(hand), hand[0]))
    return replicas


def reshape_replicas(
    collection_id: int,
    current: Sequence[ReplicaRecord],
    wanted: Mapping[str, int],
    new_ids: Sequence[int],
    workers: Sequence[WorkerSpace],
) -> list[ReplicaRecord]:
    """A loaded collection's replicas for a new replica number or new groups (Milvus updates the
    load config in place): per group, its oldest replicas stay, extra ones go, new ones (ids
    from ``new_ids``) are added; each kept replica keeps up to its fair share of its workers
    (so their segments stay loaded), and the group's other workers are dealt to the replicas
    short of their share, the new ones first."""
    check_enough_workers(wanted, workers)
    ids = iter(new_ids)
    replicas: list[ReplicaRecord] = []
    for group, count in wanted.items():
        members = sorted(w.worker_id for w in workers if w.resource_group == group)
        shares = [len(members) // count + (1 if i < len(members) % count else 0) for i in range(count)]
        kept = sorted((r for r in current if r.resource_group == group), key=lambda r: r.replica_id)[:count]
        hands: list[tuple[int, list[int], int]] = []
        taken: set[int] = set()
        for replica, share in zip(kept, shares, strict=False):
            mine = [w for w in replica.worker_ids if w in members][:share]
            taken.update(mine)
            hands.append((replica.replica_id, mine, share))
        hands += [(next(ids), [], share) for share in shares[len(kept) :]]
        free = iter(w for w in members if w not in taken)
        for replica_id, hand, share in hands:
            hand.extend(next(free) for _ in range(share - len(hand)))
            old = next((r for r in kept if r.replica_id == replica_id), None)
            leader = old.leader_id if old is not None and old.leader_id in hand else hand[0]
            replicas.append(ReplicaRecord(collection_id, replica_id, group, tuple(hand), leader))
    return replicas


def place_segments(
    replicas: Sequence[ReplicaRecord],
    sizes: Mapping[int, int],
    spaces: Mapping[int, WorkerSpace],
    kept: Mapping[tuple[int, int], int],
    *,
    new_segments: Iterable[int] = (),
) -> tuple[Assignments, dict[int, list[int]]]:
    """Every segment of ``sizes`` onto one worker of every replica.

    ``kept``: assignments that stay where they are (their bytes count as placed). The rest go
    largest first to the least-filled worker of the replica with room; ``new_segments`` (seals
    and compaction results of a loaded collection) to the replica leader first when it has
    room. Returns the assignments and, per replica id, the segments that fit nowhere.
    """
    fresh = set(new_segments)
    placed: Assignments = {}
    unplaced: dict[int, list[int]] = {}
    order = sorted(sizes, key=lambda s: (-sizes[s], s))
    for replica in replicas:
        fill = {w: spaces[w].held_bytes for w in replica.worker_ids if w in spaces}
        for segment in order:
            worker = kept.get((replica.replica_id, segment))
            if worker in fill:
                placed[(replica.replica_id, segment)] = worker
                fill[worker] += sizes[segment]
        for segment in order:
            if (replica.replica_id, segment) in placed:
                continue
            size = sizes[segment]
            room = [w for w in fill if spaces[w].budget_bytes - fill[w] >= size]
            if not room:
                unplaced.setdefault(replica.replica_id, []).append(segment)
                continue
            leader = replica.leader_id
            if segment in fresh and leader in room:
                worker = leader
            else:
                worker = min(room, key=lambda w: (fill[w], w))
            placed[(replica.replica_id, segment)] = worker
            fill[worker] += size
    return placed, unplaced


def check_fits(
    collection_name: str,
    replicas: Sequence[ReplicaRecord],
    sizes: Mapping[int, int],
    spaces: Mapping[int, WorkerSpace],
    unplaced: Mapping[int, Sequence[int]],
) -> None:
    """Refuse a load some segment of which fits on no worker of its replica (code 3, Milvus's
    "memory limit exceeded"), with the bytes the replica needs and the bytes its workers have."""
    for replica in replicas:
        left = unplaced.get(replica.replica_id)
        if not left:
            continue
        needed = sum(sizes.values())
        free = [spaces[w].free_bytes for w in replica.worker_ids if w in spaces]
        total_free = sum(free)
        raise MemoryLimitExceeded(
            f"memory limit exceeded[needed(MB)={needed / MIB:.1f}][available(MB)={total_free / MIB:.1f}]: "
            f"loading collection {collection_name} needs {needed} bytes in each replica "
            f"(its largest segment {max(sizes.values())} bytes); replica {replica.replica_id} in resource "
            f"group {replica.resource_group} has {total_free} bytes free on {len(free)} worker(s) "
            f"(at most {max(free, default=0)} on one), and {len(left)} segment(s) fit on none"
        )
