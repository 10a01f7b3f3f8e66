"""Resource groups as a one-node Milvus keeps them: declared configs, and where the node is.

Milvus assigns its query nodes to resource groups from each group's declared ``requests`` and
``limits`` (querycoordv2's resource manager). SheafDB is one node (``NODE_ID``), so the same
rules reduce to "where does the node live": a group asking for a node it lacks (requests above
its nodes) takes it from a group holding more than it requests; a group holding more than its
limits gives it to a group with room, else back to ``__default_resource_group``. The default
group always exists and cannot be dropped. Groups and their nodes are persisted in the catalog
(``storage/resource_group_rows.py``), so they survive a restart.

Lock: ``_lock`` guards the groups map; every change is saved before the map changes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from sheafdb.errors import (
    ParameterInvalid,
    ResourceGroupAlreadyExists,
    ResourceGroupIllegalConfig,
    ResourceGroupNodeNotEnough,
    ResourceGroupNotFound,
)
from sheafdb.storage.resource_group_rows import ResourceGroupRecord

DEFAULT_RESOURCE_GROUP = "__default_resource_group"
# Milvus reports this capacity for the default group whatever its config says.
DEFAULT_CAPACITY = 1_000_000
# Milvus's quotaAndLimits.limits.maxResourceGroupNumOfQueryNode.
MAX_RESOURCE_GROUPS = 1024
MAX_NAME_LENGTH = 255
# The one query node of this server.
NODE_ID = 1
NODE_HOSTNAME = socket.gethostname()


@dataclass(frozen=True)
class ResourceGroupConfig:
    """A group's declaration (rg.proto's ResourceGroupConfig). ``None`` requests or limits means
    the request left them out, which Milvus refuses."""

    requests: int | None = 0
    limits: int | None = 0
    transfer_from: tuple[str, ...] = ()
    transfer_to: tuple[str, ...] = ()
    node_labels: tuple[tuple[str, str], ...] = ()

    @property
    def requested(self) -> int:
        return self.requests or 0

    @property
    def limited(self) -> int:
        return self.limits or 0


DEFAULT_GROUP_CONFIG = ResourceGroupConfig(requests=0, limits=DEFAULT_CAPACITY)


@dataclass(frozen=True)
class ResourceGroup:
    name: str
    config: ResourceGroupConfig
    nodes: tuple[int, ...] = field(default=())

    @property
    def capacity(self) -> int:
        return DEFAULT_CAPACITY if self.name == DEFAULT_RESOURCE_GROUP else self.config.requested


class ResourceGroupStore(Protocol):
    def save_resource_groups(self, records: Sequence[ResourceGroupRecord]) -> None: ...
    def drop_resource_group(self, name: str) -> None: ...
    def list_resource_groups(self) -> list[ResourceGroupRecord]: ...


def check_resource_group_name(name: str) -> None:
    """Milvus's ValidateResourceGroupName, word for word."""
    if not name:
        raise ParameterInvalid("resource group name couldn't be empty")
    prefix = f"Invalid resource group name {name}."
    if len(name) > MAX_NAME_LENGTH:
        raise ParameterInvalid(
            f"{prefix} the length of a resource group name must be less than {MAX_NAME_LENGTH} "
            "characters: invalid parameter"
        )
    if not (name[0] == "_" or name[0].isascii() and name[0].isalpha()):
        raise ParameterInvalid(
            f"{prefix} the first character of a resource group name must be an underscore or letter: "
            "invalid parameter"
        )
    if any(not (c == "_" or c.isascii() and c.isalnum()) for c in name[1:]):
        raise ParameterInvalid(
            f"{prefix} resource group name can only contain numbers, letters and underscores: "
            "invalid parameter"
        )


def _config_to_json(config: ResourceGroupConfig) -> dict[str, Any]:
    return asdict(config)


def _config_from_json(data: Mapping[str, Any]) -> ResourceGroupConfig:
    return ResourceGroupConfig(
        requests=data.get("requests"),
        limits=data.get("limits"),
        transfer_from=tuple(data.get("transfer_from", ())),
        transfer_to=tuple(data.get("transfer_to", ())),
        node_labels=tuple((str(k), str(v)) for k, v in data.get("node_labels", ())),
    )


class ResourceGroups:
    def __init__(self, store: ResourceGroupStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._groups: dict[str, ResourceGroup] = {
            r.name: ResourceGroup(r.name, _config_from_json(r.config), r.nodes)
            for r in store.list_resource_groups()
        }
        with self._lock:
            changed: dict[str, ResourceGroup] = {}
            if DEFAULT_RESOURCE_GROUP not in self._groups:
                changed[DEFAULT_RESOURCE_GROUP] = ResourceGroup(DEFAULT_RESOURCE_GROUP, DEFAULT_GROUP_CONFIG)
            groups = {**self._groups, **changed}
            if not any(NODE_ID in g.nodes for g in groups.values()):
                home = groups[DEFAULT_RESOURCE_GROUP]
                changed[home.name] = replace(home, nodes=(NODE_ID,))
            self._commit(changed)
            self._settle_node()

    # -- reads -------------------------------------------------------------------------------
    def names(self) -> list[str]:
        with self._lock:
            return list(self._groups)

    def get(self, name: str) -> ResourceGroup:
        with self._lock:
            group = self._groups.get(name)
        if group is None:
            raise ResourceGroupNotFound.named(name)
        return group

    def exists(self, name: str) -> bool:
        with self._lock:
            return name in self._groups

    def node_group(self) -> str:
        """The group the node lives in now."""
        with self._lock:
            return self._home()

    # -- changes -----------------------------------------------------------------------------
    def create(self, name: str, config: ResourceGroupConfig | None) -> None:
        check_resource_group_name(name)
        config = config if config is not None else ResourceGroupConfig()
        with self._lock:
            existing = self._groups.get(name)
            if existing is not None:
                if existing.config == config:
                    return  # Milvus: the same config again is a success
                raise ResourceGroupAlreadyExists(
                    f"resource group already exist, but create with different config[rg={name}]"
                )
            if len(self._groups) >= MAX_RESOURCE_GROUPS:
                raise ResourceGroupIllegalConfig(
                    f"resource group num reach limit[rg={name}][limit={MAX_RESOURCE_GROUPS}]"
                )
            self._validate(name, config)
            self._commit({name: ResourceGroup(name, config)})
            self._settle_node()

    def update(self, configs: Mapping[str, ResourceGroupConfig]) -> None:
        with self._lock:
            for name, config in configs.items():
                if name not in self._groups:
                    raise ResourceGroupNotFound.named(name)
                self._validate(name, config)
            self._commit({name: replace(self._groups[name], config=c) for name, c in configs.items()})
            self._settle_node()

    def drop(self, name: str) -> None:
        """Dropping a group that does not exist succeeds (Milvus's idempotent promise). The
        caller checks first that no replica is loaded in it."""
        with self._lock:
            group = self._groups.get(name)
            if group is None:
                return
            if name == DEFAULT_RESOURCE_GROUP:
                raise ParameterInvalid(
                    "default resource group is not deletable: invalid parameter"
                    f"[expected=not default resource group][actual={name}]"
                )
            if group.config.limited != 0:
                raise ParameterInvalid(
                    "resource group's limits node num is not 0: invalid parameter"
                    f"[expected=not empty resource group][actual={name}]"
                )
            for other in self._groups.values():
                for kind, names in (
                    ("TransferFrom", other.config.transfer_from),
                    ("TransferTo", other.config.transfer_to),
                ):
                    if name in names:
                        raise ParameterInvalid(
                            f"resource group {name} is used by {other.name}'s `{kind}`, remove that "
                            f"configuration first: invalid parameter[expected=not `{kind}` of resource "
                            f"group][actual={name}]"
                        )
            if group.nodes:  # the node goes home before the group goes
                home = self._groups[DEFAULT_RESOURCE_GROUP]
                self._commit(
                    {
                        home.name: replace(home, nodes=(*home.nodes, *group.nodes)),
                        name: replace(group, nodes=()),
                    }
                )
            self._store.drop_resource_group(name)
            del self._groups[name]

    def transfer_node(self, source: str, target: str, num_node: int) -> None:
        """Milvus's deprecated TransferNode, done as it does it: by changing both configs."""
        if source == target:
            raise ParameterInvalid(
                "source resource group and target resource group should not be the same, "
                f"resource group: {source}: invalid parameter"
            )
        if num_node <= 0:
            raise ParameterInvalid(
                f"invalid parameter[expected=NumNode > 0][actual=invalid NumNode {num_node}]"
            )
        with self._lock:
            for name in (source, target):
                if name not in self._groups:
                    raise ResourceGroupNotFound.named(name)
            src, dst = self._groups[source], self._groups[target]
            if len(src.nodes) < num_node:
                raise ResourceGroupNodeNotEnough(
                    f"resource group node not enough[rg={source}][currentNodeNum={len(src.nodes)}]"
                    f"[expectedNodeNum={num_node}]"
                )
            src_cfg = replace(src.config, requests=max(src.config.requested - num_node, 0))
            if source != DEFAULT_RESOURCE_GROUP:
                src_cfg = replace(src_cfg, limits=max(src.config.limited - num_node, 0))
            dst_requests = dst.config.requested + num_node
            dst_cfg = replace(dst.config, requests=dst_requests, limits=max(dst.config.limited, dst_requests))
            self._commit({source: replace(src, config=src_cfg), target: replace(dst, config=dst_cfg)})
            self._settle_node()

    # -- inside the lock ---------------------------------------------------------------------
    def _validate(self, name: str, config: ResourceGroupConfig) -> None:
        def illegal(why: str) -> ResourceGroupIllegalConfig:
            return ResourceGroupIllegalConfig(f"{why}: resource group illegal config[rg={name}]")

        if config.requests is None or config.limits is None:
            raise illegal("requests or limits is required")
        if config.requests < 0 or config.limits < 0:
            raise illegal("node num in `requests` or `limits` should not less than 0")
        if config.limits < config.requests:
            raise illegal("limits node num should not less than requests node num")
        for kind, names in (("TransferFrom", config.transfer_from), ("TransferTo", config.transfer_to)):
            for other in names:
                if other == name:
                    raise illegal(f"resource group in `{kind}` {name} should not be itself")
                if other not in self._groups:
                    raise illegal(f"resource group in `{kind}` {other} not exist")

    def _commit(self, changed: Mapping[str, ResourceGroup]) -> None:
        if not changed:
            return
        self._store.save_resource_groups(
            [ResourceGroupRecord(g.name, _config_to_json(g.config), g.nodes) for g in changed.values()]
        )
        self._groups.update(changed)

    def _home(self) -> str:
        for group in self._groups.values():
            if NODE_ID in group.nodes:
                return group.name
        return DEFAULT_RESOURCE_GROUP

    def _settle_node(self) -> None:
        """Move the node until no rule wants it elsewhere (each move strictly serves a rule,
        so a handful of steps at most)."""
        for _ in range(len(self._groups) + 1):
            here = self._groups[self._home()]
            there = self._better_home(here)
            if there is None:
                return
            self._commit(
                {
                    here.name: replace(here, nodes=tuple(n for n in here.nodes if n != NODE_ID)),
                    there.name: replace(there, nodes=(*there.nodes, NODE_ID)),
                }
            )

    def _better_home(self, here: ResourceGroup) -> ResourceGroup | None:
        others = [g for g in self._groups.values() if g.name != here.name]
        # A group missing nodes takes one from a group holding more than it requests.
        if len(here.nodes) > here.config.requested:
            missing = [g for g in others if g.config.requested > len(g.nodes)]
            if missing:
                return max(
                    missing,
                    key=lambda g: (g.config.requested - len(g.nodes), g.name in here.config.transfer_to),
                )
        # A group over its limits gives the node to a group with room, else to the default one.
        if len(here.nodes) > here.config.limited:
            room = [g for g in others if g.config.limited > len(g.nodes)]
            if room:
                return max(
                    room, key=lambda g: (g.name in here.config.transfer_to, g.config.limited - len(g.nodes))
                )
            if here.name != DEFAULT_RESOURCE_GROUP:
                return self._groups[DEFAULT_RESOURCE_GROUP]
        return None
