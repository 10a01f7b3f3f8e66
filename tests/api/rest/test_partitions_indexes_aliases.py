"""Partitions, indexes and aliases endpoints."""

from __future__ import annotations

from .test_collections import SEED_SCHEMA, create_seed


def test_partitions(rest):
    create_seed(rest, "c", rows=5)
    assert rest("collections/release", {"collectionName": "c"})["code"] == 0
    assert rest("partitions/create", {"collectionName": "c", "partitionName": "p1"})["code"] == 0
    assert rest("partitions/list", {"collectionName": "c"})["data"] == ["_default", "p1"]
    assert rest("partitions/has", {"collectionName": "c", "partitionName": "p1"})["data"] == {"has": True}
    rows = [{"my_id": 100 + i, "my_vector": [0, 0, 0, i], "my_varchar": "x"} for i in range(3)]
    assert rest("entities/insert", {"collectionName": "c", "partitionName": "p1", "data": rows})["code"] == 0
    assert rest("partitions/get_stats", {"collectionName": "c", "partitionName": "p1"})["data"] == {
        "rowCount": 3
    }
    assert rest("partitions/load", {"collectionName": "c", "partitionNames": ["p1"]})["code"] == 0
    state = rest("collections/get_load_state", {"collectionName": "c", "partitionNames": ["p1"]})
    assert state["data"]["loadState"] == "LoadStateLoaded"
    found = rest("entities/query", {"collectionName": "c", "filter": "my_id >= 0", "outputFields": ["my_id"]})
    assert sorted(r["my_id"] for r in found["data"]) == [100, 101, 102]
    assert rest("partitions/release", {"collectionName": "c", "partitionNames": ["p1"]})["code"] == 0
    assert rest("partitions/load", {"collectionName": "c"})["code"] == 1802
    assert rest("partitions/drop", {"collectionName": "c", "partitionName": "p1"})["code"] == 0
    assert rest("partitions/has", {"collectionName": "c", "partitionName": "p1"})["data"] == {"has": False}


def test_indexes(rest):
    assert rest("collections/create", {"collectionName": "c", "schema": SEED_SCHEMA})["code"] == 0
    assert rest("indexes/list", {"collectionName": "c"})["data"] == []
    assert rest("collections/get_load_state", {"collectionName": "c"})["data"] == {
        "loadState": "LoadStateNotLoad"
    }
    spec = {
        "fieldName": "my_vector",
        "indexName": "vec_idx",
        "metricType": "IP",
        "indexType": "HNSW",
        "params": {"M": 16, "efConstruction": 64},
    }
    assert rest("indexes/create", {"collectionName": "c", "indexParams": [spec]})["code"] == 0
    assert rest("indexes/list", {"collectionName": "c"})["data"] == ["vec_idx"]
    described = rest("indexes/describe", {"collectionName": "c", "indexName": "vec_idx"})["data"]
    assert len(described) == 1
    assert described[0]["fieldName"] == "my_vector" and described[0]["indexType"] == "HNSW"
    assert described[0]["metricType"] == "IP" and described[0]["indexState"] in ("Finished", "InProgress")
    assert rest("indexes/describe", {"collectionName": "c", "indexName": "nope"})["code"] == 700
    assert rest("indexes/drop", {"collectionName": "c", "indexName": "vec_idx"})["code"] == 0
    assert rest("indexes/list", {"collectionName": "c"})["data"] == []


def test_aliases(rest):
    create_seed(rest, "c", rows=1)
    create_seed(rest, "d", rows=1)
    assert rest("aliases/create", {"collectionName": "c", "aliasName": "a"})["code"] == 0
    assert rest("aliases/list", {})["data"] == ["a"]
    assert rest("aliases/describe", {"aliasName": "a"})["data"] == {
        "dbName": "default",
        "collectionName": "c",
        "aliasName": "a",
    }
    assert rest("collections/describe", {"collectionName": "c"})["data"]["aliases"] == ["a"]
    assert rest("aliases/alter", {"collectionName": "d", "aliasName": "a"})["code"] == 0
    assert rest("aliases/describe", {"aliasName": "a"})["data"]["collectionName"] == "d"
    assert rest("aliases/create", {"collectionName": "c", "aliasName": "a"})["code"] != 0
    assert rest("aliases/drop", {"aliasName": "a"})["code"] == 0
    assert rest("aliases/describe", {"aliasName": "a"})["code"] == 1600


def test_index_params_entry_null_is_a_missing_field_name(rest):
    # Found by the OpenAPI fuzz: a null entry binds as an empty one, whose fieldName is missing.
    assert rest("collections/create", {"collectionName": "c", "schema": SEED_SCHEMA})["code"] == 0
    reply = rest("indexes/create", {"collectionName": "c", "indexParams": [None]})
    assert reply["code"] == 1802 and "indexParams[0].fieldName" in reply["message"]
    assert rest("indexes/list", {"collectionName": "c"})["data"] == []
