"""Replicas and resource groups answered from the cluster's real placement.

``replicas_for`` gives the Engine its ``replicas`` sub-facade: the embedded one (one node,
engine/replicas.py) or, for the cluster writer, ``ClusterReplicas``: GetReplicas lists the
placement's replicas (their workers as node ids, the replica leader as every shard's leader),
resource groups hold the live workers (cluster_groups.py), TransferReplica re-places replicas
in the target group, LoadBalance moves segments between workers of a replica. The checks and
their Milvus messages are the embedded ones.

No lock of its own: the coordinator serialises placement changes, the catalog the reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from sheafdb.engine.collection import Collection
from sheafdb.engine.distribution.cluster_groups import ClusterResourceGroups, WorkerStore
from sheafdb.engine.distribution.cluster_loads import ClusterLoads
from sheafdb.engine.models import LoadState
from sheafdb.engine.replicas import (
    PlacementStore,
    ReplicaInfo,
    Replicas,
    ResourceGroupInfo,
    ShardReplica,
    dml_channel,
)
from sheafdb.errors import (
    CollectionNotFullyLoaded,
    NodeNotFound,
    ParameterInvalid,
    ResourceGroupNodeNotEnough,
    SegmentNotFound,
    UnexpectedError,
)
from sheafdb.storage.placement_rows import ReplicaRecord, SegmentAssignment


class ClusterStore(PlacementStore, WorkerStore, Protocol):
    def list_replicas(self, collection_id: int | None = None) -> list[ReplicaRecord]: ...
    def list_assignments(
        self, *, collection_id: int | None = None, worker_id: int | None = None
    ) -> list[SegmentAssignment]: ...
    def save_placement(
        self, collection_id: int, replicas: Sequence[ReplicaRecord], assignments: Sequence[SegmentAssignment]
    ) -> int: ...


def replicas_for(
    cluster: ClusterLoads | None,
    store: ClusterStore,
    resolve: Callable[[str, str], Collection],
    collections: Callable[[], list[Collection]],
    load_state: Callable[[Collection, tuple[str, ...]], LoadState],
) -> Replicas:
    if cluster is None:
        return Replicas(store, resolve, collections, load_state)
    return ClusterReplicas(cluster, store, resolve, collections, load_state)


class ClusterReplicas(Replicas):
    def __init__(
        self,
        cluster: ClusterLoads,
        store: ClusterStore,
        resolve: Callable[[str, str], Collection],
        collections: Callable[[], list[Collection]],
        load_state: Callable[[Collection, tuple[str, ...]], LoadState],
    ) -> None:
        groups = ClusterResourceGroups(store)
        super().__init__(store, resolve, collections, load_state, groups=groups)
        self._cluster = cluster
        self._placement = store
        cluster.coordinator.before_pass = groups.refresh

    # -- loads -------------------------------------------------------------------------------
    def admit_load(
        self, coll: Collection, replica_number: int, resource_groups: Sequence[str], *, refresh: bool = False
    ) -> str | None:
        """Milvus's checks of the groups named; the node counts are the coordinator's (live workers)."""
        if refresh:
            return None
        replicas = max(replica_number, 1)
        names = list(resource_groups)
        if len(names) not in (0, 1, replicas):
            raise UnexpectedError(
                f"replica=[{replicas}] resource group=[{','.join(names)}], resource group num can only "
                "be 0, 1 or same as replica number"
            )
        for name in names:
            self.groups.get(name)  # ResourceGroupNotFound
        return None

    def place(self, coll: Collection, resource_group: str | None) -> None:
        """The coordinator placed the load already."""

    # -- replicas ----------------------------------------------------------------------------
    def _replicas_of(self, coll: Collection) -> list[ReplicaInfo]:
        if self._load_state(coll, ()) is LoadState.NOT_LOAD:
            return []
        partitions = self._loaded_partitions(coll)
        shards = max(coll.record.shards_num, 1)
        return [
            ReplicaInfo(
                r.replica_id,
                coll.collection_id,
                partitions,
                r.worker_ids,
                r.resource_group,
                tuple(
                    ShardReplica(dml_channel(coll.collection_id, i), r.leader_id or -1, r.worker_ids)
                    for i in range(shards)
                ),
            )
            for r in self._placement.list_replicas(coll.collection_id)
        ]

    def transfer_replica(self, source: str, target: str, db: str, collection: str, num_replica: int) -> None:
        coll = self._resolve(db, collection)
        self._check_transfer(source, target, num_replica)
        replicas = self._placement.list_replicas(coll.collection_id)
        in_source = [r for r in replicas if r.resource_group == source]
        self._check_replicas_in_source(coll, source, len(in_source), num_replica)
        in_target = len([r for r in replicas if r.resource_group == target]) + num_replica
        nodes = len(self.groups.get(target).nodes)
        if in_target > nodes:
            raise ResourceGroupNodeNotEnough(
                f"resource group node not enough[rg={target}][currentNodeNum={nodes}]"
                f"[expectedNodeNum={in_target}]"
            )
        moved = [r.replica_id for r in in_source[:num_replica]]
        self._cluster.coordinator.move_replicas(coll.collection_id, moved, target)

    def balance(
        self, db: str, collection: str, source: int, targets: Sequence[int], segments: Sequence[int]
    ) -> None:
        """Milvus's LoadBalance: the named segments (all of the source's when none) move from the
        source worker to the least-filled of ``targets`` (all its replica's other workers when
        none), which load them; the source drops them once they leave its placement."""
        coll = self._resolve(db, collection)
        if self._load_state(coll, ()) is not LoadState.LOADED:
            raise CollectionNotFullyLoaded(f"collection not fully loaded[collection={coll.collection_id}]")
        replicas = self._placement.list_replicas(coll.collection_id)
        home = next((r for r in replicas if source in r.worker_ids), None)
        if home is None:
            raise NodeNotFound(
                f"source node not found in any replica of collection {coll.collection_id}: "
                f"node not found[node={source}]"
            )
        for target in targets:
            if target not in home.worker_ids:
                raise NodeNotFound(
                    f"destination node not found in the same replica: node not found[node={target}]"
                )
        assignments = self._placement.list_assignments(collection_id=coll.collection_id)
        on_source = {
            a.segment_id for a in assignments if a.replica_id == home.replica_id and a.worker_id == source
        }
        for segment in segments:
            if segment not in on_source:
                raise SegmentNotFound(
                    f"segment not found in source node: segment not found[segment={segment}]"
                )
        to = [w for w in (targets or home.worker_ids) if w != source]
        if not to:
            return  # the replica's only worker: nowhere to go, as in Milvus
        moving = set(segments) or on_source
        fill = {w: 0 for w in to}
        for a in assignments:
            if a.replica_id == home.replica_id and a.worker_id in fill:
                fill[a.worker_id] += 1
        moved = []
        for a in assignments:
            if a.replica_id == home.replica_id and a.segment_id in moving:
                worker = min(fill, key=lambda w: (fill[w], w))
                fill[worker] += 1
                a = SegmentAssignment(a.collection_id, a.replica_id, a.segment_id, worker, False)
            moved.append(a)
        self._placement.save_placement(coll.collection_id, replicas, moved)

    # -- resource groups ---------------------------------------------------------------------
    def _replica_counts(self, group: str) -> dict[int, int]:
        counts: dict[int, int] = {}
        for r in self._placement.list_replicas():
            if r.resource_group == group:
                counts[r.collection_id] = counts.get(r.collection_id, 0) + 1
        return counts

    def describe_group(self, name: str) -> ResourceGroupInfo:
        group = self.groups.get(name)
        names = {c.collection_id: c.name for c in self._collections()}
        loaded = {names[cid]: n for cid, n in self._replica_counts(name).items() if cid in names}
        hosts = {w.worker_id: (w.address, w.hostname) for w in self._placement.list_workers()}
        return ResourceGroupInfo(
            name, group.capacity, len(group.nodes), loaded, group.config, group.nodes, hosts
        )

    def drop_group(self, name: str) -> None:
        counts = self._replica_counts(name)
        if counts:
            raise ParameterInvalid(
                f"some replicas still loaded in resource group[{name}], release it first: invalid "
                f"parameter[expected=empty resource group][actual=resource group {name} has collection "
                f"{next(iter(counts))} loaded]"
            )
        self.groups.drop(name)
