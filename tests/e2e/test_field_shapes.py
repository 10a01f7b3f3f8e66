"""Field shapes of Milvus 2.6 through the real pymilvus client: nullable vector fields of every
vector type, collections without a vector field, and the field-count limits."""

from __future__ import annotations

import uuid

import httpx
import numpy as np
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from tests.e2e.conftest import ROOT_TOKEN

DIM = 8

# (type, index, metric, a row's value) per vector type.
VECTOR_KINDS = [
    (DataType.FLOAT_VECTOR, "HNSW", "L2", lambda i: [float(i)] * DIM),
    (DataType.FLOAT16_VECTOR, "FLAT", "L2", lambda i: np.full(DIM, i, dtype=np.float16)),
    (
        DataType.BFLOAT16_VECTOR,
        "FLAT",
        "L2",
        lambda i: (np.full(DIM, i, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes(),
    ),
    (DataType.INT8_VECTOR, "HNSW", "L2", lambda i: np.full(DIM, i, dtype=np.int8)),
    (DataType.BINARY_VECTOR, "BIN_FLAT", "HAMMING", lambda i: bytes([i] * (DIM // 8))),
    (DataType.SPARSE_FLOAT_VECTOR, "SPARSE_INVERTED_INDEX", "IP", lambda i: {i: 1.0, 100: 0.5}),
]


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(("dtype", "index_type", "metric", "value"), VECTOR_KINDS, ids=lambda k: str(k))
def test_nullable_vectors_are_stored_returned_and_never_searched(
    client: MilvusClient, dtype: DataType, index_type: str, metric: str, value
) -> None:
    name = _name("nullvec")
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    if dtype is DataType.SPARSE_FLOAT_VECTOR:
        schema.add_field("v", dtype, nullable=True)
    else:
        schema.add_field("v", dtype, dim=DIM, nullable=True)
    index_params = client.prepare_index_params()
    index_params.add_index("v", index_type=index_type, metric_type=metric)
    client.create_collection(name, schema=schema, index_params=index_params)
    try:
        rows = [{"id": i, "v": None if i % 2 else value(i)} for i in range(12)]
        client.insert(name, rows[:6])
        client.flush(name)
        client.insert(name, rows[6:])  # sealed and growing rows both
        got = {r["id"]: r for r in client.get(name, ids=[1, 2], output_fields=["v"])}
        assert got[1]["v"] is None and got[2]["v"] is not None
        hits = client.search(name, [value(2)], anns_field="v", limit=12, output_fields=["id"])
        found = {h["id"] for h in hits[0]}
        assert found and all(i % 2 == 0 for i in found)
        assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 12
    finally:
        client.drop_collection(name)


def test_collection_without_vectors_reads_and_deletes_but_cannot_search(client: MilvusClient) -> None:
    name = _name("novec")
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=16)
    client.create_collection(name, schema=schema)
    try:
        client.insert(name, [{"id": i, "title": f"t{i}"} for i in range(5)])
        client.load_collection(name)
        assert [r["title"] for r in client.get(name, ids=[3])] == ["t3"]
        assert sorted(r["id"] for r in client.query(name, filter="id > 2")) == [3, 4]
        client.delete(name, ids=[4])
        client.flush(name)
        assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 4
        with pytest.raises(MilvusException) as refused:
            client.search(name, [[0.0] * 4], limit=3)
        assert refused.value.code == 1100
        assert "anns_field not found in schema" in refused.value.message
    finally:
        client.drop_collection(name)


def test_field_limits(client: MilvusClient) -> None:
    wide = MilvusClient.create_schema()
    wide.add_field("id", DataType.INT64, is_primary=True)
    for i in range(10):
        wide.add_field(f"v{i}", DataType.FLOAT_VECTOR, dim=4)
    for i in range(245):
        wide.add_field(f"f{i}", DataType.INT8)
    name = _name("wide")
    client.create_collection(name, schema=wide)  # 256 fields, 10 of them vectors: allowed
    client.drop_collection(name)
    wide.add_field("one_more", DataType.INT8)
    with pytest.raises(MilvusException, match="maximum field's number should be limited to 256"):
        client.create_collection(name, schema=wide)
    vectors = MilvusClient.create_schema()
    vectors.add_field("id", DataType.INT64, is_primary=True)
    for i in range(11):
        vectors.add_field(f"v{i}", DataType.FLOAT_VECTOR, dim=4)
    with pytest.raises(MilvusException, match="maximum vector field's number should be limited to 10"):
        client.create_collection(name, schema=vectors)


def test_nullable_vectors_and_vectorless_collections_over_rest(client: MilvusClient, server_uri: str) -> None:
    headers = {"Authorization": f"Bearer {ROOT_TOKEN}"}

    def rest(path: str, body: dict) -> dict:
        return httpx.post(f"{server_uri}/v2/vectordb/{path}", json=body, headers=headers).json()

    name = _name("restnull")
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=4, nullable=True)
    index_params = client.prepare_index_params()
    index_params.add_index("v", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index_params)
    plain = _name("restplain")
    plain_schema = MilvusClient.create_schema()
    plain_schema.add_field("id", DataType.INT64, is_primary=True)
    plain_schema.add_field("t", DataType.VARCHAR, max_length=8)
    client.create_collection(plain, schema=plain_schema)
    try:
        rows = [{"id": 0, "v": [0.0] * 4}, {"id": 1, "v": None}, {"id": 2, "v": [2.0] * 4}]
        assert rest("entities/insert", {"collectionName": name, "data": rows})["code"] == 0
        hits = rest("entities/search", {"collectionName": name, "data": [[0.0] * 4], "limit": 5})
        assert sorted(h["id"] for h in hits["data"]) == [0, 2]
        got = rest("entities/get", {"collectionName": name, "id": [1], "outputFields": ["v"]})
        assert got["data"] == [{"id": 1, "v": None}]
        assert rest("entities/insert", {"collectionName": plain, "data": [{"id": 1, "t": "x"}]})["code"] == 0
        assert rest("collections/load", {"collectionName": plain})["code"] == 0
        queried = rest("entities/query", {"collectionName": plain, "filter": "id > 0", "outputFields": ["t"]})
        assert queried["data"] == [{"id": 1, "t": "x"}]
    finally:
        client.drop_collection(name)
        client.drop_collection(plain)
