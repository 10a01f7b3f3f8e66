"""Collections endpoints through the real app on a real engine."""

from __future__ import annotations

SEED_SCHEMA = {
    "autoId": False,
    "enableDynamicField": True,
    "fields": [
        {"fieldName": "my_id", "dataType": "Int64", "isPrimary": True},
        {"fieldName": "my_vector", "dataType": "FloatVector", "elementTypeParams": {"dim": "4"}},
        {"fieldName": "my_varchar", "dataType": "VarChar", "elementTypeParams": {"max_length": 64}},
    ],
}
SEED_INDEX = [{"fieldName": "my_vector", "metricType": "L2", "indexType": "AUTOINDEX"}]


def create_seed(rest, name="my_collection", rows=500):
    assert (
        rest(
            "collections/create", {"collectionName": name, "schema": SEED_SCHEMA, "indexParams": SEED_INDEX}
        )["code"]
        == 0
    )
    data = [
        {"my_id": i, "my_vector": [i, i + 1, i + 2, i + 3], "my_varchar": f"v{i % 10}", "color": "red"}
        for i in range(rows)
    ]
    reply = rest("entities/insert", {"collectionName": name, "data": data})
    assert reply["code"] == 0 and reply["data"]["insertCount"] == rows, reply
    assert reply["cost"] == 0


def test_seed_flow_load_search_release(rest):
    create_seed(rest)
    assert rest("collections/load", {"collectionName": "my_collection"}) == {"code": 0, "data": {}}
    state = rest("collections/get_load_state", {"collectionName": "my_collection"})
    assert state["code"] == 0 and state["message"] == ""
    assert state["data"] == {"loadState": "LoadStateLoaded", "loadProgress": 100}
    hits = rest(
        "entities/search",
        {
            "collectionName": "my_collection",
            "data": [[10, 11, 12, 13]],
            "annsField": "my_vector",
            "limit": 3,
            "outputFields": ["my_varchar", "color"],
        },
    )
    assert hits["code"] == 0 and len(hits["data"]) == 3, hits
    best = hits["data"][0]
    assert best == {"my_id": 10, "distance": 0.0, "my_varchar": "v0", "color": "red"}
    assert rest("collections/release", {"collectionName": "my_collection"}) == {"code": 0, "data": {}}
    state = rest("collections/get_load_state", {"collectionName": "my_collection"})
    assert state["data"] == {"loadState": "LoadStateNotLoad"}
    refused = rest("entities/search", {"collectionName": "my_collection", "data": [[1, 2, 3, 4]], "limit": 3})
    assert refused["code"] == 101
    missing = rest("collections/get_load_state", {"collectionName": "no_such_collection"})
    assert missing["code"] == 100 and "no_such_collection" in missing["message"]


def test_quick_create_indexes_and_loads(rest):
    reply = rest("collections/create", {"collectionName": "quick", "dimension": 8})
    assert reply == {"code": 0, "data": {}}
    state = rest("collections/get_load_state", {"collectionName": "quick"})
    assert state["data"]["loadState"] == "LoadStateLoaded"
    described = rest("collections/describe", {"collectionName": "quick"})["data"]
    assert described["collectionName"] == "quick" and described["enableDynamicField"] is True
    assert [(f["name"], f["type"], f["primaryKey"]) for f in described["fields"]] == [
        ("id", "Int64", True),
        ("vector", "FloatVector", False),
    ]
    assert {"key": "dim", "value": "8"} in described["fields"][1]["params"]
    assert described["indexes"] == [{"fieldName": "vector", "indexName": "vector", "metricType": "COSINE"}]
    assert described["load"] == "LoadStateLoaded"
    assert rest("indexes/list", {"collectionName": "quick"})["data"] == ["vector"]


def test_quick_create_errors(rest):
    assert rest("collections/create", {"collectionName": "q"})["code"] == 1100
    bad_id = rest("collections/create", {"collectionName": "q", "dimension": 4, "idType": "Float"})
    assert bad_id["code"] == 1100 and "idType can only be" in bad_id["message"]
    bad_type = rest(
        "collections/create",
        {
            "collectionName": "q",
            "schema": {"fields": [{"fieldName": "a", "dataType": "int64", "isPrimary": True}]},
        },
    )
    assert bad_type["code"] == 1100 and "data type int64 is invalid(case sensitive)" in bad_type["message"]
    undefined = rest(
        "collections/create",
        {
            "collectionName": "q",
            "schema": SEED_SCHEMA,
            "indexParams": [{"fieldName": "nope", "metricType": "L2"}],
        },
    )
    assert undefined["code"] == 1802 and "`nope` hasn't defined in schema" in undefined["message"]


def test_list_has_rename_stats_drop(rest):
    create_seed(rest, "c1", rows=20)
    assert rest("collections/list")["data"] == ["c1"]
    assert rest("collections/has", {"collectionName": "c1"})["data"] == {"has": True}
    assert rest("collections/has", {"collectionName": "c2"})["data"] == {"has": False}
    assert rest("collections/flush", {"collectionName": "c1"})["code"] == 0
    assert rest("collections/get_stats", {"collectionName": "c1"})["data"] == {"rowCount": 20}
    assert rest("collections/rename", {"collectionName": "c1", "newCollectionName": "c2"})["code"] == 0
    assert rest("collections/list")["data"] == ["c2"]
    assert rest("collections/drop", {"collectionName": "c2"})["code"] == 0
    assert rest("collections/list")["data"] == []
    assert rest("collections/describe", {"collectionName": "c2"})["code"] == 100


def test_properties(rest):
    create_seed(rest, "c", rows=1)
    assert (
        rest(
            "collections/alter_properties",
            {"collectionName": "c", "properties": {"collection.ttl.seconds": 60}},
        )["code"]
        == 0
    )
    props = rest("collections/describe", {"collectionName": "c"})["data"]["properties"]
    assert {"key": "collection.ttl.seconds", "value": "60"} in props
    assert (
        rest(
            "collections/drop_properties", {"collectionName": "c", "propertyKeys": ["collection.ttl.seconds"]}
        )["code"]
        == 0
    )
    props = rest("collections/describe", {"collectionName": "c"})["data"]["properties"]
    assert {"key": "collection.ttl.seconds", "value": "60"} not in props


def test_envelope_errors(rest):
    bad = rest.raw("collections/list", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 200 and bad.json()["code"] == 1801
    # No body and a JSON null read as {} (Go binds null to the zero request).
    assert rest.raw("collections/list", content=b"").json() == {"code": 0, "data": []}
    assert rest.raw("collections/list", content=b"null").json() == {"code": 0, "data": []}
    assert rest.raw("collections/describe", content=b"").json()["code"] == 1802
    missing = rest("collections/describe", {})
    assert missing["code"] == 1802 and "collectionName" in missing["message"]
    assert rest.raw("collections/nope", {}).status_code == 404
    timeout = rest.raw("collections/list", {}, headers={"Request-Timeout": "soon"})
    assert timeout.json()["code"] == 1100


def test_database_from_body_then_header(rest):
    assert rest("databases/create", {"dbName": "db2"})["code"] == 0
    assert sorted(rest("databases/list")["data"]) == ["db2", "default"]
    create_seed(rest, "only_in_default", rows=1)
    assert rest("collections/list", {"dbName": "db2"})["data"] == []
    assert rest("collections/list", {}, headers={"DB-Name": "db2"})["data"] == []
    assert rest("collections/list", {})["data"] == ["only_in_default"]
    described = rest("databases/describe", {"dbName": "db2"})["data"]
    assert described["dbName"] == "db2" and isinstance(described["dbID"], int)
    assert rest("collections/list", {"dbName": "nope"})["code"] == 800
    assert rest("databases/drop", {"dbName": "db2"})["code"] == 0


def test_openapi_lists_every_route(rest):
    document = rest.client.get("/v2/vectordb/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "/v2/vectordb/collections/get_load_state" in document["paths"]
    assert "/v2/vectordb/entities/hybrid_search" in document["paths"]
