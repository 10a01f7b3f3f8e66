"""Struct array fields (an ARRAY of STRUCT, Milvus 2.6's "Array of Structs") through the real
pymilvus client and REST v2: create / describe, insert / upsert, query / get outputs, the
HNSW + MAX_SIM index on a vector sub-field and embedding-list search (checked against a
brute-force MaxSim), Milvus's refusals, and the rows across flush, restart and compaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pymilvus import AnnSearchRequest, DataType, MilvusClient, MilvusException, RRFRanker
from pymilvus.client.embedding_list import EmbeddingList

from tests.e2e.conftest import ROOT_TOKEN, compact_and_wait, free_port, start_server, stop_server, wait_ready

DIM = 4
SUB_DIM = 3
HEADERS = {"Authorization": f"Bearer {ROOT_TOKEN}", "Content-Type": "application/json"}


def _schema(client: MilvusClient, capacity: int = 4) -> Any:
    schema = client.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    chunk = client.create_struct_field_schema()
    chunk.add_field("text", DataType.VARCHAR, max_length=16)
    chunk.add_field("page", DataType.INT32)
    chunk.add_field("emb", DataType.FLOAT_VECTOR, dim=SUB_DIM)
    schema.add_field(
        "chunks", DataType.ARRAY, element_type=DataType.STRUCT, struct_schema=chunk, max_capacity=capacity
    )
    return schema


def _index_params(client: MilvusClient, metric: str = "MAX_SIM_COSINE") -> Any:
    params = client.prepare_index_params()
    params.add_index("vec", index_type="FLAT", metric_type="L2")
    params.add_index(
        "chunks[emb]", index_type="HNSW", metric_type=metric, params={"M": 16, "efConstruction": 64}
    )
    return params


def _rows(ids: range, seed: int = 7) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "id": i,
            "title": f"doc{i}",
            "vec": [float(i)] * DIM,
            "chunks": [
                {"text": f"c{i}.{j}", "page": j, "emb": rng.uniform(-1, 1, SUB_DIM).round(3).tolist()}
                for j in range(i % 4)  # 0 to 3 elements: rows without elements too
            ],
        }
        for i in ids
    ]


def _max_sim(query: np.ndarray, rows: list[dict[str, Any]], metric: str) -> list[tuple[float, int]]:
    """Brute-force MaxSim, best first (what the server must return, exactly)."""

    def unit(m: np.ndarray) -> np.ndarray:
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    scored = []
    for row in rows:
        if not row["chunks"]:
            continue
        docs = np.array([c["emb"] for c in row["chunks"]], dtype=np.float64)
        q = query.astype(np.float64)
        if metric == "MAX_SIM_COSINE":
            score = (unit(q) @ unit(docs).T).max(axis=1).sum()
        elif metric == "MAX_SIM_IP":
            score = (q @ docs.T).max(axis=1).sum()
        else:
            score = -np.linalg.norm(q[:, None, :] - docs[None, :, :], axis=2).min(axis=1).sum()
        scored.append((float(score), int(row["id"])))
    return sorted(scored, reverse=True)


def _refusal(call: Any, code: int = 1100) -> str:
    with pytest.raises(MilvusException) as caught:
        call()
    assert caught.value.code == code, caught.value
    return str(caught.value.message)


@pytest.fixture
def books(client: MilvusClient) -> Iterator[str]:
    name = f"books_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, schema=_schema(client), index_params=_index_params(client))
    yield name
    client.drop_collection(name)


def test_describe_returns_the_struct_field_as_pymilvus_builds_it(client: MilvusClient, books: str) -> None:
    described = client.describe_collection(books)
    struct = next(f for f in described["fields"] if f["name"] == "chunks")
    assert struct["type"] == DataType.ARRAY and struct["element_type"] == DataType.STRUCT
    assert struct["params"]["max_capacity"] == 4
    subs = {s["name"]: s for s in struct["struct_fields"]}
    assert subs["text"]["type"] == DataType.VARCHAR and subs["text"]["params"]["max_length"] == 16
    assert subs["page"]["type"] == DataType.INT32
    assert subs["emb"]["type"] == DataType.FLOAT_VECTOR and subs["emb"]["params"]["dim"] == SUB_DIM
    ids = [f["field_id"] for f in described["fields"]] + [s["field_id"] for s in struct["struct_fields"]]
    assert len(set(ids)) == len(ids)  # sub-fields have ids of their own
    indexes = client.describe_index(books, "chunks[emb]")
    assert indexes["index_type"] == "HNSW" and indexes["metric_type"] == "MAX_SIM_COSINE"


def test_insert_query_get_and_sub_field_outputs(client: MilvusClient, books: str) -> None:
    rows = _rows(range(8))
    assert client.insert(books, rows)["insert_count"] == 8
    by_id = {r["id"]: r for r in client.query(books, "id >= 0", output_fields=["chunks", "title"])}
    for row in rows:
        got = by_id[row["id"]]["chunks"]
        assert [(c["text"], c["page"]) for c in got] == [(c["text"], c["page"]) for c in row["chunks"]]
        for mine, theirs in zip(got, row["chunks"], strict=True):
            assert np.allclose(mine["emb"], theirs["emb"], atol=1e-6)
    # "chunks[text]" returns the struct array cut to that sub-field, as Milvus documents.
    only_text = client.get(books, ids=[3], output_fields=["chunks[text]"])[0]
    assert only_text["chunks"] == [{"text": "c3.0"}, {"text": "c3.1"}, {"text": "c3.2"}]
    # Upsert replaces the whole struct array of a row.
    client.upsert(books, [{**rows[3], "chunks": [{"text": "new", "page": 9, "emb": [1.0, 0.0, 0.0]}]}])
    again = client.get(books, ids=[3], output_fields=["chunks"])[0]["chunks"]
    assert again == [{"text": "new", "page": 9, "emb": [1.0, 0.0, 0.0]}]
    assert "chunks" in client.query(books, "id == 1", output_fields=["*"])[0]


@pytest.mark.parametrize("metric", ["MAX_SIM_COSINE", "MAX_SIM_IP", "MAX_SIM_L2"])
def test_embedding_list_search_is_exact_max_sim(client: MilvusClient, metric: str) -> None:
    name = f"maxsim_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, schema=_schema(client), index_params=_index_params(client, metric))
    try:
        rows = _rows(range(40), seed=3)
        client.insert(name, rows[:20])
        client.flush(name)  # one sealed segment and growing rows: both are searched
        client.insert(name, rows[20:])
        queries = [np.array([[0.2, 0.9, -0.4]]), np.array([[0.5, -0.1, 0.3], [-0.7, 0.2, 0.6]])]
        lists = []
        for query in queries:
            embedding_list = EmbeddingList()
            for vector in query:
                embedding_list.add(vector.tolist())
            lists.append(embedding_list)
        results = client.search(
            name, data=lists, anns_field="chunks[emb]", limit=5, output_fields=["chunks[page]", "title"]
        )
        for query, hits in zip(queries, results, strict=True):
            expected = _max_sim(query, rows, metric)[:5]
            assert [h["id"] for h in hits] == [i for _, i in expected]
            sign = -1 if metric == "MAX_SIM_L2" else 1
            assert np.allclose([sign * h["distance"] for h in hits], [s for s, _ in expected], atol=1e-4)
            first = hits[0]["entity"]
            assert first["title"] == f"doc{hits[0]['id']}"
            assert first["chunks"] == [{"page": j} for j in range(hits[0]["id"] % 4)]
        # A filter on ordinary fields narrows the candidates; rows without elements never match.
        filtered = client.search(name, data=lists[:1], anns_field="chunks[emb]", limit=40, filter="id < 10")
        assert {h["id"] for h in filtered[0]} == {i for i in range(10) if i % 4}
        assert "metric type not match" in _refusal(
            lambda: client.search(
                name, data=lists[:1], anns_field="chunks[emb]", limit=3, search_params={"metric_type": "L2"}
            )
        )
    finally:
        client.drop_collection(name)


def test_refusals_where_milvus_refuses(client: MilvusClient, books: str) -> None:
    client.insert(books, _rows(range(4)))
    # No Array of Structs, nor any field in it, in a filter (Milvus 2.6).
    assert "cannot be used in a filter" in _refusal(lambda: client.query(books, "array_length(chunks) > 1"))
    assert "cannot parse expression" in _refusal(lambda: client.query(books, "chunks[page] == 1"))
    # Capacity, dims, types and shape of the elements are checked before anything is written.
    too_many = [{"text": "x", "page": 0, "emb": [0.0] * SUB_DIM}] * 5
    row = {"id": 100, "title": "t", "vec": [0.0] * DIM}
    assert "exceeds max capacity" in _refusal(lambda: client.insert(books, [{**row, "chunks": too_many}]))
    wrong_dim = [{"text": "x", "page": 0, "emb": [0.0] * (SUB_DIM + 1)}]
    assert "dim" in _refusal(lambda: client.insert(books, [{**row, "chunks": wrong_dim}]))
    long_text = [{"text": "x" * 17, "page": 0, "emb": [0.0] * SUB_DIM}]
    assert "exceeds max length" in _refusal(lambda: client.insert(books, [{**row, "chunks": long_text}]))
    assert client.query(books, "id == 100") == []
    # Merge-mode upsert does not take struct arrays (Milvus 2.6 docs: replace mode only).
    client.load_collection(books)
    partial = {"id": 1, "chunks": [{"text": "p", "page": 1, "emb": [0.0] * SUB_DIM}]}
    assert "partial update" in _refusal(lambda: client.upsert(books, [partial], partial_update=True))
    # Embedding lists take HNSW with a MAX_SIM metric; scalar sub-fields take no index.
    bad = client.prepare_index_params()
    bad.add_index("chunks[emb]", index_type="HNSW", metric_type="COSINE")
    client.release_collection(books)
    client.drop_index(books, "chunks[emb]")
    assert "not supported" in _refusal(lambda: client.create_index(books, bad))
    scalar = client.prepare_index_params()
    scalar.add_index("chunks[page]", index_type="INVERTED")
    assert "not supported" in _refusal(lambda: client.create_index(books, scalar))
    # Every vector field must be indexed before a load: the sub-field too.
    with pytest.raises(MilvusException) as unindexed:
        client.load_collection(books)
    assert "chunks[emb]" in str(unindexed.value.message)


def test_schema_refusals(client: MilvusClient) -> None:
    def create(**changes: Any) -> None:
        schema = client.create_schema()
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
        chunk = client.create_struct_field_schema(**changes.pop("struct", {}))
        for name, dtype, params in changes.pop("subs", [("n", DataType.INT64, {})]):
            chunk.add_field(name, dtype, **params)
        schema.add_field(
            "chunks",
            DataType.ARRAY,
            element_type=DataType.STRUCT,
            struct_schema=chunk,
            max_capacity=4,
            **changes,
        )
        client.create_collection(f"bad_{uuid.uuid4().hex[:8]}", schema=schema)

    assert "does not support nullable" in _refusal(lambda: create(nullable=True))
    assert "Unsupported element type" in _refusal(
        lambda: create(subs=[("b", DataType.BINARY_VECTOR, {"dim": 16})])
    )
    assert "not supported" in _refusal(lambda: create(subs=[("j", DataType.JSON, {})]))
    assert "type param(max_length) should be specified" in _refusal(
        lambda: create(subs=[("s", DataType.VARCHAR, {})]), code=1101
    )
    many = [(f"e{i}", DataType.FLOAT_VECTOR, {"dim": 2}) for i in range(10)]
    assert "maximum vector field's number should be limited to 10" in _refusal(lambda: create(subs=many))


def test_add_collection_struct_field_answers_milvus_rule(client: MilvusClient, books: str) -> None:
    chunk = client.create_struct_field_schema()
    chunk.add_field("n", DataType.INT64)
    # pymilvus sends an added struct array field as nullable (Milvus wants added fields
    # nullable), and Milvus 2.6 has no nullable struct array field: refused either way.
    assert "struct array field extra does not support nullable" in _refusal(
        lambda: client.add_collection_struct_field(books, "extra", chunk, max_capacity=4)
    )
    assert "extra" not in {f["name"] for f in client.describe_collection(books)["fields"]}


def _rest(server_uri: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = httpx.post(f"{server_uri}/v2/vectordb/{path}", content=json.dumps(body), headers=HEADERS)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_rest_create_describe_insert_query_search(server_uri: str) -> None:
    name = f"rest_books_{uuid.uuid4().hex[:8]}"
    schema = {
        "fields": [
            {"fieldName": "id", "dataType": "Int64", "isPrimary": True},
            {"fieldName": "vec", "dataType": "FloatVector", "elementTypeParams": {"dim": DIM}},
            {
                "fieldName": "chunks",
                "dataType": "Array",
                "elementDataType": "Struct",
                "elementTypeParams": {"max_capacity": 4},
                "fields": [
                    {"fieldName": "text", "dataType": "VarChar", "elementTypeParams": {"max_length": 16}},
                    {"fieldName": "emb", "dataType": "FloatVector", "elementTypeParams": {"dim": SUB_DIM}},
                ],
            },
        ]
    }
    indexes = [
        {"fieldName": "vec", "indexType": "FLAT", "metricType": "L2"},
        {"fieldName": "chunks[emb]", "indexType": "HNSW", "metricType": "MAX_SIM_IP", "params": {"M": 8}},
    ]
    created = _rest(
        server_uri, "collections/create", {"collectionName": name, "schema": schema, "indexParams": indexes}
    )
    assert created["code"] == 0, created
    try:
        described = _rest(server_uri, "collections/describe", {"collectionName": name})["data"]
        struct = next(f for f in described["fields"] if f["name"] == "chunks")
        assert struct["type"] == "Array" and struct["elementType"] == "Struct"
        assert [f["name"] for f in struct["fields"]] == ["text", "emb"]
        rows = [
            {
                "id": 1,
                "vec": [0.0] * DIM,
                "chunks": [{"text": "a", "emb": [1, 0, 0]}, {"text": "b", "emb": [0, 1, 0]}],
            },
            {"id": 2, "vec": [1.0] * DIM, "chunks": [{"text": "c", "emb": [0, 0, 1]}]},
            {"id": 3, "vec": [2.0] * DIM, "chunks": []},
        ]
        inserted = _rest(server_uri, "entities/insert", {"collectionName": name, "data": rows})
        assert inserted["code"] == 0 and inserted["data"]["insertCount"] == 3, inserted
        got = _rest(
            server_uri, "entities/get", {"collectionName": name, "id": [1], "outputFields": ["chunks"]}
        )
        assert got["data"][0]["chunks"] == [
            {"text": "a", "emb": [1.0, 0.0, 0.0]},
            {"text": "b", "emb": [0.0, 1.0, 0.0]},
        ]
        found = _rest(
            server_uri,
            "entities/search",
            {"collectionName": name, "annsField": "chunks[emb]", "data": [[[0.9, 0.8, 0.0]]], "limit": 3},
        )
        assert [h["id"] for h in found["data"]] == [1, 2]
        bad = dict(rows[0], id=9, chunks=[{"text": "a", "emb": [1, 0]}])
        refused = _rest(server_uri, "entities/insert", {"collectionName": name, "data": [bad]})
        assert refused["code"] == 1100 and "dim" in refused["message"]
    finally:
        _rest(server_uri, "collections/drop", {"collectionName": name})


@pytest.mark.slow
def test_struct_rows_survive_flush_restart_and_compaction(tmp_path: Path) -> None:
    port = free_port()
    rows = _rows(range(30), seed=11)
    process = start_server(tmp_path / "data", port, tmp_path / "one.log", auth=False)
    try:
        wait_ready(process, tmp_path / "one.log")
        client = MilvusClient(f"http://127.0.0.1:{port}")
        client.create_collection("c", schema=_schema(client), index_params=_index_params(client))
        client.insert("c", rows[:10])
        client.flush("c")
        client.insert("c", rows[10:20])
        client.flush("c")
        client.insert("c", rows[20:])  # growing, only in the log
        client.delete("c", ids=[5])
        client.close()
    finally:
        assert stop_server(process) == 0
    process = start_server(tmp_path / "data", port, tmp_path / "two.log", auth=False)
    try:
        wait_ready(process, tmp_path / "two.log")
        client = MilvusClient(f"http://127.0.0.1:{port}")
        client.load_collection("c")
        client.flush("c")
        compact_and_wait(client, "c")
        client.release_collection("c")
        client.load_collection("c")
        live = [r for r in rows if r["id"] != 5]
        got = {r["id"]: r["chunks"] for r in client.query("c", "id >= 0", output_fields=["chunks"])}
        assert sorted(got) == [r["id"] for r in live]
        for row in live:
            assert [c["text"] for c in got[row["id"]]] == [c["text"] for c in row["chunks"]]
        query = np.array([[0.3, -0.2, 0.9]])
        embedding_list = EmbeddingList()
        embedding_list.add(query[0].tolist())
        hits = client.search("c", data=[embedding_list], anns_field="chunks[emb]", limit=4)[0]
        assert [h["id"] for h in hits] == [i for _, i in _max_sim(query, live, "MAX_SIM_COSINE")[:4]]
        memory = client.describe_collection("c")  # still described with its struct field after all that
        assert any(f.get("struct_fields") for f in memory["fields"])
        client.close()
    finally:
        assert stop_server(process) == 0


def test_partial_load_and_memory_accounting(client: MilvusClient, server_uri: str, books: str) -> None:
    client.insert(books, _rows(range(12)))
    client.flush(books)

    def held() -> dict[tuple[str, str], int]:
        reply = httpx.post(f"{server_uri}/v2/sheafdb/memory", content="{}", headers=HEADERS)
        memory = reply.json()["data"]
        mine = [c for c in memory["collections"] if c["collectionName"] == books]
        return {(f["fieldName"], f["kind"]): f["bytes"] for c in mine for f in c["fields"]}

    client.release_collection(books)
    client.load_collection(books)
    assert held()[("chunks", "field")] > 0  # the struct column is accounted like any other field
    client.release_collection(books)
    assert held() == {}
    client.load_collection(books, load_fields=["id", "vec", "title"])
    assert ("chunks", "field") not in held()
    assert "not loaded" in _refusal(
        lambda: client.query(books, "id >= 0", output_fields=["chunks[text]"]), code=65535
    )
    embedding_list = EmbeddingList()
    embedding_list.add([1.0, 0.0, 0.0])
    assert "not loaded" in _refusal(
        lambda: client.search(books, data=[embedding_list], anns_field="chunks[emb]", limit=3), code=65535
    )
    client.release_collection(books)
    client.load_collection(books)
    assert len(client.search(books, data=[embedding_list], anns_field="chunks[emb]", limit=3)[0]) == 3


def test_hybrid_search_mixes_an_embedding_list_and_a_vector(client: MilvusClient, books: str) -> None:
    client.insert(books, _rows(range(12)))
    embedding_list = EmbeddingList()
    embedding_list.add([0.3, 0.3, -0.5])
    lists = AnnSearchRequest(data=[embedding_list], anns_field="chunks[emb]", param={}, limit=5)
    plain = AnnSearchRequest(data=[[1.0] * DIM], anns_field="vec", param={}, limit=5)
    fused = client.hybrid_search(books, [lists, plain], RRFRanker(), limit=4, output_fields=["chunks[text]"])[
        0
    ]
    assert len(fused) == 4
    for hit in fused:
        assert hit["entity"]["chunks"] == [{"text": f"c{hit['id']}.{j}"} for j in range(hit["id"] % 4)]
    # An EmbeddingList searches an embedding list field; a plain vector does not.
    assert "EmbeddingList" in _refusal(
        lambda: client.search(books, data=[embedding_list], anns_field="vec", limit=2)
    )
    assert "takes EmbeddingList queries" in _refusal(
        lambda: client.search(books, data=[[0.1, 0.2, 0.3]], anns_field="chunks[emb]", limit=2)
    )
    assert "not a vector field" in _refusal(
        lambda: client.search(books, data=[embedding_list], anns_field="chunks[text]", limit=2)
    )
