"""Read semantics of Milvus 2.6: one row per primary key (its latest version), random_sample,
ignore_growing, and the output-field wildcard.

A key inserted again without upsert is returned once, its newest version, by query, get,
count and search, whether the versions are sealed, growing or both.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymilvus import DataType, MilvusClient, MilvusException

DIM = 4


def refusal(fn: Callable[[], Any]) -> MilvusException:
    with pytest.raises(MilvusException) as raised:
        fn()
    return raised.value


def _rows(ids: range, version: float) -> list[dict[str, Any]]:
    return [{"id": i, "vector": [version, float(i), 1.0, 0.5], "version": version} for i in ids]


@pytest.fixture
def coll(client: MilvusClient) -> Iterator[str]:
    name = f"versions_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dimension=DIM, metric_type="L2")
    yield name
    client.drop_collection(name)


@pytest.mark.parametrize("layout", ["sealed+sealed", "sealed+growing", "growing+growing"])
def test_reinserted_key_is_returned_once_latest_version(client: MilvusClient, coll: str, layout: str) -> None:
    client.insert(coll, _rows(range(10), 1.0))
    if layout != "growing+growing":
        client.flush(coll)
    client.insert(coll, _rows(range(5, 15), 2.0))
    if layout == "sealed+sealed":
        client.flush(coll)
    got = client.query(coll, filter="id >= 0", output_fields=["version"], limit=100)
    assert sorted(r["id"] for r in got) == list(range(15))
    assert {r["id"]: r["version"] for r in got} == {i: 1.0 if i < 5 else 2.0 for i in range(15)}
    assert client.query(coll, filter="", output_fields=["count(*)"])[0]["count(*)"] == 15
    assert [r["version"] for r in client.get(coll, ids=[7], output_fields=["version"])] == [2.0]
    # The old version no longer matches a filter it alone would pass.
    assert client.query(coll, filter="version == 1.0 and id >= 5", output_fields=["id"]) == []
    hits = client.search(coll, [[1.0, 7.0, 1.0, 0.5]], limit=15, output_fields=["version"])[0]
    ids = [h["id"] for h in hits]
    assert len(ids) == len(set(ids)) == 15
    assert next(h for h in hits if h["id"] == 7)["entity"]["version"] == 2.0
    client.delete(coll, ids=[7])
    assert client.get(coll, ids=[7]) == []


def test_reinserted_varchar_key_across_partitions(client: MilvusClient) -> None:
    name = f"vkeys_{uuid.uuid4().hex[:8]}"
    schema = MilvusClient.create_schema(enable_dynamic_field=True)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=16)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    params = client.prepare_index_params()
    params.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=params)
    try:
        client.create_partition(name, "p1")
        client.insert(name, [{"pk": f"k{i}", "vector": [0.0] * DIM, "v": 1} for i in range(4)])
        client.flush(name)
        client.insert(name, [{"pk": "k1", "vector": [1.0] * DIM, "v": 2}], partition_name="p1")
        got = {r["pk"]: r["v"] for r in client.query(name, filter="pk >= 'k'", output_fields=["v"], limit=10)}
        assert got == {"k0": 1, "k1": 2, "k2": 1, "k3": 1}
        # Reading _default alone: its own version is the only one there.
        alone = client.query(name, filter="pk == 'k1'", output_fields=["v"], partition_names=["_default"])
        assert [r["v"] for r in alone] == [1]
        # Deleting the newest version in its partition brings the older one back.
        client.delete(name, filter="pk == 'k1'", partition_name="p1")
        assert [r["v"] for r in client.get(name, ids=["k1"], output_fields=["v"])] == [1]
    finally:
        client.drop_collection(name)


def test_random_sample_in_query_filters(client: MilvusClient, coll: str) -> None:
    client.insert(coll, _rows(range(200), 1.0))
    half = client.query(coll, filter="random_sample(0.5)", output_fields=["id"], limit=1000)
    assert 0 < len(half) < 200  # each row kept with probability 1/2: never none or all of 200
    some = client.query(coll, filter="id < 100 && random_sample(0.3)", output_fields=["id"], limit=1000)
    assert 0 < len(some) < 100
    assert all(r["id"] < 100 for r in some)
    for factor in ("1.0", "1.5", "0"):
        bad = refusal(lambda f=factor: client.query(coll, filter=f"random_sample({f})", limit=10))
        assert bad.code == 1100
        assert "the sample factor should be between 0 and 1 and not too close to 0 or 1" in bad.message
    nested = refusal(lambda: client.query(coll, filter="id < 3 or random_sample(0.5)", limit=10))
    assert nested.code == 1100


def test_ignore_growing(client: MilvusClient, coll: str) -> None:
    client.insert(coll, _rows(range(5), 1.0))
    client.flush(coll)
    client.insert(coll, _rows(range(5, 8), 1.0))
    sealed_only = client.query(coll, filter="id >= 0", output_fields=["id"], ignore_growing=True, limit=100)
    assert sorted(r["id"] for r in sealed_only) == list(range(5))
    hits = client.search(coll, [[1.0, 6.0, 1.0, 0.5]], limit=10, search_params={"ignore_growing": True})
    assert sorted(h["id"] for h in hits[0]) == list(range(5))
    assert len(client.search(coll, [[1.0, 6.0, 1.0, 0.5]], limit=10)[0]) == 8


def test_output_field_wildcard(client: MilvusClient, coll: str) -> None:
    client.insert(coll, [{"id": 1, "vector": [0.1] * DIM, "version": 1.0, "extra": "x"}])
    row = client.query(coll, filter="id == 1", output_fields=["*"])[0]
    assert set(row) == {"id", "vector", "version", "extra"}
    row = client.query(coll, filter="id == 1", output_fields=["*", "vector"])[0]
    assert set(row) == {"id", "vector", "version", "extra"}
    hit = client.search(coll, [[0.1] * DIM], limit=1, output_fields=["*"])[0][0]
    assert set(hit["entity"]) == {"id", "vector", "version", "extra"}


def test_ignore_growing_and_output_field_refusals(client: MilvusClient, coll: str) -> None:
    client.insert(coll, _rows(range(3), 1.0))
    for bad in ("abc", 1.2):
        query = refusal(lambda b=bad: client.query(coll, filter="id >= 0", ignore_growing=b, limit=5))
        assert (query.code, query.message) == (1100, "parse ignore growing field failed: invalid parameter")
    search = refusal(
        lambda: client.search(coll, [[0.1] * DIM], limit=2, search_params={"ignore_growing": "abc"})
    )
    assert search.message == "parse ignore growing field failed: invalid parameter"
    for name in ("%", "-"):
        wrong = refusal(lambda n=name: client.query(coll, filter="id >= 0", output_fields=[n], limit=5))
        assert wrong.code == 1100
        assert wrong.message == f"parse output field name failed: {name}: invalid parameter"
    # With the dynamic field on, an unknown identifier is a dynamic key (absent here: no value).
    assert client.query(coll, filter="id == 1", output_fields=["never_set"]) == [{"id": 1}]
    spelled = client.query(coll, filter="id == 1", output_fields=['$meta["version"]'])
    assert [dict(r) for r in spelled] == [{"id": 1, "version": 1.0}]


def test_unknown_output_field_without_dynamic_field(client: MilvusClient) -> None:
    name = f"static_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dimension=DIM, enable_dynamic_field=False)
    try:
        client.insert(name, [{"id": 1, "vector": [0.1] * DIM}])
        error = refusal(lambda: client.query(name, filter="id >= 0", output_fields=["nope"], limit=5))
        assert (error.code, error.message) == (1100, "field nope not exist: invalid parameter")
    finally:
        client.drop_collection(name)
