"""``sheafdb.online_load_change=true`` against the real server: ``load_collection`` with another
``load_fields`` on a loaded collection reconciles while it serves; a concurrent search loop
sees no error, added fields become usable, removed ones are released."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

DIM = 8


def tag_is_served(client: MilvusClient, name: str) -> bool:
    try:
        client.query(name, filter="id < 3", output_fields=["tag"])
        return True
    except MilvusException:
        return False


def test_a_field_change_while_loaded_fails_no_read(client: MilvusClient) -> None:
    name = "online_change"
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
    client.create_collection(name, schema=schema, index_params=index)
    client.release_collection(name)
    client.alter_collection_properties(name, properties={"sheafdb.online_load_change": "true"})
    vectors = np.random.default_rng(3).random((3000, DIM), dtype=np.float32)
    for start in (0, 1500):  # two sealed segments
        client.insert(
            name,
            [{"id": i, "vec": vectors[i].tolist(), "tag": f"t{i % 5}"} for i in range(start, start + 1500)],
        )
        client.flush(name)
    client.load_collection(name, load_fields=["id", "vec"])
    assert not tag_is_served(client, name)

    stop = threading.Event()
    errors: list[str] = []
    reads = [0]

    def search_loop() -> None:
        while not stop.is_set():
            try:
                hits = client.search(
                    name, [vectors[7].tolist()], limit=3, filter="id >= 0", output_fields=["id"]
                )
                assert hits[0][0]["id"] == 7
                reads[0] += 1
            except MilvusException as exc:
                errors.append(f"{exc.code}: {exc.message}")

    thread = threading.Thread(target=search_loop)
    thread.start()
    try:
        # pymilvus's load_collection waits for a progress of 100: the change is done by then.
        client.load_collection(name, load_fields=["id", "vec", "tag"])
        assert tag_is_served(client, name)
        rows = client.query(name, filter="id in [1, 2]", output_fields=["tag"])
        assert sorted(r["tag"] for r in rows) == ["t1", "t2"]
        client.load_collection(name, load_fields=["id", "vec"])
        assert not tag_is_served(client, name)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert reads[0] > 0
    assert client.get_load_state(name)["state"].name == "Loaded"
    client.drop_collection(name)


def test_without_the_property_a_field_change_is_milvus_error(client: MilvusClient) -> None:
    name = "offline_change"
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    client.release_collection(name)
    client.load_collection(name, load_fields=["id", "vec"])
    with pytest.raises(MilvusException) as err:
        client.load_collection(name, load_fields=["id", "vec", "tag"])
    assert "can't change the load field list for loaded collection" in err.value.message
    client.drop_collection(name)
