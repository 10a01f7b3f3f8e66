"""``/v2/vectordb/partitions/*``."""

from __future__ import annotations

from typing import Any

from sheafdb.api.rest.collections import wait_loaded
from sheafdb.api.rest.envelope import Call, Endpoint


def list_(call: Call) -> list[str]:
    return [p.name for p in call.engine.list_partitions(call.db, call.text("collectionName"))]


def has(call: Call) -> dict[str, bool]:
    return {
        "has": call.engine.has_partition(call.db, call.text("collectionName"), call.text("partitionName"))
    }


def create(call: Call) -> dict[str, Any]:
    call.engine.create_partition(call.db, call.text("collectionName"), call.text("partitionName"))
    return {}


def drop(call: Call) -> dict[str, Any]:
    call.engine.drop_partition(call.db, call.text("collectionName"), call.text("partitionName"))
    return {}


def get_stats(call: Call) -> dict[str, int]:
    count = call.engine.partition_row_count(call.db, call.text("collectionName"), call.text("partitionName"))
    return {"rowCount": count}


def load(call: Call) -> dict[str, Any]:
    name = call.text("collectionName")
    call.required("partitionNames")
    partitions = call.names("partitionNames")
    # loadFields / skipLoadDynamicField: a SheafDB extension (Milvus's REST ignores them).
    call.engine.load_partitions(
        call.db,
        name,
        partitions,
        load_fields=call.names("loadFields"),
        skip_load_dynamic_field=bool(call.get("skipLoadDynamicField", False)),
    )
    wait_loaded(call, name, partitions)
    return {}


def release(call: Call) -> dict[str, Any]:
    call.required("partitionNames")
    call.engine.release_partitions(call.db, call.text("collectionName"), call.names("partitionNames"))
    return {}


ENDPOINTS = (
    Endpoint("partitions/list", list_, "ShowPartitions"),
    Endpoint("partitions/has", has, "HasPartition"),
    Endpoint("partitions/create", create, "CreatePartition"),
    Endpoint("partitions/drop", drop, "DropPartition"),
    Endpoint("partitions/get_stats", get_stats, "GetPartitionStatistics"),
    Endpoint("partitions/load", load, "LoadPartitions"),
    Endpoint("partitions/release", release, "ReleasePartitions"),
)
