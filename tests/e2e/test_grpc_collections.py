"""Catalog RPCs through the real pymilvus MilvusClient: collections, partitions, aliases,
databases, indexes, properties, statistics."""

from __future__ import annotations

import uuid

import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from .conftest import ROOT_TOKEN


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def make_schema(dim: int = 4) -> object:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    return schema


def test_quick_create_describe_list_drop(client: MilvusClient) -> None:
    name = unique("quick")
    client.create_collection(name, dimension=4)
    assert client.has_collection(name)
    assert name in client.list_collections()
    described = client.describe_collection(name)
    assert described["collection_name"] == name
    assert described["enable_dynamic_field"] is True
    fields = {f["name"]: f for f in described["fields"]}
    assert fields["vector"]["params"]["dim"] == 4 and fields["id"]["is_primary"]
    assert client.list_indexes(name) == ["vector"]
    assert client.get_load_state(name)["state"].name == "Loaded"
    client.drop_collection(name)
    assert not client.has_collection(name)


def test_describe_missing_collection_is_code_100(client: MilvusClient) -> None:
    with pytest.raises(MilvusException) as raised:
        client.describe_collection("no_such_collection_here")
    assert raised.value.code == 100
    assert not client.has_collection("no_such_collection_here")


def test_schema_collection_with_index_params(client: MilvusClient) -> None:
    name = unique("schema")
    index_params = client.prepare_index_params()
    index_params.add_index("vec", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
    client.create_collection(name, schema=make_schema(), index_params=index_params)
    index = client.describe_index(name, "vec")
    assert index["index_type"] == "HNSW" and index["metric_type"] == "L2"
    assert index["field_name"] == "vec"
    client.release_collection(name)
    client.drop_index(name, "vec")
    assert client.list_indexes(name) == []
    assert client.describe_index(name, "vec") is None
    client.drop_collection(name)


def test_rename_truncate_properties_stats(client: MilvusClient) -> None:
    name, new_name = unique("ren"), unique("renamed")
    client.create_collection(name, dimension=4)
    client.insert(name, [{"id": i, "vector": [0.1 * i] * 4} for i in range(3)])
    client.flush(name)
    assert client.get_collection_stats(name)["row_count"] == 3
    client.rename_collection(name, new_name)
    assert client.has_collection(new_name) and not client.has_collection(name)
    client.alter_collection_properties(new_name, {"collection.ttl.seconds": "60"})
    assert client.describe_collection(new_name)["properties"]["collection.ttl.seconds"] == "60"
    client.drop_collection_properties(new_name, ["collection.ttl.seconds"])
    assert "collection.ttl.seconds" not in client.describe_collection(new_name)["properties"]
    client.truncate_collection(new_name)
    assert client.get_collection_stats(new_name)["row_count"] == 0
    client.drop_collection(new_name)


def test_partitions(client: MilvusClient) -> None:
    name = unique("parts")
    client.create_collection(name, dimension=4)
    client.create_partition(name, "p1")
    assert client.has_partition(name, "p1")
    assert set(client.list_partitions(name)) == {"_default", "p1"}
    client.insert(name, [{"id": 1, "vector": [1.0, 0, 0, 0]}], partition_name="p1")
    assert client.get_partition_stats(name, "p1")["row_count"] == 1
    client.release_collection(name)
    client.load_partitions(name, ["p1"])
    assert client.get_load_state(name, partition_name="p1")["state"].name == "Loaded"
    client.release_partitions(name, ["p1"])
    client.drop_partition(name, "p1")
    assert not client.has_partition(name, "p1")
    client.drop_collection(name)


def test_aliases(client: MilvusClient) -> None:
    name, other, alias = unique("al"), unique("al2"), unique("alias")
    client.create_collection(name, dimension=4)
    client.create_collection(other, dimension=4)
    client.create_alias(name, alias)
    assert client.describe_alias(alias)["collection_name"] == name
    assert alias in client.list_aliases(name)["aliases"]
    client.insert(alias, [{"id": 7, "vector": [1.0, 0, 0, 0]}])
    assert client.get(alias, ids=[7])[0]["id"] == 7
    client.alter_alias(other, alias)
    assert client.describe_alias(alias)["collection_name"] == other
    client.drop_alias(alias)
    assert alias not in client.list_aliases(other)["aliases"]
    client.drop_collection(name)
    client.drop_collection(other)


def test_databases(server_uri: str) -> None:
    db = unique("db")
    admin = MilvusClient(uri=server_uri, token=ROOT_TOKEN)
    admin.create_database(db)
    assert db in admin.list_databases() and "default" in admin.list_databases()
    assert admin.describe_database(db)["name"] == db
    admin.use_database(db)
    name = unique("indb")
    admin.create_collection(name, dimension=4)
    assert admin.list_collections() == [name]
    admin.drop_collection(name)
    admin.use_database("default")
    admin.drop_database(db)
    assert db not in admin.list_databases()
    with pytest.raises(MilvusException) as raised:
        admin.use_database(db)
    assert raised.value.code == 800


def test_add_collection_field(client: MilvusClient) -> None:
    name = unique("addf")
    client.create_collection(name, dimension=4)
    client.add_collection_field(name, "extra", DataType.INT64, nullable=True)
    fields = {f["name"] for f in client.describe_collection(name)["fields"]}
    assert "extra" in fields
    client.drop_collection(name)
