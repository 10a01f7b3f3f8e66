"""Keys and writes of Milvus 2.6 through the real clients: generated VARCHAR keys, upserts with
``partial_update``, and explicit keys into an auto_id collection (``allow_insert_auto_id``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from tests.e2e.conftest import ROOT_TOKEN

DIM = 4


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _rest(server_uri: str, path: str, body: dict) -> dict:
    response = httpx.post(
        f"{server_uri}/v2/vectordb/{path}", json=body, headers={"Authorization": f"Bearer {ROOT_TOKEN}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _indexed(client: MilvusClient, name: str, schema, field: str = "vec") -> None:
    index_params = client.prepare_index_params()
    index_params.add_index(field, index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index_params)


@pytest.fixture
def varchar_auto(client: MilvusClient) -> Iterator[str]:
    name = _name("vauto")
    schema = MilvusClient.create_schema(auto_id=True)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, auto_id=True, max_length=64)
    schema.add_field("n", DataType.INT64)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    _indexed(client, name, schema)
    yield name
    client.drop_collection(name)


def test_varchar_primary_key_with_auto_id_generates_string_ids(
    client: MilvusClient, varchar_auto: str
) -> None:
    result = client.insert(varchar_auto, [{"n": i, "vec": [float(i)] * DIM} for i in range(5)])
    ids = list(result["ids"])
    assert len(ids) == 5 and all(isinstance(i, str) and i.isdigit() for i in ids)
    assert len(set(ids)) == 5
    got = client.get(varchar_auto, ids=ids[:2], output_fields=["n"])
    assert sorted(r["n"] for r in got) == [0, 1]
    rows = client.query(varchar_auto, filter=f"pk == '{ids[3]}'", output_fields=["n"])
    assert [r["n"] for r in rows] == [3]
    described = client.describe_collection(varchar_auto)
    pk = next(f for f in described["fields"] if f["name"] == "pk")
    assert pk["auto_id"] is True and pk["type"] == DataType.VARCHAR


def test_varchar_auto_id_over_rest(client: MilvusClient, server_uri: str, varchar_auto: str) -> None:
    reply = _rest(
        server_uri,
        "entities/insert",
        {"collectionName": varchar_auto, "data": [{"n": 7, "vec": [1.0] * DIM}]},
    )
    assert reply["code"] == 0
    (new_id,) = reply["data"]["insertIds"]
    assert isinstance(new_id, str)
    assert client.get(varchar_auto, ids=[new_id], output_fields=["n"])[0]["n"] == 7


def test_explicit_keys_into_auto_id_need_the_property(client: MilvusClient) -> None:
    name = _name("allow")
    schema = MilvusClient.create_schema(auto_id=True)
    schema.add_field("id", DataType.INT64, is_primary=True, auto_id=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    _indexed(client, name, schema)
    try:
        with pytest.raises(MilvusException) as refused:
            client.insert(name, [{"id": 5, "vec": [0.5] * DIM}])
        assert refused.value.code == 1100
        assert (
            "can not assign primary field data when auto id enabled and allow_insert_auto_id is false id"
            in refused.value.message
        )
        client.alter_collection_properties(name, properties={"allow_insert_auto_id": "true"})
        assert list(client.insert(name, [{"id": 5, "vec": [0.5] * DIM}])["ids"]) == [5]
        generated = list(client.insert(name, [{"vec": [0.25] * DIM}])["ids"])
        assert generated != [5]
        assert client.get(name, ids=[5])[0]["id"] == 5
        client.drop_collection_properties(name, property_keys=["allow_insert_auto_id"])
        with pytest.raises(MilvusException):
            client.insert(name, [{"id": 6, "vec": [0.5] * DIM}])
    finally:
        client.drop_collection(name)


@pytest.fixture
def partial(client: MilvusClient) -> Iterator[str]:
    name = _name("partial")
    schema = MilvusClient.create_schema(enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=32)
    schema.add_field("price", DataType.DOUBLE)
    schema.add_field("note", DataType.VARCHAR, max_length=32, nullable=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    _indexed(client, name, schema)
    client.insert(
        name,
        [
            {"id": i, "title": f"t{i}", "price": float(i), "note": f"n{i}", "vec": [float(i)] * DIM, "k": i}
            for i in range(4)
        ],
    )
    yield name
    client.drop_collection(name)


@pytest.mark.parametrize("flush_first", [False, True])
def test_partial_update_keeps_the_fields_not_given(
    client: MilvusClient, partial: str, flush_first: bool
) -> None:
    if flush_first:
        client.flush(partial)
    result = client.upsert(partial, [{"id": 1, "price": 99.5}], partial_update=True)
    assert result["upsert_count"] == 1
    client.upsert(partial, [{"id": 2, "note": None}], partial_update=True)
    rows = {r["id"]: r for r in client.get(partial, ids=[1, 2, 3], output_fields=["*"])}
    assert rows[1]["price"] == 99.5 and rows[1]["title"] == "t1" and rows[1]["note"] == "n1"
    assert rows[1]["vec"] == [1.0] * DIM and rows[1]["k"] == 1
    assert rows[2]["note"] is None and rows[2]["price"] == 2.0 and rows[2]["title"] == "t2"
    assert rows[3]["price"] == 3.0
    assert client.query(partial, filter="", output_fields=["count(*)"])[0]["count(*)"] == 4
    hits = client.search(partial, [[1.0] * DIM], limit=1, output_fields=["price", "title"])
    assert hits[0][0]["entity"]["price"] == 99.5 and hits[0][0]["entity"]["title"] == "t1"


def test_partial_update_merges_dynamic_keys_and_inserts_new_rows(client: MilvusClient, partial: str) -> None:
    client.upsert(partial, [{"id": 0, "extra": "x"}], partial_update=True)
    row = client.get(partial, ids=[0], output_fields=["*"])[0]
    assert row["extra"] == "x" and row["k"] == 0 and row["title"] == "t0"
    client.upsert(
        partial, [{"id": 10, "title": "new", "price": 1.5, "vec": [0.0] * DIM}], partial_update=True
    )
    new = client.get(partial, ids=[10], output_fields=["*"])[0]
    assert new["title"] == "new" and new["note"] is None
    with pytest.raises(MilvusException) as missing:
        client.upsert(partial, [{"id": 11, "title": "no price"}], partial_update=True)
    assert missing.value.code == 1100


def test_partial_update_needs_a_loaded_collection(client: MilvusClient, partial: str) -> None:
    client.release_collection(partial)
    with pytest.raises(MilvusException) as refused:
        client.upsert(partial, [{"id": 1, "price": 5.0}], partial_update=True)
    assert refused.value.code == 101
    assert "collection not loaded" in refused.value.message


def test_partial_update_over_rest(client: MilvusClient, server_uri: str, partial: str) -> None:
    reply = _rest(
        server_uri,
        "entities/upsert",
        {"collectionName": partial, "data": [{"id": 3, "title": "rest"}], "partialUpdate": True},
    )
    assert reply["code"] == 0, reply
    row = client.get(partial, ids=[3], output_fields=["title", "price", "note"])[0]
    assert row["title"] == "rest" and row["price"] == 3.0 and row["note"] == "n3"
