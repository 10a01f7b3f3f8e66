"""The request body of every REST v2 endpoint, as a JSON Schema subset, and its check.

One table serves two purposes: ``openapi.py`` publishes it (so clients and fuzzers see the real
bodies), and ``check_body`` enforces it before a handler runs, the way Milvus's gin binding
does: a value of the wrong JSON type -> 1801 ``can only accept json format request``, a missing
required key (absent, null, "" or []) -> 1802 ``missing required parameters``. Unknown keys are
ignored, as in Milvus. Because the check runs first, a badly typed request never reaches the
engine and so never writes anything.

Schema subset understood: ``type`` (a name or a list of names), ``properties``, ``required``,
``items``, ``enum``; ``description`` and ``example`` are for readers only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sheafdb.errors import RestParameterMissing, RestRequestNotJson

Schema = Mapping[str, Any]

_STRING: Schema = {"type": "string"}
_INTEGER: Schema = {"type": "integer"}
_BOOLEAN: Schema = {"type": "boolean"}
_OBJECT: Schema = {"type": "object"}
_NAMES: Schema = {"type": "array", "items": _STRING}
_ANY: Schema = {}


def _body(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    """An endpoint body: ``dbName`` is accepted everywhere (it picks the database)."""
    return {"type": "object", "required": list(required), "properties": {"dbName": _STRING, **properties}}


_COLLECTION = _body(("collectionName",), collectionName=_STRING)

_FIELD: Schema = {
    "type": "object",
    "required": ["fieldName", "dataType"],
    "properties": {
        "fieldName": _STRING,
        "dataType": {**_STRING, "example": "Int64"},
        "elementDataType": _STRING,
        "isPrimary": _BOOLEAN,
        "isPartitionKey": _BOOLEAN,
        "isClusteringKey": _BOOLEAN,
        "nullable": _BOOLEAN,
        "defaultValue": _ANY,
        "description": _STRING,
        # dim / max_length / max_capacity: numbers or numeric strings ("dim": "4" is common)
        "elementTypeParams": _OBJECT,
    },
}
_FUNCTION: Schema = {
    "type": "object",
    "required": ["name", "type"],
    "properties": {
        "name": _STRING,
        "type": {**_STRING, "example": "BM25"},
        "inputFieldNames": _NAMES,
        "outputFieldNames": _NAMES,
        "params": _OBJECT,
        "description": _STRING,
    },
}
_SCHEMA: Schema = {
    "type": "object",
    "required": ["fields"],
    "properties": {
        "autoID": _BOOLEAN,
        "autoId": _BOOLEAN,
        "enableDynamicField": _BOOLEAN,
        "description": _STRING,
        "fields": {"type": "array", "items": _FIELD},
        "functions": {"type": "array", "items": _FUNCTION},
    },
}
_INDEX: Schema = {
    "type": "object",
    "required": ["fieldName"],
    "properties": {
        "fieldName": _STRING,
        "indexName": _STRING,
        "metricType": _STRING,
        "indexType": _STRING,
        "params": _OBJECT,
    },
}
_ROWS: Schema = {
    "type": ["array", "object"],
    "items": _OBJECT,
    "description": "one row object or an array of row objects",
}
_VECTORS: Schema = {
    "type": "array",
    "description": "query vectors: arrays of numbers, {index: value} objects (sparse), or texts (BM25)",
}
_FUNCTION_SCORE: Schema = {
    "type": "object",
    "description": 'function rankers: {functions: [{name, type: "Rerank", inputFieldNames, params}]}',
    "properties": {"functions": {"type": "array", "items": _OBJECT}, "params": _OBJECT},
}
_READ_COMMON: dict[str, Schema] = {
    "outputFields": _NAMES,
    "partitionNames": _NAMES,
    "consistencyLevel": {**_STRING, "example": "Bounded"},
}
_SUB_SEARCH: Schema = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": _VECTORS,
        "annsField": _STRING,
        "filter": _STRING,
        "groupingField": _STRING,
        "metricType": _STRING,
        "limit": _INTEGER,
        "offset": _INTEGER,
        "params": _OBJECT,
        "exprParams": _OBJECT,
    },
}
_RERANK: Schema = {
    "type": "object",
    "properties": {
        "strategy": {**_STRING, "example": "rrf"},
        "params": {**_OBJECT, "description": "rrf: {k}; weighted: {weights: [..]}"},
    },
}
_PARTITION = _body(("collectionName", "partitionName"), collectionName=_STRING, partitionName=_STRING)
_PARTITIONS = _body(("collectionName", "partitionNames"), collectionName=_STRING, partitionNames=_NAMES)
_INDEX_NAMED = _body(("collectionName", "indexName"), collectionName=_STRING, indexName=_STRING)
_ALIAS_OF = _body(("collectionName", "aliasName"), collectionName=_STRING, aliasName=_STRING)
_ALIAS = _body(("aliasName",), aliasName=_STRING)
_DATABASE = _body(("dbName",))
_DATABASE_PROPS = _body(("dbName",), properties=_OBJECT)
_USER = _body(("userName",), userName=_STRING)
_USER_ROLE = _body(("userName", "roleName"), userName=_STRING, roleName=_STRING)
_ROLE = _body(("roleName",), roleName=_STRING)
_PRIVILEGE = _body(
    ("roleName", "objectType", "objectName", "privilege"),
    roleName=_STRING,
    objectType=_STRING,
    objectName=_STRING,
    privilege=_STRING,
)
_PRIVILEGE_V2 = _body(("roleName", "privilege"), roleName=_STRING, privilege=_STRING, collectionName=_STRING)
_GROUP = _body(("privilegeGroupName",), privilegeGroupName=_STRING)
_GROUP_PRIVILEGES = _body(("privilegeGroupName", "privileges"), privilegeGroupName=_STRING, privileges=_NAMES)

BODIES: Mapping[str, Schema] = {
    "collections/create": _body(
        ("collectionName",),
        collectionName=_STRING,
        dimension=_INTEGER,
        metricType=_STRING,
        idType={**_STRING, "example": "Int64"},
        autoID=_BOOLEAN,
        autoId=_BOOLEAN,
        primaryFieldName=_STRING,
        vectorFieldName=_STRING,
        description=_STRING,
        params=_OBJECT,
        schema=_SCHEMA,
        indexParams={"type": "array", "items": _INDEX},
    ),
    "collections/describe": _COLLECTION,
    "collections/list": _body(),
    "collections/has": _COLLECTION,
    "collections/drop": _COLLECTION,
    "collections/rename": _body(
        ("collectionName", "newCollectionName"),
        collectionName=_STRING,
        newCollectionName=_STRING,
        newDbName=_STRING,
    ),
    "collections/get_stats": _COLLECTION,
    "collections/get_load_state": _body(("collectionName",), collectionName=_STRING, partitionNames=_NAMES),
    "collections/load": _body(
        ("collectionName",),
        collectionName=_STRING,
        loadFields=_NAMES,
        skipLoadDynamicField=_BOOLEAN,
        replicaNumber=_INTEGER,
    ),
    "collections/refresh_load": _COLLECTION,
    "collections/release": _COLLECTION,
    "collections/alter_properties": _body(
        ("collectionName", "properties"), collectionName=_STRING, properties=_OBJECT
    ),
    "collections/drop_properties": _body(
        ("collectionName", "propertyKeys"), collectionName=_STRING, propertyKeys=_NAMES
    ),
    "collections/fields/alter_properties": _body(
        ("collectionName", "fieldName", "fieldParams"),
        collectionName=_STRING,
        fieldName=_STRING,
        fieldParams=_OBJECT,
    ),
    "collections/flush": _COLLECTION,
    "entities/insert": _body(
        ("collectionName", "data"), collectionName=_STRING, data=_ROWS, partitionName=_STRING
    ),
    "entities/upsert": _body(
        ("collectionName", "data"),
        collectionName=_STRING,
        data=_ROWS,
        partitionName=_STRING,
        partialUpdate=_BOOLEAN,
    ),
    "entities/delete": _body(
        ("collectionName", "filter"),
        collectionName=_STRING,
        filter=_STRING,
        partitionName=_STRING,
        exprParams=_OBJECT,
    ),
    "entities/query": _body(
        ("collectionName",),
        collectionName=_STRING,
        filter=_STRING,
        limit=_INTEGER,
        offset=_INTEGER,
        exprParams=_OBJECT,
        **_READ_COMMON,
    ),
    "entities/get": _body(
        ("collectionName", "id"),
        collectionName=_STRING,
        # Any JSON value binds (Milvus's ``ID interface{}``): the key's type is checked then (1806).
        id={"description": "a primary key (integer or string) or an array of them"},
        **_READ_COMMON,
    ),
    "entities/search": _body(
        ("collectionName", "data"),
        collectionName=_STRING,
        data=_VECTORS,
        annsField=_STRING,
        filter=_STRING,
        limit=_INTEGER,
        offset=_INTEGER,
        groupingField=_STRING,
        groupSize=_INTEGER,
        strictGroupSize=_BOOLEAN,
        searchParams=_OBJECT,
        exprParams=_OBJECT,
        functionScore=_FUNCTION_SCORE,
        **_READ_COMMON,
    ),
    "entities/hybrid_search": _body(
        ("collectionName", "search"),
        collectionName=_STRING,
        search={"type": "array", "items": _SUB_SEARCH},
        rerank=_RERANK,
        functionScore=_FUNCTION_SCORE,
        limit=_INTEGER,
        offset=_INTEGER,
        groupingField=_STRING,
        groupSize=_INTEGER,
        **_READ_COMMON,
    ),
    "common/run_analyzer": _body(
        ("text",),
        text={"type": ["string", "array"], "description": "a text or an array of texts"},
        analyzerParams={"type": ["object", "string"]},
        collectionName=_STRING,
        fieldName=_STRING,
        withDetail=_BOOLEAN,
        withHash=_BOOLEAN,
    ),
    "partitions/list": _COLLECTION,
    "partitions/has": _PARTITION,
    "partitions/create": _PARTITION,
    "partitions/drop": _PARTITION,
    "partitions/get_stats": _PARTITION,
    "partitions/load": _body(
        ("collectionName", "partitionNames"),
        collectionName=_STRING,
        partitionNames=_NAMES,
        loadFields=_NAMES,
        skipLoadDynamicField=_BOOLEAN,
    ),
    "partitions/release": _PARTITIONS,
    "indexes/create": _body(
        ("collectionName", "indexParams"),
        collectionName=_STRING,
        indexParams={"type": "array", "items": _INDEX},
    ),
    "indexes/list": _COLLECTION,
    "indexes/describe": _INDEX_NAMED,
    "indexes/drop": _INDEX_NAMED,
    "indexes/alter_properties": _body(
        ("collectionName", "indexName", "properties"),
        collectionName=_STRING,
        indexName=_STRING,
        properties=_OBJECT,
    ),
    "indexes/drop_properties": _body(
        ("collectionName", "indexName", "propertyKeys"),
        collectionName=_STRING,
        indexName=_STRING,
        propertyKeys=_NAMES,
    ),
    "aliases/create": _ALIAS_OF,
    "aliases/alter": _ALIAS_OF,
    "aliases/drop": _ALIAS,
    "aliases/describe": _ALIAS,
    "aliases/list": _body(collectionName=_STRING),
    "databases/create": _DATABASE_PROPS,
    "databases/alter": _DATABASE_PROPS,
    "databases/drop_properties": _body(("dbName", "propertyKeys"), propertyKeys=_NAMES),
    "databases/drop": _DATABASE,
    "databases/list": _body(),
    "databases/describe": _DATABASE,
    "users/list": _body(),
    "users/describe": _USER,
    "users/create": _body(("userName", "password"), userName=_STRING, password=_STRING),
    "users/update_password": _body(
        ("userName", "password", "newPassword"), userName=_STRING, password=_STRING, newPassword=_STRING
    ),
    "users/drop": _USER,
    "users/grant_role": _USER_ROLE,
    "users/revoke_role": _USER_ROLE,
    "roles/list": _body(),
    "roles/describe": _ROLE,
    "roles/create": _ROLE,
    "roles/drop": _ROLE,
    "roles/grant_privilege": _PRIVILEGE,
    "roles/revoke_privilege": _PRIVILEGE,
    "roles/grant_privilege_v2": _PRIVILEGE_V2,
    "roles/revoke_privilege_v2": _PRIVILEGE_V2,
    "privilege_groups/create": _GROUP,
    "privilege_groups/drop": _GROUP,
    "privilege_groups/list": _body(),
    "privilege_groups/add_privileges_to_group": _GROUP_PRIVILEGES,
    "privilege_groups/remove_privileges_from_group": _GROUP_PRIVILEGES,
}
BODIES = {**BODIES, "entities/advanced_search": BODIES["entities/hybrid_search"]}
# SheafDB's own endpoints, under /v2/sheafdb/ (their paths have no "/", so never collide).
BODIES = {
    **BODIES,
    "memory": _body(),
    "release": _body(("collectionName",), collectionName=_STRING, partitionNames=_NAMES),
    "load_plan": _body(
        ("collectionName",),
        collectionName=_STRING,
        partitionNames=_NAMES,
        loadFields=_NAMES,
        skipLoadDynamicField=_BOOLEAN,
    ),
}

# Compaction and resource groups (rest/compaction.py, rest/resource_groups.py).
_NODE_NUM: Schema = {"type": "object", "properties": {"node_num": _INTEGER}}
_RG_TRANSFERS: Schema = {
    "type": "array",
    "items": {"type": "object", "required": ["resource_group"], "properties": {"resource_group": _STRING}},
}
_RG_CONFIG: Schema = {
    "type": "object",
    "required": ["requests", "limits"],
    "properties": {
        "requests": _NODE_NUM,
        "limits": _NODE_NUM,
        "transfer_from": _RG_TRANSFERS,
        "transfer_to": _RG_TRANSFERS,
        "node_filter": {"type": "object", "properties": {"node_labels": _OBJECT}},
    },
}
_RG_NAMED = _body(("name",), name=_STRING)
BODIES = {
    **BODIES,
    "collections/compact": _body(("collectionName",), collectionName=_STRING, isClustering=_BOOLEAN),
    "collections/get_compaction_state": _body(jobID=_INTEGER),
    "resource_groups/create": _body(("name",), name=_STRING, config=_RG_CONFIG),
    "resource_groups/drop": _RG_NAMED,
    "resource_groups/alter": _body(
        ("resource_groups",),
        resource_groups={**_OBJECT, "description": "resource group name -> config (requests, limits, ...)"},
    ),
    "resource_groups/describe": _RG_NAMED,
    "resource_groups/list": _body(),
    "resource_groups/transfer_replica": _body(
        ("sourceRgName", "targetRgName", "collectionName", "replicaNum"),
        sourceRgName=_STRING,
        targetRgName=_STRING,
        collectionName=_STRING,
        replicaNum=_INTEGER,
    ),
}
# Bulk import jobs (rest/imports.py); options are Milvus's map[string]string.
_STRING_MAP: Schema = {"type": "object", "description": "import options (sep, nullkey, ...) as strings"}
BODIES = {
    **BODIES,
    "jobs/import/create": _body(
        ("collectionName", "files"),
        collectionName=_STRING,
        partitionName=_STRING,
        files={"type": "array", "items": _NAMES},
        options=_STRING_MAP,
    ),
    "jobs/import/describe": _body(("jobId",), jobId=_STRING),
    "jobs/import/get_progress": _body(("jobId",), jobId=_STRING),
    "jobs/import/list": _body(collectionName=_STRING),
}

_JSON_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), "unknown")


_INT64 = range(-(2**63), 2**63)


def _matches(value: Any, type_name: str) -> bool:
    actual = _json_type(value)
    # Go's json decoder reads 3.0 into an int field too; a fraction it refuses, and a number
    # past its 64-bit integers too (which would also overflow the catalog's columns).
    if type_name == "integer" and actual in ("integer", "number"):
        return float(value).is_integer() and int(value) in _INT64
    if type_name == "number":
        return actual in ("integer", "number")
    return actual == type_name


def _check_types(value: Any, schema: Schema, where: str) -> None:
    if value is None:
        return  # null binds as the zero value
    wanted = schema.get("type")
    if wanted is not None:
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        if not any(_matches(value, name) for name in names):
            raise RestRequestNotJson(
                f"can only accept json format request, error: json: cannot unmarshal {_json_type(value)} "
                f"into field {where} of type {' or '.join(names)}"
            )
    if "enum" in schema and value not in schema["enum"]:
        raise RestRequestNotJson(
            f"can only accept json format request, error: {where} must be one of {schema['enum']}"
        )
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                _check_types(value[key], sub, f"{where}.{key}" if where else key)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check_types(item, schema["items"], f"{where}[{i}]")


def _missing(value: Any) -> bool:
    return value is None or value == "" or value == []


def _check_required(value: Any, schema: Schema, where: str) -> None:
    if value is None and schema.get("type") == "object":
        value = {}  # null binds as the zero struct, whose required keys are then missing
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if _missing(value.get(key)):
                name = f"{where}.{key}" if where else key
                raise RestParameterMissing(
                    f"missing required parameters, error: Key: '{name}' Error:Field validation for "
                    f"'{key}' failed on the 'required' tag"
                )
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                _check_required(value[key], sub, f"{where}.{key}" if where else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            _check_required(item, schema["items"], f"{where}[{i}]")


def without_nulls(path: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with every ``null`` the schema declares as a request field removed: Go binds a
    JSON null to the field's zero value, so it reads as "not given" (defaults apply). Nulls
    inside free-form objects (rows, ``params``, ``exprParams``) are kept: there they are data."""
    schema = BODIES.get(path)
    if schema is None:
        return dict(body)
    return _drop_nulls(body, schema)


def _drop_nulls(value: Any, schema: Schema) -> Any:
    properties = schema.get("properties")
    if isinstance(value, dict) and properties is not None:
        return {
            key: _drop_nulls(item, properties[key]) if key in properties else item
            for key, item in value.items()
            if not (item is None and key in properties)
        }
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, Mapping):
        return [_drop_nulls(item, items) for item in value]
    return value


def check_body(path: str, body: Mapping[str, Any]) -> None:
    """Types first (1801), then required keys (1802), like gin's bind-then-validate."""
    schema = BODIES.get(path)
    if schema is None:
        return
    _check_types(body, schema, "")
    _check_required(body, schema, "")
