"""Search by primary keys, the binary structure metrics, and describe's update_timestamp.

- ``search(ids=[...])`` (pymilvus 3.0 sends the keys in ``SearchRequest.ids``): the stored
  vectors of those rows are the queries, one result per id in order, with Milvus's refusals.
- SUBSTRUCTURE / SUPERSTRUCTURE on BIN_FLAT: only matching rows are hits; BIN_IVF_FLAT
  refuses them, as Milvus's index checker does.
- ``describe_collection`` carries ``update_timestamp``, moved on by a property change.
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


@pytest.fixture(scope="module")
def coll(client: MilvusClient) -> Iterator[str]:
    name = f"bykeys_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dimension=DIM, metric_type="L2")
    rows = [{"id": i, "vector": [float(i), 1.0, float(i % 3), 0.5], "tag": i % 2} for i in range(30)]
    client.insert(name, rows[:20])
    client.flush(name)
    client.insert(name, rows[20:])  # growing rows are found too
    yield name
    client.drop_collection(name)


def test_stored_vectors_become_the_queries(client: MilvusClient, coll: str) -> None:
    hits = client.search(coll, ids=[25, 3, 11], limit=2, output_fields=["vector", "tag"])
    assert [h[0]["id"] for h in hits] == [25, 3, 11]
    assert [h[0]["distance"] for h in hits] == [0.0, 0.0, 0.0]
    assert hits[1][0]["entity"]["vector"] == [3.0, 1.0, 0.0, 0.5]
    filtered = client.search(coll, ids=[4], limit=3, filter="tag == 1")
    assert all(h["id"] % 2 == 1 for h in filtered[0])
    assert client.search(coll, ids=[4], limit=3, anns_field="vector")[0][0]["id"] == 4


def test_refusals_in_milvus_words(client: MilvusClient, coll: str) -> None:
    missing = refusal(lambda: client.search(coll, ids=[1, 700], limit=2))
    assert "some of the provided primary key IDs do not exist: missing IDs" in missing.message
    duplicated = refusal(lambda: client.search(coll, ids=[1, 2, 1], limit=2))
    assert "duplicate IDs found in search request" in duplicated.message
    mismatched = refusal(lambda: client.search(coll, ids=["1", "2"], limit=2))
    assert "primary key is int64, but IDs type mismatch" in mismatched.message
    client.create_partition(coll, "empty_part")
    in_empty = refusal(lambda: client.search(coll, ids=[0, 1], limit=2, partition_names=["empty_part"]))
    assert "some of the provided primary key IDs do not exist: missing IDs" in in_empty.message


def _binary_collection(client: MilvusClient, index_type: str, metric: str) -> str:
    name = f"structure_{uuid.uuid4().hex[:8]}"
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("bv", DataType.BINARY_VECTOR, dim=16)
    params = client.prepare_index_params()
    params.add_index("bv", index_type=index_type, metric_type=metric, params={"nlist": 4})
    client.create_collection(name, schema=schema, index_params=params)
    # Row i holds bits of i in its first byte: 16 rows, 8 of them sealed.
    client.insert(name, [{"id": i, "bv": bytes([i, 0])} for i in range(8)])
    client.flush(name)
    client.insert(name, [{"id": i, "bv": bytes([i, 0])} for i in range(8, 16)])
    return name


@pytest.mark.parametrize(
    ("metric", "expected"),
    # Query bits 0b0011: its superset rows (sub) / its subset rows (super).
    [("SUBSTRUCTURE", [3, 7, 11, 15]), ("SUPERSTRUCTURE", [0, 1, 2, 3])],
)
def test_structure_metrics_match(client: MilvusClient, metric: str, expected: list[int]) -> None:
    name = _binary_collection(client, "BIN_FLAT", metric)
    try:
        hits = client.search(name, [bytes([3, 0])], limit=16)[0]
        assert sorted(h["id"] for h in hits) == expected
        assert {h["distance"] for h in hits} == {0.0}
        assert client.describe_index(name, "bv")["metric_type"] == metric
    finally:
        client.drop_collection(name)


@pytest.mark.parametrize("metric", ["SUBSTRUCTURE", "SUPERSTRUCTURE"])
def test_bin_ivf_flat_refuses_structure_metrics(client: MilvusClient, metric: str) -> None:
    error = refusal(lambda: _binary_collection(client, "BIN_IVF_FLAT", metric))
    assert error.code == 1100
    assert f"metric type {metric} not found or not supported, supported: [HAMMING JACCARD]" in error.message


def test_describe_carries_update_timestamp(client: MilvusClient) -> None:
    name = f"stamped_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dimension=DIM)
    try:
        first = client.describe_collection(name)
        assert first["update_timestamp"] == first["created_timestamp"] > 0
        client.alter_collection_properties(name, {"collection.ttl.seconds": "60"})
        assert client.describe_collection(name)["update_timestamp"] > first["update_timestamp"]
    finally:
        client.drop_collection(name)
