"""REST v2 shapes and error codes against milvus-behaviour.md §4 (one behaviour per test)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCHEMA = {
    "enableDynamicField": False,
    "fields": [
        {"fieldName": "pk", "dataType": "Int64", "isPrimary": True},
        {"fieldName": "v", "dataType": "FloatVector", "elementTypeParams": {"dim": 2}},
        {"fieldName": "w", "dataType": "FloatVector", "elementTypeParams": {"dim": 2}},
        {"fieldName": "big", "dataType": "Int64"},
        {"fieldName": "s", "dataType": "VarChar", "elementTypeParams": {"max_length": 4}},
    ],
}
INDEXES = [
    {"fieldName": "v", "metricType": "L2", "indexType": "FLAT"},
    {"fieldName": "w", "metricType": "IP", "indexType": "FLAT"},
]
BIG = 2**62 + 1  # beyond 2**53: a JavaScript number would lose it


def _setup(rest, rows: int = 6) -> None:
    reply = rest("collections/create", {"collectionName": "t", "schema": SCHEMA, "indexParams": INDEXES})
    assert reply["code"] == 0, reply
    data = [{"pk": i, "v": [i, 0], "w": [1, i], "big": BIG + i, "s": f"s{i}"} for i in range(rows)]
    assert rest("entities/insert", {"collectionName": "t", "data": data})["code"] == 0


def _count(rest) -> int:
    return rest("entities/query", {"collectionName": "t", "outputFields": ["count(*)"]})["data"][0][
        "count(*)"
    ]


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_ROW = st.fixed_dictionaries(
    {},
    optional={
        "pk": st.one_of(st.integers(0, 10**6), _VALUES),
        "v": st.one_of(st.just([1.0, 2.0]), _VALUES),
        "w": st.one_of(st.just([0.5, 0.5]), _VALUES),
        "big": st.one_of(st.integers(-(2**63), 2**63 - 1), _VALUES),
        "s": st.one_of(st.text(max_size=5), _VALUES),
        "extra": _VALUES,
    },
)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(_ROW, min_size=1, max_size=4))
def test_insert_is_all_or_nothing(rest, rows):
    if rest("collections/has", {"collectionName": "t"})["data"]["has"] is False:
        _setup(rest)
    before = _count(rest)
    reply = rest("entities/insert", {"collectionName": "t", "data": rows})
    after = _count(rest)
    if reply["code"] == 0:
        assert reply["data"]["insertCount"] == len(rows) and after == before + len(rows)
    else:
        assert reply["code"] in (1100, 1804, 1801), reply
        assert after == before, reply


def test_int64_as_string_header(rest):
    _setup(rest, rows=2)
    as_text = {"Accept-Type-Allow-Int64": "false"}
    row = {"pk": BIG, "v": [9, 9], "w": [9, 9], "big": BIG, "s": "x"}
    inserted = rest("entities/insert", {"collectionName": "t", "data": [row]}, headers=as_text)
    assert inserted["data"] == {"insertCount": 1, "insertIds": [str(BIG)]}
    got = rest(
        "entities/get", {"collectionName": "t", "id": [BIG], "outputFields": ["big", "s"]}, headers=as_text
    )
    assert got["data"] == [{"pk": str(BIG), "big": str(BIG), "s": "x"}]
    hits = rest(
        "entities/search",
        {"collectionName": "t", "data": [[9, 9]], "annsField": "v", "limit": 1, "outputFields": ["big"]},
        headers=as_text,
    )
    assert hits["data"] == [{"pk": str(BIG), "distance": 0.0, "big": str(BIG)}]
    # Absent (and "true"): numbers, exact in Python's JSON.
    for headers in ({}, {"Accept-Type-Allow-Int64": "true"}):
        got = rest(
            "entities/get", {"collectionName": "t", "id": BIG, "outputFields": ["big"]}, headers=headers
        )
        assert got["data"] == [{"pk": BIG, "big": BIG}]


def test_search_nq_two_reports_topks(rest):
    _setup(rest)
    reply = rest(
        "entities/search", {"collectionName": "t", "data": [[0, 0], [5, 0]], "annsField": "v", "limit": 2}
    )
    assert reply["code"] == 0 and reply["topks"] == [2, 2]
    assert [h["pk"] for h in reply["data"]] == [0, 1, 5, 4]
    one = rest("entities/search", {"collectionName": "t", "data": [[0, 0]], "annsField": "v", "limit": 3})
    assert one["topks"] == [3] and len(one["data"]) == 3


def test_search_without_anns_field_and_two_vector_fields(rest):
    _setup(rest)
    reply = rest("entities/search", {"collectionName": "t", "data": [[0, 0]], "limit": 2})
    assert reply["code"] == 1801
    assert reply["message"] == (
        "can only accept json format request, error: search without annsField, but already found "
        "multiple vector fields: [v, w,,,]"
    )


def test_hybrid_search_rerank_shapes(rest):
    _setup(rest)
    base = {
        "collectionName": "t",
        "search": [
            {"data": [[5, 0]], "annsField": "v", "limit": 3},
            {"data": [[0, 1]], "annsField": "w", "limit": 3},
        ],
        "limit": 2,
        "outputFields": ["s"],
    }
    for rerank in (
        {"strategy": "rrf", "params": {"k": 10}},
        {"strategy": "weighted", "params": {"weights": [1, 0]}},
    ):
        reply = rest("entities/hybrid_search", {**base, "rerank": rerank})
        assert reply["code"] == 0 and reply["topks"] == [2], reply
        assert reply["data"][0]["pk"] == 5 and reply["data"][0]["s"] == "s5"
        assert set(reply["data"][0]) == {"pk", "distance", "s"}
    bad = rest("entities/hybrid_search", {**base, "rerank": {"strategy": "best", "params": {}}})
    assert bad["code"] == 1100 and "best" in bad["message"]
    wrong_weights = rest(
        "entities/hybrid_search", {**base, "rerank": {"strategy": "weighted", "params": {"weights": [1]}}}
    )
    assert wrong_weights["code"] == 1100


def test_bad_consistency_level(rest):
    _setup(rest)
    for path, extra in (
        ("entities/query", {"filter": "pk > 0"}),
        ("entities/search", {"data": [[0, 0]], "annsField": "v"}),
        ("entities/get", {"id": 1}),
    ):
        reply = rest(path, {"collectionName": "t", "consistencyLevel": "Now", **extra})
        assert reply["code"] == 1100, reply
        assert reply["message"].startswith(
            "consistencyLevel can only be [Strong, Session, Bounded, Eventually, Customized], "
            "default: Bounded, err:"
        )


def test_insert_error_texts(rest):
    _setup(rest, rows=1)
    unknown = rest(
        "entities/insert", {"collectionName": "t", "data": [{"pk": 9, "v": [1, 1], "w": [1, 1], "zz": 1}]}
    )
    assert unknown["code"] == 1804
    assert unknown["message"] == (
        "fail to deal the insert data, error: has pass more field without dynamic schema, please check it"
    )
    ragged = rest(
        "entities/insert", {"collectionName": "t", "data": [{"pk": 9, "v": [1, 1]}, {"pk": 8, "v": [1]}]}
    )
    assert ragged["code"] == 1804 and ragged["message"].startswith("fail to deal the insert data, error: ")
    not_rows = rest("entities/insert", {"collectionName": "t", "data": [1, 2]})
    assert not_rows["code"] == 1801  # items must be objects: a bind error, as in Milvus


def test_body_types_and_required_keys(rest):
    wrong = rest("entities/query", {"collectionName": "t", "limit": "ten"})
    assert wrong["code"] == 1801 and "limit" in wrong["message"]
    nested = rest(
        "collections/create",
        {"collectionName": "n", "schema": {"fields": [{"fieldName": "pk", "isPrimary": True}]}},
    )
    assert nested["code"] == 1802 and "dataType" in nested["message"]
    assert rest("collections/has", {"collectionName": "n"})["data"] == {"has": False}
    assert rest("collections/describe", {"collectionName": 5})["code"] == 1801


def test_rejected_create_leaves_nothing(rest):
    bad_index = [{"fieldName": "v", "metricType": "NOPE", "indexType": "FLAT"}]
    reply = rest("collections/create", {"collectionName": "r", "schema": SCHEMA, "indexParams": bad_index})
    assert reply["code"] != 0
    assert rest("collections/list")["data"] == []


def test_indexes_describe_is_an_array(rest):
    _setup(rest)
    described = rest("indexes/describe", {"collectionName": "t", "indexName": "v"})
    assert described["code"] == 0 and isinstance(described["data"], list) and len(described["data"]) == 1
    assert set(described["data"][0]) == {
        "indexName",
        "fieldName",
        "indexType",
        "metricType",
        "totalRows",
        "pendingRows",
        "indexedRows",
        "indexState",
        "failReason",
    }


def test_collection_describe_shape(rest):
    _setup(rest)
    assert rest("collections/describe", {"collectionName": "t"})["data"]["load"] == "LoadStateLoaded"
    rest("collections/release", {"collectionName": "t"})  # mmap.enabled needs a released collection
    altered = rest(
        "collections/alter_properties", {"collectionName": "t", "properties": {"mmap.enabled": True}}
    )
    assert altered["code"] == 0, altered
    data = rest("collections/describe", {"collectionName": "t"})["data"]
    assert data["load"] == "LoadStateNotLoad"
    assert {"key": "mmap.enabled", "value": "true"} in data["properties"]
    assert data["indexes"] == [
        {"fieldName": "v", "indexName": "v", "metricType": "L2"},
        {"fieldName": "w", "indexName": "w", "metricType": "IP"},
    ]
    assert [f["name"] for f in data["fields"]] == ["pk", "v", "w", "big", "s"]
    assert data["consistencyLevel"] == "Bounded" and data["partitionsNum"] == 1
    rest("collections/load", {"collectionName": "t"})
    assert rest("collections/describe", {"collectionName": "t"})["data"]["load"] == "LoadStateLoaded"


def test_get_load_state_with_partition_names(rest):
    _setup(rest)
    rest("collections/release", {"collectionName": "t"})
    assert rest("partitions/create", {"collectionName": "t", "partitionName": "p1"})["code"] == 0
    assert rest("partitions/load", {"collectionName": "t", "partitionNames": ["p1"]})["code"] == 0
    p1 = rest("collections/get_load_state", {"collectionName": "t", "partitionNames": ["p1"]})
    assert p1["data"] == {"loadState": "LoadStateLoaded", "loadProgress": 100} and p1["message"] == ""
    default = rest("collections/get_load_state", {"collectionName": "t", "partitionNames": ["_default"]})
    assert default["data"] == {"loadState": "LoadStateNotLoad"}
    missing = rest("collections/get_load_state", {"collectionName": "t", "partitionNames": ["nope"]})
    assert missing["code"] == 200


def test_load_state_tells_the_truth_while_loading(rest, engine):
    _setup(rest, rows=4)
    rest("collections/release", {"collectionName": "t"})
    for i in range(3):  # several sealed segments: progress moves in steps
        rows = [{"pk": 100 + 10 * i + j, "v": [j, 1], "w": [1, j], "big": j, "s": "x"} for j in range(10)]
        rest("entities/insert", {"collectionName": "t", "data": rows})
        rest("collections/flush", {"collectionName": "t"})
    engine.load_collection("default", "t")  # returns at once; the load runs in the background
    seen: list[dict] = []
    for _ in range(100_000):  # bounded: a failed load must fail the test, not hang it
        reply = rest("collections/get_load_state", {"collectionName": "t"})
        assert reply["code"] == 0 and reply["message"] == "", reply
        seen.append(reply["data"])
        if reply["data"]["loadState"] == "LoadStateLoaded":
            break
    for state in seen[:-1]:
        assert state["loadState"] == "LoadStateLoading" and 0 <= state["loadProgress"] < 100, seen
    assert seen[-1]["loadProgress"] == 100
    progress = [s["loadProgress"] for s in seen]
    assert progress == sorted(progress)


def test_request_timeout(rest):
    reply = rest.raw("collections/list", {}, headers={"Request-Timeout": "0"})
    assert reply.status_code == 408 and reply.json() == {"code": 10001, "message": "request timeout"}
    unreadable = rest.raw("collections/list", {}, headers={"Request-Timeout": "soon"})
    assert unreadable.status_code == 200 and unreadable.json()["code"] == 1100


def test_openapi_bodies_are_the_enforced_ones(rest):
    document = rest.client.get("/v2/vectordb/openapi.json").json()
    insert = document["paths"]["/v2/vectordb/entities/insert"]["post"]
    schema = insert["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["collectionName", "data"]
    assert schema["properties"]["collectionName"] == {"type": "string"}
    for path, item in document["paths"].items():
        body = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["type"] == "object" and "dbName" in body["properties"], path
        headers = {p["name"] for p in item["post"]["parameters"]}
        assert {"DB-Name", "Request-Timeout", "Accept-Type-Allow-Int64"} <= headers
    json.dumps(document)  # serialisable as served
