"""Full-text search over REST v2: schema functions and analyzer params, text search bodies,
text match filters, function rankers, and common/run_analyzer."""

from __future__ import annotations

import math

SCHEMA = {
    "autoID": False,
    "fields": [
        {"fieldName": "id", "dataType": "Int64", "isPrimary": True},
        {
            "fieldName": "text",
            "dataType": "VarChar",
            "elementTypeParams": {
                "max_length": 500,
                "enable_analyzer": True,
                "enable_match": True,
                "analyzer_params": {"type": "english"},
            },
        },
        {"fieldName": "year", "dataType": "Int64"},
        {"fieldName": "sparse", "dataType": "SparseFloatVector"},
    ],
    "functions": [
        {
            "name": "bm25",
            "type": "BM25",
            "inputFieldNames": ["text"],
            "outputFieldNames": ["sparse"],
            "params": {},
        }
    ],
}
TEXTS = ["Running dogs chase cats", "A cat sleeps", "Dogs and more dogs run", "Quiet garden"]


def _setup(rest) -> None:
    index = [
        {
            "fieldName": "sparse",
            "indexType": "SPARSE_INVERTED_INDEX",
            "metricType": "BM25",
            "params": {"bm25_k1": 1.2},
        }
    ]
    created = rest("collections/create", {"collectionName": "t", "schema": SCHEMA, "indexParams": index})
    assert created["code"] == 0, created
    rows = [{"id": i, "text": t, "year": 2000 + i} for i, t in enumerate(TEXTS)]
    assert rest("entities/insert", {"collectionName": "t", "data": rows})["data"]["insertCount"] == 4


def test_describe_lists_the_function_and_analyzer_params(rest):
    _setup(rest)
    described = rest("collections/describe", {"collectionName": "t"})["data"]
    assert [
        (f["name"], f["type"], f["inputFieldNames"], f["outputFieldNames"]) for f in described["functions"]
    ] == [("bm25", "BM25", ["text"], ["sparse"])]
    fields = {f["name"]: f for f in described["fields"]}
    assert fields["sparse"]["isFunctionOutput"] is True
    params = {p["key"]: p["value"] for p in fields["text"]["params"]}
    assert params["enable_analyzer"] == "true" and '"english"' in params["analyzer_params"]


def test_text_search_filters_and_text_match(rest):
    _setup(rest)
    reply = rest(
        "entities/search",
        {
            "collectionName": "t",
            "data": ["dog runs"],
            "annsField": "sparse",
            "limit": 3,
            "outputFields": ["text"],
        },
    )
    assert reply["code"] == 0, reply
    hits = reply["data"]
    assert [h["id"] for h in hits] == [2, 0]  # "dogs ... dogs run" outscores "running dogs"
    assert hits[0]["distance"] > hits[1]["distance"] > 0
    matched = rest(
        "entities/query", {"collectionName": "t", "filter": "TEXT_MATCH(text, 'cat')", "outputFields": ["id"]}
    )
    assert sorted(r["id"] for r in matched["data"]) == [0, 1]
    phrase = rest(
        "entities/query",
        {"collectionName": "t", "filter": "PHRASE_MATCH(text, 'chase cats')", "outputFields": ["id"]},
    )
    assert [r["id"] for r in phrase["data"]] == [0]


def test_decay_function_score(rest):
    _setup(rest)
    plain = rest(
        "entities/search", {"collectionName": "t", "data": ["dog"], "annsField": "sparse", "limit": 5}
    )["data"]
    score = {
        "functions": [
            {
                "name": "recent",
                "type": "Rerank",
                "inputFieldNames": ["year"],
                "params": {
                    "reranker": "decay",
                    "function": "linear",
                    "origin": 2003,
                    "scale": 2,
                    "decay": 0.5,
                },
            }
        ]
    }
    decayed = rest(
        "entities/search",
        {"collectionName": "t", "data": ["dog"], "annsField": "sparse", "limit": 5, "functionScore": score},
    )["data"]
    s = 2 / (1 - 0.5)
    expected = {h["id"]: h["distance"] * max(0.0, (s - abs(2000 + h["id"] - 2003)) / s) for h in plain}
    assert [h["id"] for h in decayed] == sorted(expected, key=lambda i: -expected[i])
    assert all(math.isclose(h["distance"], expected[h["id"]], rel_tol=1e-5) for h in decayed)


def test_run_analyzer_route(rest):
    reply = rest(
        "common/run_analyzer",
        {"text": ["The Running dogs"], "analyzerParams": {"type": "english"}, "withDetail": True},
    )
    assert reply["code"] == 0, reply
    tokens = reply["data"][0]["tokens"]
    assert [(t["token"], t["startOffset"], t["position"]) for t in tokens] == [("run", 4, 1), ("dog", 12, 2)]
    bad = rest("common/run_analyzer", {"text": "x", "analyzerParams": {"tokenizer": "nope"}})
    assert bad["code"] == 1100 and "unsupported tokenizer: nope" in bad["message"]
