"""Scalar and JSON path index definitions through the real pymilvus client: accepted, described,
dropped as Milvus does (test_scalar_indexes.py covers what they build and answer)."""

from __future__ import annotations

import uuid

import pytest
from pymilvus import DataType, MilvusClient, MilvusException


def test_json_path_indexes_and_scalar_indexes(client: MilvusClient) -> None:
    name = f"sidx_{uuid.uuid4().hex[:8]}"
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("meta", DataType.JSON)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
    index_params = client.prepare_index_params()
    index_params.add_index("vec", index_type="FLAT", metric_type="L2")
    index_params.add_index("tag", index_type="INVERTED", index_name="tag_inv")
    for index_name, cast in (("price_double", "DOUBLE"), ("price_text", "VARCHAR")):
        index_params.add_index(
            "meta",
            index_type="INVERTED",
            index_name=index_name,
            params={"json_path": 'meta["price"]', "json_cast_type": cast},
        )
    client.create_collection(name, schema=schema, index_params=index_params)
    try:
        assert sorted(client.list_indexes(name)) == ["price_double", "price_text", "tag_inv", "vec"]
        described = client.describe_index(name, "price_text")
        assert described["json_path"] == 'meta["price"]' and described["json_cast_type"] == "VARCHAR"
        client.insert(
            name, [{"id": i, "meta": {"price": i}, "tag": f"t{i % 2}", "vec": [0.0] * 4} for i in range(6)]
        )
        assert sorted(r["id"] for r in client.query(name, filter='meta["price"] > 3')) == [4, 5]
        bad = client.prepare_index_params()
        bad.add_index(
            "meta",
            index_type="INVERTED",
            index_name="bad",
            params={"json_path": 'meta["a"]', "json_cast_type": "FLOAT16"},
        )
        with pytest.raises(MilvusException) as refused:
            client.create_index(name, bad)
        assert refused.value.code == 1100
        client.release_collection(name)
        client.drop_index(name, "price_text")
        assert sorted(client.list_indexes(name)) == ["price_double", "tag_inv", "vec"]
    finally:
        client.drop_collection(name)
