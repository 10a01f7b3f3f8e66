"""Entities endpoints: insert, upsert, delete, query, get, search, hybrid search."""

from __future__ import annotations

SCHEMA = {
    "autoID": False,
    "enableDynamicField": True,
    "fields": [
        {"fieldName": "pk", "dataType": "Int64", "isPrimary": True},
        {"fieldName": "dense", "dataType": "FloatVector", "elementTypeParams": {"dim": 2}},
        {"fieldName": "other", "dataType": "FloatVector", "elementTypeParams": {"dim": 2}},
        {"fieldName": "doc", "dataType": "JSON"},
        {"fieldName": "n", "dataType": "Int32"},
    ],
}
INDEXES = [
    {"fieldName": "dense", "metricType": "L2", "indexType": "FLAT"},
    {"fieldName": "other", "metricType": "IP", "indexType": "HNSW", "params": {"M": 8, "efConstruction": 32}},
]


def _setup(rest, rows=10):
    assert (
        rest("collections/create", {"collectionName": "e", "schema": SCHEMA, "indexParams": INDEXES})["code"]
        == 0
    )
    data = [
        {"pk": i, "dense": [i, 0], "other": [1, i], "doc": {"k": i}, "n": i * 10, "tag": f"t{i % 2}"}
        for i in range(rows)
    ]
    assert rest("entities/insert", {"collectionName": "e", "data": data})["data"]["insertIds"] == list(
        range(rows)
    )


def test_query_get_and_count(rest):
    _setup(rest)
    rows = rest(
        "entities/query", {"collectionName": "e", "filter": "n >= 70", "outputFields": ["pk", "doc", "tag"]}
    )
    assert rows["code"] == 0 and rows["cost"] == 0
    assert sorted(rows["data"], key=lambda r: r["pk"]) == [
        {"pk": i, "doc": {"k": i}, "tag": f"t{i % 2}"} for i in (7, 8, 9)
    ]
    count = rest("entities/query", {"collectionName": "e", "filter": "", "outputFields": ["count(*)"]})
    assert count["data"] == [{"count(*)": 10}]
    got = rest("entities/get", {"collectionName": "e", "id": [2, 3], "outputFields": ["pk", "dense"]})
    assert sorted(got["data"], key=lambda r: r["pk"]) == [
        {"pk": 2, "dense": [2.0, 0.0]},
        {"pk": 3, "dense": [3.0, 0.0]},
    ]
    one = rest("entities/get", {"collectionName": "e", "id": 4, "outputFields": ["n"]})
    assert [r["n"] for r in one["data"]] == [40]


def test_get_of_absent_ids_on_an_empty_collection(rest):
    create = {"collectionName": "e", "schema": SCHEMA, "indexParams": INDEXES}
    assert rest("collections/create", create)["code"] == 0
    # An empty result's vector column may carry no type: still an empty list, not an error.
    got = rest("entities/get", {"collectionName": "e", "id": [1], "outputFields": ["pk", "dense"]})
    assert got == {"code": 0, "cost": 0, "data": []}


def test_upsert_and_delete(rest):
    _setup(rest)
    reply = rest(
        "entities/upsert",
        {"collectionName": "e", "data": [{"pk": 1, "dense": [0, 0], "other": [0, 0], "doc": {}, "n": -1}]},
    )
    assert reply["data"] == {"upsertCount": 1, "upsertIds": [1]}
    assert (
        rest("entities/get", {"collectionName": "e", "id": [1], "outputFields": ["n"]})["data"][0]["n"] == -1
    )
    deleted = rest("entities/delete", {"collectionName": "e", "filter": "pk in [1, 2]"})
    assert deleted["code"] == 0 and deleted["data"]["deleteCount"] == 2
    left = rest("entities/query", {"collectionName": "e", "filter": "pk < 3", "outputFields": ["pk"]})["data"]
    assert sorted(r["pk"] for r in left) == [0]
    assert rest("entities/delete", {"collectionName": "e"})["code"] == 1802


def test_search_needs_anns_field_with_two_vector_fields(rest):
    _setup(rest)
    ambiguous = rest("entities/search", {"collectionName": "e", "data": [[1, 0]], "limit": 2})
    assert ambiguous["code"] == 1801 and "multiple vector fields" in ambiguous["message"]
    hits = rest(
        "entities/search",
        {
            "collectionName": "e",
            "data": [[3, 0], [8, 0]],
            "annsField": "dense",
            "limit": 2,
            "filter": "n != 30",
        },
    )["data"]
    # nq=2: hits flattened in query order
    keys = [h["pk"] for h in hits]
    assert {keys[0], keys[1]} == {2, 4} and keys[2] == 8 and keys[3] in (7, 9)
    assert [h["distance"] for h in hits] == [1.0, 1.0, 0.0, 1.0]  # L2 is the squared distance
    assert all(set(h) == {"pk", "distance"} for h in hits)
    # limit is the proxy's topk: 0 is refused as gRPC refuses it (issue 14)
    zero_limit = {"collectionName": "e", "data": [[1, 0]], "annsField": "dense", "limit": 0}
    zero = rest("entities/search", zero_limit)
    assert zero["code"] == 1100 and "topk [0] is invalid" in zero["message"]


def test_hybrid_search(rest):
    _setup(rest)
    body = {
        "collectionName": "e",
        "search": [
            {"data": [[9, 0]], "annsField": "dense", "limit": 3},
            {"data": [[0, 1]], "annsField": "other", "limit": 3, "params": {"ef": 16}},
        ],
        "rerank": {"strategy": "rrf", "params": {"k": 60}},
        "limit": 2,
        "outputFields": ["n"],
    }
    hits = rest("entities/hybrid_search", body)
    assert hits["code"] == 0 and len(hits["data"]) == 2, hits
    assert hits["data"][0]["pk"] == 9 and hits["data"][0]["n"] == 90
    assert rest("entities/advanced_search", body)["data"] == hits["data"]


def test_insert_errors(rest):
    _setup(rest, rows=1)
    wrong_dim = rest(
        "entities/insert",
        {"collectionName": "e", "data": [{"pk": 5, "dense": [1, 2, 3], "other": [1, 1], "doc": {}, "n": 1}]},
    )
    assert wrong_dim["code"] != 0
    ragged = rest(
        "entities/insert",
        {"collectionName": "e", "data": [{"pk": 5, "dense": [1, 2]}, {"pk": 6, "dense": [1]}]},
    )
    assert ragged["code"] == 1804
    assert rest("entities/insert", {"collectionName": "nope", "data": [{"pk": 1}]})["code"] == 100
    bad_level = rest("entities/query", {"collectionName": "e", "filter": "pk > 0", "consistencyLevel": "Now"})
    assert bad_level["code"] == 1100 and "consistencyLevel can only be" in bad_level["message"]
