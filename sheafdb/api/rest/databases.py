"""``/v2/vectordb/databases/*``."""

from __future__ import annotations

from typing import Any

from sheafdb.api.rest.envelope import Call, Endpoint


def _properties(call: Call) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(call.get("properties", {})).items()}


def create(call: Call) -> dict[str, Any]:
    call.engine.create_database(call.text("dbName"), _properties(call))
    return {}


def alter(call: Call) -> dict[str, Any]:
    call.engine.alter_database(call.text("dbName"), _properties(call))
    return {}


def drop_properties(call: Call) -> dict[str, Any]:
    keys = [str(k) for k in call.required("propertyKeys")]
    call.engine.alter_database(call.text("dbName"), {}, keys)
    return {}


def drop(call: Call) -> dict[str, Any]:
    call.engine.drop_database(call.text("dbName"))
    return {}


def list_(call: Call) -> list[str]:
    names = [d.name for d in call.engine.list_databases()]
    return names if call.access is None else call.access.visible_databases(call.user, names)


def describe(call: Call) -> dict[str, Any]:
    info = call.engine.describe_database(call.text("dbName"))
    return {
        "dbName": info.name,
        "dbID": info.database_id,
        "properties": [{"key": k, "value": v} for k, v in info.properties.items()],
    }


ENDPOINTS = (
    Endpoint("databases/create", create, "CreateDatabase"),
    Endpoint("databases/alter", alter, "AlterDatabase"),
    Endpoint("databases/drop_properties", drop_properties, "AlterDatabase"),
    Endpoint("databases/drop", drop, "DropDatabase"),
    Endpoint("databases/list", list_),
    Endpoint("databases/describe", describe, "DescribeDatabase"),
)
