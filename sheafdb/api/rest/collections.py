"""``/v2/vectordb/collections/*``.

Load: Milvus's REST ``load`` returns as soon as the load is accepted; SheafDB's waits (up to
``LOAD_WAIT_SECONDS``, or the client's ``Request-Timeout``) for the background load to finish,
so that the seed's ``load`` then ``get_load_state`` reads ``LoadStateLoaded`` / 100 every time
instead of racing the loader. ``get_load_state`` never pretends: it reports the engine's state
and its real progress (loaded bytes / planned bytes), so a load started elsewhere (gRPC, a
restart restoring loads, a load whose wait ran out) shows ``LoadStateLoading`` with 0..99.
"""

from __future__ import annotations

from typing import Any

from sheafdb.api.rest.envelope import Call, Endpoint, Reply
from sheafdb.api.rest.schema_json import (
    LOAD_STATE_NAMES,
    consistency_level,
    describe_json,
    index_params,
    quick_schema,
    schema_from_json,
)
from sheafdb.engine.models import LoadState
from sheafdb.engine.struct_index import struct_sub_of
from sheafdb.errors import CollectionNotFound, IndexNotFound, RestParameterMissing, SheafError

# Bounds the wait of load / refresh_load / create (the client's Request-Timeout bounds it further).
LOAD_WAIT_SECONDS = 30.0


def create(call: Call) -> dict[str, Any]:
    name = call.text("collectionName")
    params = dict(call.get("params", {}))
    spec = call.body.get("schema")
    if spec:
        schema = schema_from_json(spec, params)
        indexes = list(call.get("indexParams", []))
    else:
        schema = quick_schema(call.body, params)
        metric = call.get("metricType", "COSINE")
        indexes = [
            {"fieldName": schema.vector_fields[0].name, "metricType": metric, "indexType": "AUTOINDEX"}
        ]
    for spec_index in indexes:
        target = str(spec_index.get("fieldName"))
        if schema.field(target) is None and struct_sub_of(schema, target) is None:
            raise RestParameterMissing(
                "missing required parameters, error: "
                f"`{spec_index.get('fieldName')}` hasn't defined in schema"
            )
    properties = {}
    if "ttlSeconds" in params:
        properties["collection.ttl.seconds"] = str(params["ttlSeconds"])
    num_partitions = int(params.get("partitionsNum", 64 if schema.partition_key_field else 0))
    call.engine.create_collection(
        call.db,
        name,
        schema,
        consistency_level=consistency_level(params.get("consistencyLevel")),
        num_partitions=num_partitions,
        shards_num=int(params.get("shardsNum", 1)),
        properties=properties,
    )
    try:
        for spec_index in indexes:
            field_name = str(spec_index["fieldName"])
            call.engine.create_index(
                call.db,
                name,
                field_name,
                str(spec_index.get("indexName") or ""),
                index_params(spec_index),
            )
        if indexes:
            call.engine.load_collection(call.db, name)
    except SheafError:
        # A rejected create leaves nothing behind (Milvus would keep the half-made collection).
        call.engine.drop_collection(call.db, name)
        raise
    if indexes:
        wait_loaded(call, name)
    return {}


def wait_loaded(call: Call, name: str, partitions: tuple[str, ...] = ()) -> None:
    """Block until the background load finishes (or fails, or the wait runs out)."""
    limit = LOAD_WAIT_SECONDS
    header = call.headers.get("request-timeout")
    if header and header.isdigit():
        limit = min(limit, float(header))
    call.engine.wait_for_load(call.db, name, partitions, limit)


def describe(call: Call) -> Reply:
    name = call.text("collectionName")
    info = call.engine.describe_collection(call.db, name)
    message = ""
    try:
        indexes = call.engine.describe_indexes(call.db, name)
    except IndexNotFound:
        indexes = []
    except SheafError as err:
        indexes, message = [], err.message
    load = call.engine.get_load_state(call.db, name)
    return Reply(describe_json(info, indexes, load), {"message": message})


def list_(call: Call) -> list[str]:
    names = list(call.engine.list_collections(call.db))
    return names if call.access is None else call.access.visible_collections(call.user, call.db, names)


def has(call: Call) -> dict[str, bool]:
    return {"has": call.engine.has_collection(call.db, call.text("collectionName"))}


def drop(call: Call) -> dict[str, Any]:
    call.engine.drop_collection(call.db, call.text("collectionName"))
    return {}


def rename(call: Call) -> dict[str, Any]:
    old = call.text("collectionName")
    new = call.text("newCollectionName")
    call.engine.rename_collection(call.db, old, new, call.get("newDbName") or None)
    return {}


def get_stats(call: Call) -> dict[str, int]:
    return {"rowCount": call.engine.collection_row_count(call.db, call.text("collectionName"))}


def get_load_state(call: Call) -> Reply | dict[str, str]:
    name = call.text("collectionName")
    partitions = call.names("partitionNames")
    state = call.engine.get_load_state(call.db, name, partitions)
    if state is LoadState.NOT_EXIST:
        raise CollectionNotFound(f"collection not found[collection={name}]")
    if state is LoadState.NOT_LOAD:
        return {"loadState": LOAD_STATE_NAMES[state]}
    message = ""
    try:
        progress = call.engine.get_loading_progress(call.db, name, partitions).progress
    except SheafError as err:
        progress, message = -1, err.message
    return Reply({"loadState": LOAD_STATE_NAMES[state], "loadProgress": progress}, {"message": message})


def load(call: Call) -> dict[str, Any]:
    name = call.text("collectionName")
    call.engine.load_collection(
        call.db,
        name,
        load_fields=call.names("loadFields"),
        skip_load_dynamic_field=bool(call.get("skipLoadDynamicField", False)),
        replica_number=int(call.get("replicaNumber", 1)),
    )
    wait_loaded(call, name)
    return {}


def refresh_load(call: Call) -> dict[str, Any]:
    name = call.text("collectionName")
    call.engine.load_collection(call.db, name, refresh=True)
    wait_loaded(call, name)
    return {}


def release(call: Call) -> dict[str, Any]:
    # Milvus's reply, to the byte (clients compare it whole); /v2/sheafdb/release says the bytes.
    call.engine.release_collection(call.db, call.text("collectionName"))
    return {}


def alter_properties(call: Call) -> dict[str, Any]:
    properties = {str(k): _text(v) for k, v in dict(call.required("properties")).items()}
    call.engine.alter_collection_properties(call.db, call.text("collectionName"), properties)
    return {}


def drop_properties(call: Call) -> dict[str, Any]:
    keys = [str(k) for k in call.required("propertyKeys")]
    call.engine.drop_collection_properties(call.db, call.text("collectionName"), keys)
    return {}


def alter_field_properties(call: Call) -> dict[str, Any]:
    params = {str(k): _text(v) for k, v in dict(call.required("fieldParams")).items()}
    call.engine.alter_collection_field(call.db, call.text("collectionName"), call.text("fieldName"), params)
    return {}


def flush(call: Call) -> dict[str, Any]:
    call.engine.flush(call.db, [call.text("collectionName")])
    return {}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


ENDPOINTS = (
    Endpoint("collections/create", create, "CreateCollection"),
    Endpoint("collections/describe", describe, "DescribeCollection"),
    Endpoint("collections/list", list_, "ShowCollections"),
    Endpoint("collections/has", has, "HasCollection"),
    Endpoint("collections/drop", drop, "DropCollection"),
    Endpoint("collections/rename", rename, "RenameCollection"),
    Endpoint("collections/get_stats", get_stats, "GetCollectionStatistics"),
    Endpoint("collections/get_load_state", get_load_state, "GetLoadState"),
    Endpoint("collections/load", load, "LoadCollection"),
    Endpoint("collections/refresh_load", refresh_load, "LoadCollection"),
    Endpoint("collections/release", release, "ReleaseCollection"),
    Endpoint("collections/alter_properties", alter_properties, "AlterCollection"),
    Endpoint("collections/drop_properties", drop_properties, "AlterCollection"),
    Endpoint("collections/fields/alter_properties", alter_field_properties, "AlterCollectionField"),
    Endpoint("collections/flush", flush, "Flush"),
)
