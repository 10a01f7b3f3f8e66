"""Writes and reads through the real pymilvus MilvusClient: insert/upsert/delete, get, query,
search, hybrid search, both iterators, and the load/release lifecycle around them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from pymilvus import AnnSearchRequest, DataType, MilvusClient, MilvusException, RRFRanker, WeightedRanker
from pymilvus.client.types import LoadState

DIM = 8
ROWS = 300


@pytest.fixture(scope="module")
def coll(client: MilvusClient) -> Iterator[str]:
    name = f"data_{uuid.uuid4().hex[:8]}"
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    schema.add_field("score", DataType.DOUBLE, nullable=True)
    schema.add_field("nums", DataType.ARRAY, element_type=DataType.INT32, max_capacity=4)
    index_params = client.prepare_index_params()
    index_params.add_index("vec", index_type="FLAT", metric_type="L2")
    index_params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index_params)
    rng = np.random.default_rng(11)
    vectors = rng.random((ROWS, DIM), dtype=np.float32)
    rows = [
        {
            "id": i,
            "vec": vectors[i].tolist(),
            "sparse": {i % 50: 1.0, 60 + i % 7: 0.5},
            "tag": f"t{i % 5}",
            "score": None if i % 4 == 0 else i / 2,
            "nums": [i, i + 1],
            "color": "red" if i % 2 else "blue",
        }
        for i in range(ROWS)
    ]
    result = client.insert(name, rows)
    assert result["insert_count"] == ROWS
    yield name
    client.drop_collection(name)


def test_get_returns_every_type(client: MilvusClient, coll: str) -> None:
    got = client.get(coll, ids=[4, 5], output_fields=["*"])
    by_id = {r["id"]: r for r in got}
    assert by_id[4]["score"] is None and by_id[5]["score"] == 2.5
    assert by_id[5]["tag"] == "t0" and by_id[5]["nums"] == [5, 6] and by_id[5]["color"] == "red"
    assert len(by_id[5]["vec"]) == DIM


def test_query_filter_limit_offset_and_count(client: MilvusClient, coll: str) -> None:
    res = client.query(coll, filter='tag == "t1" and id < 100', output_fields=["id", "tag"])
    assert sorted(r["id"] for r in res) == list(range(1, 100, 5))
    page = client.query(coll, filter="id >= 0", output_fields=["id"], limit=5, offset=10)
    assert len(page) == 5
    count = client.query(coll, filter="", output_fields=["count(*)"])
    assert count[0]["count(*)"] == ROWS
    assert client.query(coll, filter="id < 0", output_fields=["id", "tag"]) == []


def test_query_with_template_values(client: MilvusClient, coll: str) -> None:
    res = client.query(coll, filter="id in {ids}", filter_params={"ids": [1, 2, 3]}, output_fields=["id"])
    assert sorted(r["id"] for r in res) == [1, 2, 3]


def test_search_nq_topk_filter_output(client: MilvusClient, coll: str) -> None:
    rows = client.get(coll, ids=[10, 20], output_fields=["vec"])
    queries = [r["vec"] for r in sorted(rows, key=lambda r: r["id"])]
    res = client.search(coll, queries, anns_field="vec", limit=3, output_fields=["tag", "color"])
    assert len(res) == 2 and all(len(hits) == 3 for hits in res)
    assert res[0][0]["id"] == 10 and res[1][0]["id"] == 20
    assert res[0][0]["distance"] == pytest.approx(0.0, abs=1e-5)
    assert res[0][0]["entity"]["tag"] == "t0" and res[0][0]["entity"]["color"] == "blue"
    filtered = client.search(coll, queries[:1], anns_field="vec", limit=5, filter='tag == "t3"')
    assert all(hit["id"] % 5 == 3 for hit in filtered[0])
    empty = client.search(coll, queries[:1], anns_field="vec", limit=5, filter="id < 0")
    assert len(empty) == 1 and len(empty[0]) == 0


def test_sparse_search(client: MilvusClient, coll: str) -> None:
    res = client.search(coll, [{7: 1.0}], anns_field="sparse", limit=3, search_params={"metric_type": "IP"})
    assert len(res[0]) == 3 and all(hit["id"] % 50 == 7 for hit in res[0])


def test_hybrid_search(client: MilvusClient, coll: str) -> None:
    vec = client.get(coll, ids=[33], output_fields=["vec"])[0]["vec"]
    requests = [
        AnnSearchRequest([vec], "vec", {"metric_type": "L2"}, limit=5),
        AnnSearchRequest([{33: 1.0}], "sparse", {"metric_type": "IP"}, limit=5),
    ]
    for ranker in (RRFRanker(), WeightedRanker(0.5, 0.5)):
        res = client.hybrid_search(coll, requests, ranker, limit=3, output_fields=["tag"])
        assert res[0][0]["id"] == 33 and res[0][0]["entity"]["tag"] == "t3"


def test_query_iterator_pages_every_row_once(client: MilvusClient, coll: str) -> None:
    iterator = client.query_iterator(coll, batch_size=70, filter="id >= 0", output_fields=["id"])
    seen: list[int] = []
    while batch := iterator.next():
        seen.extend(r["id"] for r in batch)
    iterator.close()
    assert sorted(seen) == list(range(ROWS)) and len(seen) == len(set(seen))


def test_search_iterator_returns_distinct_hits(client: MilvusClient, coll: str) -> None:
    vec = client.get(coll, ids=[1], output_fields=["vec"])[0]["vec"]
    iterator = client.search_iterator(
        coll, [vec], batch_size=20, limit=60, anns_field="vec", search_params={"metric_type": "L2"}
    )
    seen: list[int] = []
    while batch := iterator.next():
        seen.extend(hit["id"] for hit in batch)
    iterator.close()
    assert len(seen) == 60 and len(set(seen)) == 60 and seen[0] == 1


def test_upsert_and_delete(client: MilvusClient, coll: str) -> None:
    client.upsert(coll, [{"id": 1000, "vec": [0.5] * DIM, "sparse": {1: 1.0}, "tag": "new", "nums": []}])
    assert client.get(coll, ids=[1000], output_fields=["tag"])[0]["tag"] == "new"
    client.upsert(coll, [{"id": 1000, "vec": [0.5] * DIM, "sparse": {1: 1.0}, "tag": "newer", "nums": []}])
    assert client.query(coll, filter="id == 1000", output_fields=["tag"]) == [{"id": 1000, "tag": "newer"}]
    deleted = client.delete(coll, ids=[1000])
    assert deleted["delete_count"] == 1
    assert client.get(coll, ids=[1000]) == []


def test_load_release_lifecycle(client: MilvusClient, coll: str) -> None:
    client.release_collection(coll)
    assert client.get_load_state(coll)["state"] == LoadState.NotLoad
    with pytest.raises(MilvusException) as raised:
        client.query(coll, filter="id < 3")
    assert raised.value.code == 101
    client.load_collection(coll, load_fields=["id", "vec", "tag"], skip_load_dynamic_field=True)
    assert client.get_load_state(coll)["state"] == LoadState.Loaded
    with pytest.raises(MilvusException, match="not loaded"):
        client.query(coll, filter="id < 3", output_fields=["score"])
    client.release_collection(coll)
    client.load_collection(coll)
    assert client.get_load_state(coll)["state"] == LoadState.Loaded
    client.refresh_load(coll)


def test_flush_then_search_sealed_data(client: MilvusClient, coll: str) -> None:
    client.flush(coll)
    assert client.query(coll, filter="", output_fields=["count(*)"])[0]["count(*)"] == ROWS
