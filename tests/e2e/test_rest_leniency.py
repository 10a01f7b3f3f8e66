"""REST v2 takes the request shapes Milvus takes, over real HTTP.

- No body, or ``null``, is the empty request (Go binds null to the zero struct): ``list``
  routes answer, routes with required keys answer 1802, never 1801.
- ``dbName`` may come in the query string (Milvus's own REST test client sends it there).
- ``null`` for any optional key means "not given": defaults apply, on every route.
- Numbers as strings where Milvus reads them from free-form maps: ``params`` of create,
  ``elementTypeParams``, index ``params``, search ``params``; typed fields stay strict (1801).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT_TOKEN

HEADERS = {"Authorization": f"Bearer {ROOT_TOKEN}", "Content-Type": "application/json"}


def post(server_uri: str, path: str, body: Any = None, *, raw: bytes | None = None, **params: str) -> dict:
    content = raw if raw is not None else json.dumps(body).encode()
    reply = httpx.post(f"{server_uri}/v2/vectordb/{path}", content=content, headers=HEADERS, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.fixture(scope="module")
def coll(server_uri: str) -> Iterator[str]:
    name = f"lenient_{uuid.uuid4().hex[:8]}"
    schema = {
        "fields": [
            {"fieldName": "id", "dataType": "Int64", "isPrimary": True},
            {"fieldName": "v", "dataType": "FloatVector", "elementTypeParams": {"dim": "4"}},
            {
                "fieldName": "s",
                "dataType": "VarChar",
                "elementTypeParams": {"max_length": "16"},
                "nullable": True,
            },
        ]
    }
    index = [
        {
            "fieldName": "v",
            "metricType": "L2",
            "indexType": "HNSW",
            "params": {"M": "8", "efConstruction": "64"},
        }
    ]
    created = post(
        server_uri,
        "collections/create",
        {
            "collectionName": name,
            "schema": schema,
            "indexParams": index,
            "params": {"shardsNum": "1", "ttlSeconds": "600"},
        },
    )
    assert created["code"] == 0, created
    rows = [{"id": i, "v": [float(i), 0.0, 0.0, 0.0], "s": None if i % 2 else "x"} for i in range(6)]
    assert post(server_uri, "entities/insert", {"collectionName": name, "data": rows})["code"] == 0
    yield name
    post(server_uri, "collections/drop", {"collectionName": name})


@pytest.mark.parametrize("raw", [b"", b"null", b"{}"])
@pytest.mark.parametrize(
    "path", ["collections/list", "databases/list", "users/list", "roles/list", "aliases/list"]
)
def test_no_body_is_the_empty_request(server_uri: str, path: str, raw: bytes) -> None:
    reply = post(server_uri, path, raw=raw)
    assert reply["code"] == 0, reply
    assert isinstance(reply["data"], list)


@pytest.mark.parametrize("raw", [b"", b"null"])
@pytest.mark.parametrize(
    "path", ["collections/describe", "entities/query", "partitions/list", "indexes/list"]
)
def test_no_body_misses_required_keys(server_uri: str, path: str, raw: bytes) -> None:
    reply = post(server_uri, path, raw=raw)
    assert reply["code"] == 1802
    assert "collectionName" in reply["message"]


def test_database_in_the_query_string(server_uri: str) -> None:
    db = f"qdb_{uuid.uuid4().hex[:6]}"
    assert post(server_uri, "databases/create", {"dbName": db})["code"] == 0
    try:
        assert (
            post(
                server_uri, "collections/create", {"dbName": db, "collectionName": "inside", "dimension": 4}
            )["code"]
            == 0
        )
        assert post(server_uri, "collections/list", raw=b"null", dbName=db)["data"] == ["inside"]
        assert "inside" not in post(server_uri, "collections/list", raw=b"null")["data"]
        assert post(server_uri, "collections/has", {"collectionName": "inside"}, dbName=db)["data"] == {
            "has": True
        }
    finally:
        post(server_uri, "collections/drop", {"dbName": db, "collectionName": "inside"})
        post(server_uri, "databases/drop", {"dbName": db})


NULL_OPTIONALS = [
    ("collections/describe", {"dbName": None}),
    ("collections/get_load_state", {"partitionNames": None}),
    ("collections/load", {"loadFields": None, "replicaNumber": None}),
    ("collections/get_stats", {"dbName": None}),
    (
        "entities/query",
        {
            "filter": "id >= 0",
            "outputFields": None,
            "partitionNames": None,
            "limit": None,
            "offset": None,
            "exprParams": None,
        },
    ),
    ("entities/get", {"id": [1], "outputFields": None, "partitionNames": None}),
    (
        "entities/search",
        {
            "data": [[0.0, 0.0, 0.0, 0.0]],
            "filter": None,
            "searchParams": None,
            "outputFields": None,
            "annsField": None,
            "limit": None,
        },
    ),
    (
        "entities/hybrid_search",
        {
            "search": [{"data": [[0.0, 0.0, 0.0, 0.0]], "annsField": "v", "filter": None, "params": None}],
            "rerank": None,
            "limit": 3,
        },
    ),
    ("partitions/list", {"dbName": None}),
    ("indexes/list", {"dbName": None}),
    ("aliases/list", {"dbName": None}),
]


@pytest.mark.parametrize(("path", "extra"), NULL_OPTIONALS, ids=[p for p, _ in NULL_OPTIONALS])
def test_null_optional_keys_take_the_defaults(
    server_uri: str, coll: str, path: str, extra: dict[str, Any]
) -> None:
    reply = post(server_uri, path, {"collectionName": coll, **extra})
    assert reply["code"] == 0, reply


def test_null_reads_return_what_defaults_return(server_uri: str, coll: str) -> None:
    with_nulls = post(
        server_uri,
        "entities/query",
        {"collectionName": coll, "filter": "id < 3", "outputFields": None, "limit": None},
    )
    plain = post(server_uri, "entities/query", {"collectionName": coll, "filter": "id < 3"})
    assert with_nulls["data"] == plain["data"]
    # A null inside a row is data: the nullable field is null.
    assert post(server_uri, "entities/get", {"collectionName": coll, "id": 1, "outputFields": ["s"]})[
        "data"
    ] == [{"id": 1, "s": None}]


def test_numbers_as_strings_in_free_form_maps(server_uri: str, coll: str) -> None:
    described = post(server_uri, "collections/describe", {"collectionName": coll})["data"]
    vector = next(f for f in described["fields"] if f["name"] == "v")
    assert {"key": "dim", "value": "4"} in vector["params"]
    hits = post(
        server_uri,
        "entities/search",
        {
            "collectionName": coll,
            "data": [[2.0, 0.0, 0.0, 0.0]],
            "annsField": "v",
            "limit": 2,
            "searchParams": {"params": {"ef": "32"}},
        },
    )
    assert hits["code"] == 0 and hits["data"][0]["id"] == 2
    # A typed field stays typed, as Go's decoder has it.
    strict = post(server_uri, "entities/query", {"collectionName": coll, "filter": "id >= 0", "limit": "10"})
    assert strict["code"] == 1801
    assert "limit" in strict["message"]
