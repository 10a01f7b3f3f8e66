"""Hostile input against the real server (issue 14): never an internal error, never a bad row,
nothing listed that one may not see. gRPC through pymilvus (and raw stubs for bytes pymilvus
would not send), REST through real HTTP."""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from pymilvus import DataType, MilvusClient, MilvusException
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc

from tests.e2e.conftest import ROOT_TOKEN

DIM = 4
ROWS = 50
PASSWORD = "secret-1"


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def hostile(client: MilvusClient) -> Iterator[str]:
    name = _unique("hostile")
    schema = client.create_schema(enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("meta", DataType.JSON)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
    client.create_collection(name, schema=schema, index_params=index)
    rows = [{"id": i, "vector": [float(i), 1.0, 2.0, 3.0], "meta": {"k": i}} for i in range(ROWS)]
    client.insert(name, rows)
    yield name
    client.drop_collection(name)


def _count(client: MilvusClient, name: str) -> int:
    return int(client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"])


def _refused(call: Any, code: int = 1100, text: str = "") -> str:
    with pytest.raises(MilvusException) as raised:
        call()
    assert raised.value.code == code, raised.value.message
    assert text in raised.value.message
    assert "Error" not in raised.value.message.split(":")[0]  # no Python exception name
    return str(raised.value.message)


def _rest(server_uri: str, path: str, body: Any, token: str = ROOT_TOKEN) -> dict[str, Any]:
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    reply = httpx.post(
        f"{server_uri}/v2/vectordb/{path}",
        content=content,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert reply.status_code in (200, 401, 403), reply.text
    envelope = reply.json()
    assert isinstance(envelope.get("code"), int), envelope
    return envelope  # type: ignore[no-any-return]


# -- item 2: filters and params parsed without the interpreter's recursion ----------------------


def test_long_or_chain_filters_rows(client: MilvusClient, hostile: str) -> None:
    text = " or ".join(f"id == {i}" for i in range(8000))
    assert len(client.query(hostile, filter=text, output_fields=["id"], limit=100)) == ROWS


@pytest.mark.parametrize(
    "text",
    [
        "not " * 5000 + "(id > 0)",
        "-" * 5000 + "id > 0",
        "id + " * 3000 + "id > 0",
        "(" * 3000 + "id > 0" + ")" * 3000 + " and " + "not " * 300 + "(id > 0)",
    ],
    ids=["not", "minus", "plus", "parens-and-not"],
)
def test_deep_filters_are_refused_with_1100(client: MilvusClient, hostile: str, text: str) -> None:
    _refused(lambda: client.query(hostile, filter=text, limit=10), text="nesting depth exceeds the limit")


def test_filters_past_the_length_bound_are_refused_with_1100(
    client: MilvusClient, hostile: str, server_uri: str
) -> None:
    before = _count(client, hostile)
    text = "id in [" + "1," * (2**21 + 8) + "1]"  # past 4 Mi characters
    message = _refused(lambda: client.query(hostile, filter=text, limit=10), text="exceeds the limit of")
    assert f"expression length {len(text)} exceeds the limit of 4194304 characters" in message
    assert len(message) < 300  # the filter is quoted, not echoed whole
    reply = _rest(server_uri, "entities/delete", {"collectionName": hostile, "filter": text})
    assert reply["code"] == 1100 and "exceeds the limit of 4194304 characters" in reply["message"]
    assert _count(client, hostile) == before


def test_long_json_path_is_answered(client: MilvusClient, hostile: str) -> None:
    text = "meta" + '["k"]' * 3000 + " == 1"
    assert client.query(hostile, filter=text, output_fields=["id"], limit=10) == []


def _stub(server_uri: str) -> milvus_pb2_grpc.MilvusServiceStub:
    channel = grpc.insecure_channel(server_uri.removeprefix("http://"))
    return milvus_pb2_grpc.MilvusServiceStub(channel)


def _metadata() -> list[tuple[str, str]]:
    return [("authorization", base64.b64encode(ROOT_TOKEN.encode()).decode())]


def _raw_search(server_uri: str, name: str, vector: bytes, kind: int, params: str = "") -> common_pb2.Status:
    group = common_pb2.PlaceholderGroup(
        placeholders=[common_pb2.PlaceholderValue(tag="$0", type=kind, values=[vector])]
    )
    request = milvus_pb2.SearchRequest(
        collection_name=name,
        placeholder_group=group.SerializeToString(),
        nq=1,
        search_params=[
            common_pb2.KeyValuePair(key="topk", value="3"),
            common_pb2.KeyValuePair(key="params", value=params),
        ],
    )
    return _stub(server_uri).Search(request, metadata=_metadata(), timeout=30).status


def test_deep_search_params_are_refused(server_uri: str, hostile: str) -> None:
    # pymilvus cannot even encode these params: sent as the raw text
    params = '{"nest":' * 5000 + "1" + "}" * 5000
    vector = np.ones(DIM, dtype=np.float32).tobytes()
    status = _raw_search(server_uri, hostile, vector, common_pb2.PlaceholderType.FloatVector, params)
    assert status.code == 1100 and "is not valid JSON" in status.reason


def test_odd_byte_lengths_of_query_vectors_are_refused(server_uri: str, hostile: str) -> None:
    status = _raw_search(server_uri, hostile, b"\x00" * 13, common_pb2.PlaceholderType.FloatVector)
    assert status.code == 1100 and "not a multiple of 4" in status.reason


# -- item 4: NaN / inf refused, nothing written ---------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_vectors_are_refused(client: MilvusClient, hostile: str, bad: float) -> None:
    before = _count(client, hostile)
    row = {"id": 10_000, "vector": [1.0, bad, 0.0, 0.0], "meta": {}}
    _refused(lambda: client.insert(hostile, [row]), text="is not a number or infinity")
    _refused(lambda: client.upsert(hostile, [{**row, "id": 1}]), text="is not a number or infinity")
    _refused(
        lambda: client.search(hostile, [[bad, 0.0, 0.0, 0.0]], limit=3), text="is not a number or infinity"
    )
    assert _count(client, hostile) == before
    assert client.get(hostile, ids=[1], output_fields=["vector"])[0]["vector"] == [1.0, 1.0, 2.0, 3.0]


def test_json_field_literal_nan_is_refused(client: MilvusClient, hostile: str, server_uri: str) -> None:
    from pymilvus.grpc_gen import schema_pb2

    before = _count(client, hostile)
    ids = schema_pb2.FieldData(
        field_name="id",
        type=DataType.INT64,
        scalars=schema_pb2.ScalarField(long_data=schema_pb2.LongArray(data=[20_000])),
    )
    vector = schema_pb2.FieldData(
        field_name="vector",
        type=DataType.FLOAT_VECTOR,
        vectors=schema_pb2.VectorField(dim=DIM, float_vector=schema_pb2.FloatArray(data=[0.0] * DIM)),
    )
    for text in (b'{"a": NaN}', b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
        meta = schema_pb2.FieldData(
            field_name="meta",
            type=DataType.JSON,
            scalars=schema_pb2.ScalarField(json_data=schema_pb2.JSONArray(data=[text])),
        )
        request = milvus_pb2.InsertRequest(
            collection_name=hostile, fields_data=[ids, vector, meta], num_rows=1
        )
        status = _stub(server_uri).Insert(request, metadata=_metadata(), timeout=30).status
        assert status.code == 1100, status.reason
    assert _count(client, hostile) == before


def test_rest_fractional_int64_key_is_refused(client: MilvusClient, hostile: str, server_uri: str) -> None:
    before = _count(client, hostile)
    reply = _rest(
        server_uri,
        "entities/insert",
        {"collectionName": hostile, "data": [{"id": 1.5, "vector": [0.0] * DIM, "meta": {}}]},
    )
    assert reply["code"] == 1804 and "1.5" in reply["message"]
    assert _count(client, hostile) == before


def test_rest_nan_literals_are_not_json(client: MilvusClient, hostile: str, server_uri: str) -> None:
    before = _count(client, hostile)
    row = {"id": 30000, "vector": "VECTOR", "meta": "META"}
    insert = json.dumps({"collectionName": hostile, "data": [row]})
    search = json.dumps({"collectionName": hostile, "data": "DATA", "limit": 3})
    for path, body in (
        ("entities/insert", insert.replace('"VECTOR"', "[NaN, 0, 0, 0]").replace('"META"', "{}")),
        ("entities/insert", insert.replace('"VECTOR"', "[0, 0, 0, 0]").replace('"META"', '{"a": NaN}')),
        ("entities/search", search.replace('"DATA"', "[[Infinity, 0, 0, 0]]")),
    ):
        assert _rest(server_uri, path, body)["code"] == 1801
    assert _count(client, hostile) == before


# -- item 3: every REST reply is the envelope -----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        None,  # a 5,000-deep JSON field value, below
    ],
    ids=["arrays", "objects", "json-field"],
)
def test_rest_deep_bodies_get_the_envelope(
    client: MilvusClient, hostile: str, server_uri: str, body: str | None
) -> None:
    before = _count(client, hostile)
    if body is None:
        deep = "[" * 5000 + "]" * 5000
        body = (
            f'{{"collectionName": "{hostile}", "data": [{{"id": 1, "vector": [0,0,0,0], "meta": {deep}}}]}}'
        )
    reply = _rest(server_uri, "entities/insert", body)
    assert reply["code"] == 1801 and "Error" not in reply["message"]
    assert _count(client, hostile) == before


def test_rest_deep_filter_is_refused_in_the_envelope(hostile: str, server_uri: str) -> None:
    reply = _rest(
        server_uri, "entities/query", {"collectionName": hostile, "filter": "not " * 5000 + "(id > 0)"}
    )
    assert reply["code"] == 1100 and "nesting depth" in reply["message"]
    many = " or ".join(f"id == {i}" for i in range(8000))
    assert (
        len(
            _rest(server_uri, "entities/query", {"collectionName": hostile, "filter": many, "limit": 100})[
                "data"
            ]
        )
        == ROWS
    )


# -- item 6: Milvus's bounds on limits and params --------------------------------------------------


def test_query_limit_must_be_positive(client: MilvusClient, hostile: str) -> None:
    _refused(
        lambda: client.query(hostile, filter="id >= 0", limit=-1),
        text="limit [-1] is invalid, should be greater than 0",
    )


def test_negative_ef_is_refused(client: MilvusClient, hostile: str) -> None:
    _refused(
        lambda: client.search(hostile, [[1.0] * DIM], limit=3, search_params={"params": {"ef": -5}}),
        text="param 'ef' (-5) should be in range",
    )


def test_rest_search_limit_zero_is_refused(hostile: str, server_uri: str) -> None:
    reply = _rest(
        server_uri, "entities/search", {"collectionName": hostile, "data": [[1.0] * DIM], "limit": 0}
    )
    assert reply["code"] == 1100 and "topk [0] is invalid" in reply["message"]


# -- item 5: listings show only what the caller holds a privilege on -------------------------------


def test_listings_follow_privileges(client: MilvusClient, server_uri: str, hostile: str) -> None:
    user, role, db = _unique("lister"), _unique("r"), _unique("db")
    mine = _unique("mine")
    client.create_collection(mine, dimension=DIM)
    client.create_database(db)
    client.create_user(user, PASSWORD)
    client.create_role(role)
    client.grant_role(user, role)
    token = f"{user}:{PASSWORD}"
    try:
        them = MilvusClient(uri=server_uri, token=token)
        assert them.list_collections() == [] and them.list_databases() == []
        assert _rest(server_uri, "collections/list", {}, token)["data"] == []
        client.grant_privilege(role, "Collection", "Search", mine)
        assert them.list_collections() == [mine]
        assert _rest(server_uri, "collections/list", {}, token)["data"] == [mine]
        assert them.list_databases() == ["default"]
        assert _rest(server_uri, "databases/list", {}, token)["data"] == ["default"]
        client.grant_privilege_v2(role, "DatabaseReadOnly", "*", db_name="default")
        assert {mine, hostile} <= set(them.list_collections())
        client.grant_privilege_v2(role, "Search", "*", db_name=db)
        assert set(them.list_databases()) == {"default", db}
        assert {"default", db} <= set(client.list_databases())
    finally:
        client.drop_user(user)
        client.drop_collection(mine)


# -- REST numbers that are not what the field holds: refused, never truncated ---------------------


@pytest.mark.parametrize(
    ("path", "body", "code", "text"),
    [
        ("entities/query", {"filter": "id >= 0", "limit": 1.5}, 1801, "into field limit of type integer"),
        ("entities/query", {"filter": "id >= 0", "offset": 0.5}, 1801, "into field offset of type integer"),
        ("entities/search", {"data": [[1.0] * DIM], "limit": 1.5}, 1801, "into field limit of type integer"),
        (
            "entities/hybrid_search",
            {"search": [{"data": [[1.0] * DIM], "annsField": "vector", "limit": 2.5}], "limit": 3},
            1801,
            "into field search[0].limit of type integer",
        ),
        ("entities/get", {"id": 1.5}, 1806, 'unable to cast "1.5" of type string to int64'),
        ("entities/get", {"id": [3, 1.5]}, 1806, 'unable to cast "1.5" of type string to int64'),
        ("entities/get", {"id": [True]}, 1806, 'unable to cast "true" of type string to int64'),
        ("entities/get", {"id": "1.5"}, 1806, 'unable to cast "1.5" of type string to int64'),
        ("entities/delete", {"filter": "id in [1.5]"}, 1100, "cannot cast value 1.5 to Int64"),
        (
            "entities/delete",
            {"filter": "id in {ids}", "exprParams": {"ids": [1.5]}},
            1100,
            "cannot cast value 1.5 to Int64",
        ),
        (
            "entities/query",
            {"filter": "id in {ids}", "exprParams": {"ids": [2.5]}},
            1100,
            "cannot cast value 2.5 to Int64",
        ),
    ],
)
def test_rest_fractional_limits_and_keys_are_refused(
    client: MilvusClient, hostile: str, server_uri: str, path: str, body: dict[str, Any], code: int, text: str
) -> None:
    before = _count(client, hostile)
    reply = _rest(server_uri, path, {"collectionName": hostile, **body})
    assert reply["code"] == code and text in reply["message"], reply
    if code == 1806:
        assert reply["message"].startswith(
            "please check the primary key and its' type can only in [int, string]"
        )
    assert _count(client, hostile) == before


def test_rest_get_reads_whole_keys_as_milvus_casts_them(hostile: str, server_uri: str) -> None:
    def got(ids: Any) -> list[int]:
        reply = _rest(
            server_uri, "entities/get", {"collectionName": hostile, "id": ids, "outputFields": ["id"]}
        )
        assert reply["code"] == 0, reply
        return sorted(row["id"] for row in reply["data"])

    assert got(2.0) == [2]  # an integral number is that key, as Go's cast reads "2.0"
    assert got(["3", 4]) == [3, 4]  # an Int64 key as a string: what int64-as-string clients send


def test_rest_get_of_a_varchar_key_takes_only_strings(client: MilvusClient, server_uri: str) -> None:
    name = _unique("varchar_keys")
    schema = client.create_schema()
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=16)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    try:
        client.insert(name, [{"key": k, "vector": [1.0] * DIM} for k in ("1", "a")])
        for ids in (1, [1.0], ["a", 2], [None]):
            reply = _rest(server_uri, "entities/get", {"collectionName": name, "id": ids})
            assert reply["code"] == 1806 and "the type of primary key key is VarChar" in reply["message"], (
                reply
            )
        reply = _rest(server_uri, "entities/get", {"collectionName": name, "id": ["1", "a"]})
        assert reply["code"] == 0 and sorted(row["key"] for row in reply["data"]) == ["1", "a"]
    finally:
        client.drop_collection(name)


def test_run_analyzer_reads_bytes_that_are_not_utf8_as_replacement_characters(server_uri: str) -> None:
    request = milvus_pb2.RunAnalyzerRequest(placeholder=[b"\x80abc def", b"ok"], analyzer_params="{}")
    reply = _stub(server_uri).RunAnalyzer(request, metadata=_metadata(), timeout=30)
    assert reply.status.code == 0, reply.status.reason
    assert [t.token for t in reply.results[1].tokens] == ["ok"]
    assert "def" in [t.token for t in reply.results[0].tokens]


def test_search_texts_that_are_not_utf8_are_read_as_replacement_characters(
    server_uri: str, hostile: str
) -> None:
    kind = common_pb2.PlaceholderType.VarChar
    odd = _raw_search(server_uri, hostile, b"query \x80 words", kind)  # was 65535 UnicodeDecodeError
    plain = _raw_search(server_uri, hostile, "query \ufffd words".encode(), kind)
    assert odd.code == plain.code != 65535
    assert odd.reason == plain.reason
