"""``/v2/vectordb/aliases/*``."""

from __future__ import annotations

from typing import Any

from sheafdb.api.rest.envelope import Call, Endpoint


def create(call: Call) -> dict[str, Any]:
    call.engine.create_alias(call.db, call.text("collectionName"), call.text("aliasName"))
    return {}


def alter(call: Call) -> dict[str, Any]:
    call.engine.alter_alias(call.db, call.text("collectionName"), call.text("aliasName"))
    return {}


def drop(call: Call) -> dict[str, Any]:
    call.engine.drop_alias(call.db, call.text("aliasName"))
    return {}


def describe(call: Call) -> dict[str, str]:
    info = call.engine.describe_alias(call.db, call.text("aliasName"))
    return {"dbName": info.db_name, "collectionName": info.collection_name, "aliasName": info.alias}


def list_(call: Call) -> list[str]:
    return [a.alias for a in call.engine.list_aliases(call.db, str(call.get("collectionName", "")))]


ENDPOINTS = (
    Endpoint("aliases/create", create, "CreateAlias"),
    Endpoint("aliases/alter", alter, "AlterAlias"),
    Endpoint("aliases/drop", drop, "DropAlias", object_key="aliasName"),
    Endpoint("aliases/describe", describe, "DescribeAlias", object_key="aliasName"),
    Endpoint("aliases/list", list_, "ListAliases"),
)
