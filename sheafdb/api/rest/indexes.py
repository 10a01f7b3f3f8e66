"""``/v2/vectordb/indexes/*``."""

from __future__ import annotations

from typing import Any

from sheafdb.api.rest.envelope import Call, Endpoint
from sheafdb.api.rest.schema_json import index_json, index_params
from sheafdb.errors import IndexNotFound, RestParameterMissing


def create(call: Call) -> dict[str, Any]:
    name = call.text("collectionName")
    # One CreateIndex per entry, stopping at the first failure (as Milvus does).
    for spec in call.required("indexParams"):
        field_name = spec.get("fieldName")
        if not field_name:
            raise RestParameterMissing(
                "missing required parameters, error: indexParams[].fieldName is required"
            )
        index_name = str(spec.get("indexName") or "")
        call.engine.create_index(call.db, name, str(field_name), index_name, index_params(spec))
    return {}


def list_(call: Call) -> list[str]:
    try:
        indexes = call.engine.describe_indexes(call.db, call.text("collectionName"))
    except IndexNotFound:
        return []
    return [i.index_name for i in indexes]


def describe(call: Call) -> list[dict[str, Any]]:
    name = call.text("collectionName")
    indexes = call.engine.describe_indexes(call.db, name, index_name=call.text("indexName"))
    return [index_json(i) for i in indexes]


def drop(call: Call) -> dict[str, Any]:
    call.engine.drop_index(call.db, call.text("collectionName"), call.text("indexName"))
    return {}


def alter_properties(call: Call) -> dict[str, Any]:
    properties = {str(k): str(v) for k, v in dict(call.required("properties")).items()}
    call.engine.alter_index(call.db, call.text("collectionName"), call.text("indexName"), properties)
    return {}


def drop_properties(call: Call) -> dict[str, Any]:
    keys = [str(k) for k in call.required("propertyKeys")]
    call.engine.alter_index(call.db, call.text("collectionName"), call.text("indexName"), {}, keys)
    return {}


ENDPOINTS = (
    Endpoint("indexes/create", create, "CreateIndex"),
    Endpoint("indexes/list", list_, "DescribeIndex"),
    Endpoint("indexes/describe", describe, "DescribeIndex"),
    Endpoint("indexes/drop", drop, "DropIndex"),
    Endpoint("indexes/alter_properties", alter_properties, "AlterIndex"),
    Endpoint("indexes/drop_properties", drop_properties, "AlterIndex"),
)
