"""TTL that is exact, through the real pymilvus client: ``collection.ttl.seconds`` and the
entity-level ``ttl_field`` hide a row from every read once it expires, across flush, restart
and compaction; compaction reclaims the expired rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from tests.e2e.conftest import compact_and_wait, free_port, start_server, stop_server, wait_ready

DIM = 4


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    port = free_port()
    process = start_server(tmp_path / "data", port, tmp_path / "first.log", auth=False)
    wait_ready(process, tmp_path / "first.log")
    yield tmp_path, port
    stop_server(process)


def _create(client: MilvusClient, name: str, **properties: str) -> None:
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("expire_at", DataType.TIMESTAMPTZ, nullable=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    index_params = client.prepare_index_params()
    index_params.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index_params, properties=properties)


def _visible(client: MilvusClient, name: str) -> dict[str, object]:
    return {
        "query": sorted(r["id"] for r in client.query(name, filter="id >= 0")),
        "get": sorted(r["id"] for r in client.get(name, ids=list(range(10)))),
        "count": client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"],
        "search": sorted(h["id"] for h in client.search(name, [[0.0] * DIM], limit=10)[0]),
    }


def _all_reads(ids: list[int]) -> dict[str, object]:
    return {"query": ids, "get": ids, "count": len(ids), "search": ids}


def test_entity_ttl_field_hides_rows_from_every_read(client: MilvusClient) -> None:
    name = "ttl_field_reads"
    _create(client, name, ttl_field="expire_at")
    try:
        client.insert(
            name,
            [
                {"id": 0, "expire_at": "2001-01-01T00:00:00Z", "vec": [0.0] * DIM},
                {"id": 1, "expire_at": "2999-01-01T00:00:00Z", "vec": [1.0] * DIM},
                {"id": 2, "expire_at": None, "vec": [2.0] * DIM},
            ],
        )
        client.flush(name)
        client.insert(name, [{"id": 3, "expire_at": "2002-01-01T00:00:00Z", "vec": [3.0] * DIM}])
        assert _visible(client, name) == _all_reads([1, 2])
        client.delete(name, filter="id < 10")  # deletes what it can see; nothing breaks
        assert _visible(client, name) == _all_reads([])
        # An expired row comes back when upserted with a future (or null) expiry.
        client.upsert(name, [{"id": 0, "expire_at": None, "vec": [0.0] * DIM}])
        assert _visible(client, name) == _all_reads([0])
        # Dropping ttl_field does not resurface the rows that had expired.
        client.insert(name, [{"id": 5, "expire_at": "2003-01-01T00:00:00Z", "vec": [5.0] * DIM}])
        client.drop_collection_properties(name, property_keys=["ttl_field"])
        assert _visible(client, name) == _all_reads([0])
    finally:
        client.drop_collection(name)


def _refusal(call: object) -> str:
    with pytest.raises(MilvusException) as caught:
        call()  # type: ignore[operator]
    assert caught.value.code == 1100
    return str(caught.value.message)


def test_ttl_property_rules(client: MilvusClient) -> None:
    """Milvus's own texts (proxy validateCollectionTTL / validateTTLField)."""
    name = "ttl_rules"
    _create(client, name)
    alter = client.alter_collection_properties
    try:
        assert "ttl field must be timestamptz, field name = id" in _refusal(
            lambda: alter(name, properties={"ttl_field": "id"})
        )
        assert "ttl field name nope not found in schema" in _refusal(
            lambda: alter(name, properties={"ttl_field": "nope"})
        )
        assert "collection TTL is not a valid positive integer" in _refusal(
            lambda: alter(name, properties={"collection.ttl.seconds": "soon"})
        )
        assert "collection TTL is out of range, expect [-1, 3155760000], got -2" in _refusal(
            lambda: alter(name, properties={"collection.ttl.seconds": "-2"})
        )
        alter(name, properties={"collection.ttl.seconds": "-1"})  # Milvus's "no TTL"
        alter(name, properties={"collection.ttl.seconds": "60"})
        assert "collection TTL and ttl field cannot be set at the same time" in _refusal(
            lambda: alter(name, properties={"ttl_field": "expire_at"})
        )
    finally:
        client.drop_collection(name)
    assert "collection TTL and ttl field cannot be set at the same time" in _refusal(
        lambda: _create(client, name, ttl_field="expire_at", **{"collection.ttl.seconds": "5"})
    )
    assert not client.has_collection(name)


@pytest.mark.slow
def test_collection_ttl_exact_then_reclaimed_across_restart_and_compaction(
    own_server: tuple[Path, int],
) -> None:
    root, port = own_server
    client = MilvusClient(f"http://127.0.0.1:{port}")
    _create(client, "c", **{"collection.ttl.seconds": "3600"})
    client.insert("c", [{"id": i, "vec": [float(i)] * DIM} for i in range(3)])
    client.flush("c")
    client.insert("c", [{"id": i, "vec": [float(i)] * DIM} for i in range(3, 6)])
    assert _visible(client, "c") == _all_reads([0, 1, 2, 3, 4, 5])
    time.sleep(1.2)
    # The TTL shrinks to one second: the rows, written more than a second ago, vanish at once
    # from every read (Milvus would show them until a compaction).
    client.alter_collection_properties("c", properties={"collection.ttl.seconds": "1"})
    assert _visible(client, "c") == _all_reads([])
    assert client.get_collection_stats("c")["row_count"] == 0
    client.flush("c")
    compact_and_wait(client, "c")
    assert _visible(client, "c") == _all_reads([])
    client.alter_collection_properties("c", properties={"collection.ttl.seconds": "3600"})
    # Compaction reclaimed the expired rows: a longer TTL does not bring them back.
    assert client.get_collection_stats("c")["row_count"] == 0
    assert _visible(client, "c") == _all_reads([])
    client.close()


@pytest.mark.slow
def test_expired_rows_stay_hidden_after_restart(tmp_path: Path) -> None:
    port = free_port()
    process = start_server(tmp_path / "data", port, tmp_path / "one.log", auth=False)
    try:
        wait_ready(process, tmp_path / "one.log")
        client = MilvusClient(f"http://127.0.0.1:{port}")
        _create(client, "c", ttl_field="expire_at")
        client.insert(
            "c",
            [
                {"id": 0, "expire_at": "2001-01-01T00:00:00Z", "vec": [0.0] * DIM},
                {"id": 1, "expire_at": "2999-01-01T00:00:00Z", "vec": [1.0] * DIM},
            ],
        )
        client.close()
    finally:
        assert stop_server(process) == 0
    process = start_server(tmp_path / "data", port, tmp_path / "two.log", auth=False)
    try:
        wait_ready(process, tmp_path / "two.log")
        client = MilvusClient(f"http://127.0.0.1:{port}")
        client.load_collection("c")
        assert _visible(client, "c") == _all_reads([1])
        client.insert("c", [{"id": 2, "expire_at": "2002-01-01T00:00:00Z", "vec": [2.0] * DIM}])
        client.flush("c")
        compact_and_wait(client, "c")
        assert _visible(client, "c") == _all_reads([1])
        assert client.get_collection_stats("c")["row_count"] == 1
        client.close()
    finally:
        stop_server(process)
