"""``/v2/vectordb/resource_groups/*`` (Milvus's resource group routes: create, drop, alter,
describe, list, transfer_replica)."""

from __future__ import annotations

from typing import Any

from sheafdb.api.rest.envelope import Call, Endpoint, Reply
from sheafdb.engine.resource_groups import ResourceGroupConfig
from sheafdb.errors import RestParameterMissing, RestRequestNotJson

INT32_MAX = 2**31 - 1


def _not_json(detail: str) -> RestRequestNotJson:
    return RestRequestNotJson(f"can only accept json format request, error: {detail}")


def _node_num(config: dict[str, Any], key: str, where: str) -> int:
    limit = config.get(key)
    if not isinstance(limit, dict):
        if limit is None:
            raise RestParameterMissing(
                f"missing required parameters, error: Key: '{where}.{key}' Error:Field validation for "
                f"'{key}' failed on the 'required' tag"
            )
        raise _not_json(f"json: cannot unmarshal into field {where}.{key} of type object")
    value = limit.get("node_num", 0)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not -INT32_MAX - 1 <= value <= INT32_MAX:
        raise _not_json(f"json: cannot unmarshal {value!r} into field {where}.{key}.node_num of type int32")
    return value


def _groups(config: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    items = config.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _not_json(f"json: cannot unmarshal into field {where}.{key} of type array")
    return tuple(str(i.get("resource_group", "")) for i in items)


def config_from_json(config: Any, where: str) -> ResourceGroupConfig:
    """Milvus's ResourceGroupConfig body: requests and limits are required objects."""
    if not isinstance(config, dict):
        raise _not_json(f"json: cannot unmarshal into field {where} of type object")
    labels = (config.get("node_filter") or {}).get("node_labels") or {}
    if not isinstance(labels, dict):
        raise _not_json(f"json: cannot unmarshal into field {where}.node_filter.node_labels of type object")
    return ResourceGroupConfig(
        requests=_node_num(config, "requests", where),
        limits=_node_num(config, "limits", where),
        transfer_from=_groups(config, "transfer_from", where),
        transfer_to=_groups(config, "transfer_to", where),
        node_labels=tuple((str(k), str(v)) for k, v in labels.items()),
    )


def config_to_json(config: ResourceGroupConfig) -> dict[str, Any]:
    """As Go's encoding/json writes the proto message: zero values left out."""
    out: dict[str, Any] = {
        "requests": {"node_num": config.requested} if config.requested else {},
        "limits": {"node_num": config.limited} if config.limited else {},
    }
    if config.transfer_from:
        out["transfer_from"] = [{"resource_group": n} for n in config.transfer_from]
    if config.transfer_to:
        out["transfer_to"] = [{"resource_group": n} for n in config.transfer_to]
    return out


def create(call: Call) -> dict[str, Any]:
    body_config = call.body.get("config")
    config = config_from_json(body_config, "config") if body_config is not None else None
    call.engine.replicas.groups.create(call.text("name"), config)
    return {}


def drop(call: Call) -> dict[str, Any]:
    call.engine.replicas.drop_group(call.text("name"))
    return {}


def alter(call: Call) -> dict[str, Any]:
    groups = call.required("resource_groups")
    if not isinstance(groups, dict):
        raise _not_json("json: cannot unmarshal into field resource_groups of type object")
    configs = {str(k): config_from_json(v, f"resource_groups[{k}]") for k, v in groups.items()}
    call.engine.replicas.groups.update(configs)
    return {}


def list_(call: Call) -> list[str]:
    return call.engine.replicas.groups.names()


def describe(call: Call) -> Reply:
    """Milvus puts the group at the top level of the reply (``resource_group``), beside code."""
    info = call.engine.replicas.describe_group(call.text("name"))
    group: dict[str, Any] = {"name": info.name}
    if info.capacity:
        group["capacity"] = info.capacity
    if info.num_available_node:
        group["num_available_node"] = info.num_available_node
    if info.num_loaded_replica:
        group["num_loaded_replica"] = dict(info.num_loaded_replica)
    group["config"] = config_to_json(info.config)
    if info.nodes:
        group["nodes"] = [{"node_id": n, "hostname": info.host_of(n)[1]} for n in info.nodes]
    return Reply({"resource_group": group}, {"resource_group": group})


def transfer_replica(call: Call) -> dict[str, Any]:
    call.engine.replicas.transfer_replica(
        call.text("sourceRgName"),
        call.text("targetRgName"),
        call.db,
        call.text("collectionName"),
        int(call.required("replicaNum")),
    )
    return {}


ENDPOINTS = (
    Endpoint("resource_groups/create", create, "CreateResourceGroup", object_key="name"),
    Endpoint("resource_groups/drop", drop, "DropResourceGroup", object_key="name"),
    Endpoint("resource_groups/alter", alter, "UpdateResourceGroups", object_key="name"),
    Endpoint("resource_groups/describe", describe, "DescribeResourceGroup", object_key="name"),
    Endpoint("resource_groups/list", list_, "ListResourceGroups", object_key="name"),
    Endpoint("resource_groups/transfer_replica", transfer_replica, "TransferReplica"),
)
