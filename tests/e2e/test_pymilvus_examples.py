"""What pymilvus's example scripts do, written afresh: ``examples/sparse.py`` (a sparse vector
collection with a generated VARCHAR key) and ``examples/query_group_by.py`` (TIMESTAMPTZ and
query aggregation by group)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import numpy as np
from pymilvus import CollectionSchema, DataType, FieldSchema, MilvusClient


def _sparse_row(rng: random.Random, dim: int, nonzero: int) -> dict[int, float]:
    return {index: rng.random() for index in rng.sample(range(dim), nonzero)}


def test_sparse_example_flow(client: MilvusClient) -> None:
    rng = random.Random(7)
    name = f"hello_sparse_{uuid.uuid4().hex[:6]}"
    schema = CollectionSchema(
        [
            FieldSchema("pk", DataType.VARCHAR, is_primary=True, auto_id=True, max_length=100),
            FieldSchema("random", DataType.DOUBLE),
            FieldSchema("embeddings", DataType.SPARSE_FLOAT_VECTOR),
        ],
        "sparse float vectors with a generated string key",
    )
    index_params = client.prepare_index_params()
    index_params.add_index(
        field_name="embeddings",
        index_name="sparse_inverted_index",
        index_type="SPARSE_INVERTED_INDEX",
        metric_type="IP",
        params={"drop_ratio_build": 0.2},
    )
    client.create_collection(
        name, schema=schema, index_params=index_params, timeout=5, consistency_level="Strong"
    )
    try:
        assert name in client.list_collections()
        assert client.describe_collection(name)["auto_id"] is True
        rows = [{"random": i, "embeddings": _sparse_row(rng, 100, 20)} for i in range(6)]
        inserted = client.insert(name, rows, progress_bar=True)
        assert inserted["insert_count"] == 6
        hits = client.search(
            name,
            [_sparse_row(rng, 100, 20)],
            limit=3,
            output_fields=["pk", "random", "embeddings"],
            search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.2}},
        )
        assert len(hits[0]) == 3 and all(isinstance(h["entity"]["pk"], str) for h in hits[0])
        found = client.query(name, filter="random < 3")
        pks = [r["pk"] for r in found]
        assert len(pks) == 3
        assert client.query(name, filter=f"pk == '{pks[0]}'")[0]["pk"] == pks[0]
        client.delete(name, ids=pks[:1])
        assert client.query(name, filter=f"pk == '{pks[0]}'") == []
    finally:
        client.drop_collection(name)


def test_query_group_by_example_flow(client: MilvusClient) -> None:
    names = ["Green", "Rachel", "Joe", "Chandler"]
    name = f"query_group_by_{uuid.uuid4().hex[:6]}"
    schema = CollectionSchema(
        [
            FieldSchema("pk", DataType.VARCHAR, is_primary=True, auto_id=False, max_length=100),
            FieldSchema("c1", DataType.VARCHAR, max_length=512),
            FieldSchema("c2", DataType.INT16),
            FieldSchema("c3", DataType.INT32),
            FieldSchema("c4", DataType.DOUBLE),
            FieldSchema("ts", DataType.TIMESTAMPTZ, description="timestamp with timezone"),
            FieldSchema("c5", DataType.FLOAT_VECTOR, dim=8),
            FieldSchema("c6", DataType.VARCHAR, max_length=512),
        ]
    )
    client.create_collection(name, schema=schema, consistency_level="Strong")
    try:
        hours = [datetime(2025, 1, 1, h, tzinfo=UTC).isoformat() for h in range(3)]
        rng = np.random.default_rng(19530)
        rows = []
        for batch in range(3):
            for i in range(20):
                key = batch * 20 + i
                rows.append(
                    {
                        "pk": str(key),
                        "c1": names[key % 4],
                        "c2": key % 5,
                        "c3": key % 7,
                        "c4": float(key),
                        "ts": hours[(batch + i) % 3],
                        "c5": rng.random(8).tolist(),
                        "c6": names[(key // 4) % 4],
                    }
                )
            client.insert(name, rows[-20:])
            client.flush(name)
        index_params = client.prepare_index_params()
        index_params.add_index("c5", index_type="IVF_FLAT", metric_type="L2", nlist=128)
        client.create_index(name, index_params)
        assert client.get_collection_stats(name)["row_count"] == 60
        client.load_collection(name)

        by_ts = client.query(
            name, filter="c2 < 10", output_fields=["ts", "count(c2)", "max(ts)"], group_by_fields=["ts"]
        )
        assert sorted((r["ts"], r["count(c2)"], r["max(ts)"]) for r in by_ts) == [
            ("2025-01-01T00:00:00Z", 20, "2025-01-01T00:00:00Z"),
            ("2025-01-01T01:00:00Z", 20, "2025-01-01T01:00:00Z"),
            ("2025-01-01T02:00:00Z", 20, "2025-01-01T02:00:00Z"),
        ]
        pairs = client.query(
            name,
            filter="c2 < 10",
            output_fields=["c1", "c6", "min(c2)", "max(c2)"],
            group_by_fields=["c1", "c6"],
        )
        expected: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            expected.setdefault((row["c1"], row["c6"]), []).append(row["c2"])
        assert {(r["c1"], r["c6"]): (r["min(c2)"], r["max(c2)"]) for r in pairs} == {
            key: (min(v), max(v)) for key, v in expected.items()
        }
        averages = client.query(
            name, filter="", output_fields=["c1", "avg(c2)", "avg(c4)"], limit=10, group_by_fields=["c1"]
        )
        by_name = {r["c1"]: r for r in averages}
        green = [row for row in rows if row["c1"] == "Green"]
        assert by_name["Green"]["avg(c2)"] == sum(r["c2"] for r in green) / len(green)
        assert by_name["Green"]["avg(c4)"] == sum(r["c4"] for r in green) / len(green)
    finally:
        client.drop_collection(name)
