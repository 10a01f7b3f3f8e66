"""Replicas and resource groups behind the facade (``Engine.replicas``).

A loaded collection has one replica, on the one node, in the resource group its load named
(``__default_resource_group`` when none): the load is checked here first with Milvus's rules
(``admit_load``), then its placement is recorded (``place``) in the catalog with a replica id
of its own. A replica exists exactly while its collection is loaded: every answer reads the
load state, so a release needs no bookkeeping here.

No lock of its own: ``ResourceGroups`` has one, the catalog is thread-safe, and ``_placements``
is only replaced whole (a dict swap is atomic) under ``_place_lock``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sheafdb.engine.collection import Collection
from sheafdb.engine.models import LoadState
from sheafdb.engine.resource_groups import (
    DEFAULT_RESOURCE_GROUP,
    NODE_HOSTNAME,
    NODE_ID,
    ResourceGroupConfig,
    ResourceGroups,
    ResourceGroupStore,
)
from sheafdb.errors import (
    CollectionNotFound,
    CollectionNotFullyLoaded,
    NodeNotFound,
    ParameterInvalid,
    ResourceGroupNodeNotEnough,
    ResourceGroupNotFound,
    SegmentNotFound,
    UnexpectedError,
)


@dataclass(frozen=True)
class ShardReplica:
    channel: str
    leader_id: int
    node_ids: tuple[int, ...]


@dataclass(frozen=True)
class ReplicaInfo:
    replica_id: int
    collection_id: int
    partition_ids: tuple[int, ...]
    node_ids: tuple[int, ...]
    resource_group: str
    shards: tuple[ShardReplica, ...]


@dataclass(frozen=True)
class ResourceGroupInfo:
    name: str
    capacity: int
    num_available_node: int
    # collection name -> replicas of it loaded in the group
    num_loaded_replica: Mapping[str, int]
    config: ResourceGroupConfig
    nodes: tuple[int, ...]
    # node id -> (address, hostname) of the cluster's workers; the one embedded node is absent
    hosts: Mapping[int, tuple[str, str]] = field(default_factory=dict)

    def host_of(self, node_id: int) -> tuple[str, str]:
        return self.hosts.get(node_id, ("", NODE_HOSTNAME))


class PlacementStore(ResourceGroupStore, Protocol):
    def allocate_id(self) -> int: ...
    def set_replica_group(self, collection_id: int, replica_id: int, resource_group: str) -> None: ...
    def list_replica_groups(self) -> dict[int, tuple[int, str]]: ...


def dml_channel(collection_id: int, shard: int) -> str:
    """The shard's channel name as Milvus spells its virtual channels."""
    return f"by-dev-rootcoord-dml_{shard}_{collection_id}v{shard}"


class Replicas:
    def __init__(
        self,
        store: PlacementStore,
        resolve: Callable[[str, str], Collection],
        collections: Callable[[], list[Collection]],
        load_state: Callable[[Collection, tuple[str, ...]], LoadState],
        *,
        groups: ResourceGroups | None = None,
    ) -> None:
        # ``groups``: the cluster's (engine/distribution/cluster_groups.py), whose nodes are workers.
        self.groups = groups if groups is not None else ResourceGroups(store)
        self._store = store
        self._resolve = resolve
        self._collections = collections
        self._load_state = load_state
        self._place_lock = threading.Lock()
        self._placements: dict[int, tuple[int, str]] = store.list_replica_groups()

    # -- loads -------------------------------------------------------------------------------
    def admit_load(
        self, coll: Collection, replica_number: int, resource_groups: Sequence[str], *, refresh: bool = False
    ) -> str | None:
        """Milvus's AssignReplica for one node: the group the replica will live in, or the
        error Milvus gives. A replica number of 0 or less means one replica, as in Milvus. A
        refresh keeps the replica where it is (None)."""
        if refresh:
            return None
        replicas = max(replica_number, 1)
        names = list(resource_groups)
        if len(names) not in (0, 1, replicas):
            raise UnexpectedError(
                f"replica=[{replicas}] resource group=[{','.join(names)}], resource group num can only "
                "be 0, 1 or same as replica number"
            )
        wanted: dict[str, int] = {}
        for name in names or [DEFAULT_RESOURCE_GROUP]:
            wanted[name] = wanted.get(name, 0) + (replicas if len(names) <= 1 else 1)
        # Milvus skips the node count when a loaded collection only moves (update load config).
        check_nodes = self._load_state(coll, ()) is LoadState.NOT_LOAD
        for name, count in wanted.items():
            if not self.groups.exists(name):
                raise ResourceGroupNotFound.named(name)
            nodes = len(self.groups.get(name).nodes)
            if check_nodes and count > nodes:
                raise ResourceGroupNodeNotEnough(
                    f"resource group node not enough[rg={name}][currentNodeNum={nodes}]"
                    f"[expectedNodeNum={count}]"
                )
        return next(iter(wanted))

    def place(self, coll: Collection, resource_group: str | None) -> None:
        if resource_group is None:
            return
        with self._place_lock:
            current = self._placements.get(coll.collection_id)
            if current is not None and current[1] == resource_group:
                return
            replica_id = current[0] if current is not None else self._store.allocate_id()
            self._store.set_replica_group(coll.collection_id, replica_id, resource_group)
            self._placements = {**self._placements, coll.collection_id: (replica_id, resource_group)}

    # -- replicas ----------------------------------------------------------------------------
    def _loaded_partitions(self, coll: Collection) -> tuple[int, ...]:
        return tuple(
            pid
            for name, pid in coll.partitions.items()
            if self._load_state(coll, (name,)) in (LoadState.LOADED, LoadState.LOADING)
        )

    def _group_of(self, coll: Collection) -> str:
        placement = self._placements.get(coll.collection_id)
        return placement[1] if placement is not None else DEFAULT_RESOURCE_GROUP

    def get_replicas(self, db: str, collection: str, collection_id: int = 0) -> list[ReplicaInfo]:
        """The collection's replica while it is loaded (Milvus: an empty list otherwise). By
        name, or by id when no name is given (pymilvus sends the id)."""
        if collection:
            return self._replicas_of(self._resolve(db, collection))
        for coll in self._collections():
            if coll.collection_id == collection_id:
                return self._replicas_of(coll)
        raise CollectionNotFound(f"collection not found[collection={collection_id}]")

    def _replicas_of(self, coll: Collection) -> list[ReplicaInfo]:
        if self._load_state(coll, ()) is LoadState.NOT_LOAD:
            return []
        group = self._group_of(coll)
        with self._place_lock:
            placement = self._placements.get(coll.collection_id)
            if placement is None:  # loaded before placements were kept: placed now
                placement = (self._store.allocate_id(), group)
                self._store.set_replica_group(coll.collection_id, *placement)
                self._placements = {**self._placements, coll.collection_id: placement}
        nodes = (NODE_ID,) if NODE_ID in self.groups.get(group).nodes else ()
        shards = tuple(
            ShardReplica(dml_channel(coll.collection_id, i), NODE_ID if nodes else -1, nodes)
            for i in range(max(coll.record.shards_num, 1))
        )
        return [
            ReplicaInfo(placement[0], coll.collection_id, self._loaded_partitions(coll), nodes, group, shards)
        ]

    def transfer_replica(self, source: str, target: str, db: str, collection: str, num_replica: int) -> None:
        coll = self._resolve(db, collection)
        self._check_transfer(source, target, num_replica)
        in_source = len([r for r in self._replicas_of(coll) if r.resource_group == source])
        self._check_replicas_in_source(coll, source, in_source, num_replica)
        self.place(coll, target)

    def _check_transfer(self, source: str, target: str, num_replica: int) -> None:
        """Milvus's TransferReplica argument checks, in its order and words."""
        for role, name in (("source", source), ("target", target)):
            if not self.groups.exists(name):
                raise ResourceGroupNotFound(
                    f"the {role} resource group[{name}] doesn't exist: resource group not found[rg={name}]"
                )
        if source == target:
            raise ParameterInvalid(
                "source resource group and target resource group should not be the same, "
                f"resource group: {source}: invalid parameter"
            )
        if num_replica <= 0:
            raise ParameterInvalid(
                f"invalid parameter[expected=NumReplica > 0][actual=invalid NumReplica {num_replica}]"
            )

    @staticmethod
    def _check_replicas_in_source(coll: Collection, source: str, in_source: int, num_replica: int) -> None:
        if in_source < num_replica:
            raise ParameterInvalid(
                "invalid parameter[expected=NumReplica not greater than the number of replica in source "
                f"resource group][actual=only found [{in_source}] replicas of collection "
                f"[{coll.collection_id}] in source resource group [{source}], but {num_replica} require]"
            )

    def balance(
        self, db: str, collection: str, source: int, targets: Sequence[int], segments: Sequence[int]
    ) -> None:
        """Milvus's LoadBalance checks, for one node: a valid request has nowhere to move
        segments to (the replica's only node is the source), so it succeeds doing nothing."""
        coll = self._resolve(db, collection)
        if self._load_state(coll, ()) is not LoadState.LOADED:
            raise CollectionNotFullyLoaded(f"collection not fully loaded[collection={coll.collection_id}]")
        nodes = {n for r in self._replicas_of(coll) for n in r.node_ids}
        if source not in nodes:
            raise NodeNotFound(
                f"source node not found in any replica of collection {coll.collection_id}: "
                f"node not found[node={source}]"
            )
        for target in targets:
            if target not in nodes:
                raise NodeNotFound(
                    f"destination node not found in the same replica: node not found[node={target}]"
                )
        sealed = {s.segment_id for s in coll.snapshot().sealed}
        for segment in segments:
            if segment not in sealed:
                raise SegmentNotFound(
                    f"segment not found in source node: segment not found[segment={segment}]"
                )

    # -- resource groups ---------------------------------------------------------------------
    def _loaded_in(self, group: str) -> list[Collection]:
        return [
            c
            for c in self._collections()
            if self._group_of(c) == group and self._load_state(c, ()) is not LoadState.NOT_LOAD
        ]

    def describe_group(self, name: str) -> ResourceGroupInfo:
        group = self.groups.get(name)
        loaded = {c.name: 1 for c in self._loaded_in(name)}
        return ResourceGroupInfo(name, group.capacity, len(group.nodes), loaded, group.config, group.nodes)

    def drop_group(self, name: str) -> None:
        loaded = self._loaded_in(name)
        if loaded:
            raise ParameterInvalid(
                f"some replicas still loaded in resource group[{name}], release it first: invalid "
                f"parameter[expected=empty resource group][actual=resource group {name} has collection "
                f"{loaded[0].collection_id} loaded]"
            )
        self.groups.drop(name)
