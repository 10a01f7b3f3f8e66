"""How a proxy finds where a write goes: the collection named in the request's bytes, its id in
the catalog, and the holder of its ``log/<id>`` lease (api/cluster/log_owner_target.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from sheafdb.api.cluster.log_owner_target import (
    CACHE_S,
    LogOwnerTarget,
    grpc_collection,
    rest_collection,
)
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.catalog import DEFAULT_DATABASE, Catalog, open_catalog
from sheafdb.storage.lease_rows import log_lease_name
from sheafdb.storage.records import CollectionRecord

SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, field_id=100, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, field_id=101, dim=4),
    )
)


def _rows(count: int) -> list[schema_pb2.FieldData]:
    vectors = np.random.default_rng(3).random((count, 4), dtype=np.float32)
    ids = schema_pb2.FieldData(type=schema_pb2.DataType.Int64, field_name="id")
    ids.scalars.long_data.data.extend(range(count))
    vec = schema_pb2.FieldData(type=schema_pb2.DataType.FloatVector, field_name="vec")
    vec.vectors.dim = 4
    vec.vectors.float_vector.data.extend(vectors.ravel().tolist())
    return [ids, vec]


@pytest.mark.parametrize("message", [milvus_pb2.InsertRequest, milvus_pb2.UpsertRequest])
def test_the_collection_is_read_from_a_row_request_without_its_rows(message: type) -> None:
    request = message(db_name="books", collection_name="novels", partition_name="p", num_rows=5000)
    request.base.msg_type = 400  # field 1 comes first on the wire, and is skipped
    request.fields_data.extend(_rows(5000))
    assert grpc_collection(request.SerializeToString()) == ("books", "novels")


def test_a_delete_names_its_collection_and_an_empty_database_stays_empty() -> None:
    request = milvus_pb2.DeleteRequest(collection_name="novels", expr="id in [1]")
    assert grpc_collection(request.SerializeToString()) == ("", "novels")


@pytest.mark.parametrize("raw", [b"", b"\xff\xff\xff", b"\x1a\x90\x4e" + b"x" * 3, b"\x0b\x0c", b"\x1a"])
def test_bytes_that_are_no_such_request_name_no_collection(raw: bytes) -> None:
    # The handler that gets them refuses them: here they only must not raise.
    db, name = grpc_collection(raw)
    assert isinstance(db, str) and isinstance(name, str)


def test_a_rest_body_names_its_collection() -> None:
    body = json.dumps({"dbName": "books", "collectionName": "novels", "data": [{"id": 1}]}).encode()
    assert rest_collection(body) == ("books", "novels")
    assert rest_collection(b'{"collectionName": "novels"}') == ("", "novels")
    assert rest_collection(b"not json") == ("", "")
    assert rest_collection(b"[1, 2]") == ("", "")
    assert rest_collection(b'{"dbName": 7, "collectionName": ["x"]}') == ("", "")


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = open_catalog(None, tmp_path / "meta")
    yield cat
    cat.close()


def _collection(catalog: Catalog, name: str) -> CollectionRecord:
    return catalog.create_collection(
        DEFAULT_DATABASE, name, SCHEMA, partition_names=["_default"], properties={},
        consistency_level=2, shards_num=1, created_ts=10,
    )  # fmt: skip


def test_a_write_goes_to_the_live_owner_of_its_collections_log(catalog: Catalog) -> None:
    novels = _collection(catalog, "novels")
    poems = _collection(catalog, "poems")
    catalog.create_alias(DEFAULT_DATABASE, "verse", poems.collection_id)
    target = LogOwnerTarget(catalog)
    # Nobody owns the logs yet: the coordinator takes the write (None).
    assert target.address("", "novels") is None
    assert catalog.try_acquire_lease(log_lease_name(novels.collection_id), "w1:19530", 30.0) is not None
    assert catalog.try_acquire_lease(log_lease_name(poems.collection_id), "w2:19530", 30.0) is not None
    assert target.address("", "novels", fresh=True) == "w1:19530"
    assert target.address(DEFAULT_DATABASE, "poems") == "w2:19530"
    assert target.address(DEFAULT_DATABASE, "verse") == "w2:19530"  # an alias: its collection's owner
    # Unknown collections and databases: the coordinator answers Milvus's error.
    assert target.address("", "missing") is None
    assert target.address("nodb", "novels") is None


def test_an_owner_is_remembered_briefly_and_read_afresh_after_a_failure(catalog: Catalog) -> None:
    novels = _collection(catalog, "novels")
    name = log_lease_name(novels.collection_id)
    first = catalog.try_acquire_lease(name, "w1:19530", 0.5)
    assert first is not None
    clock = Clock(first.expires_at - 0.4)
    target = LogOwnerTarget(catalog, clock=clock)
    assert target.address("", "novels") == "w1:19530"
    # The first owner is gone: its lease expired, another writer took it.
    catalog.release_lease(first)
    second = catalog.try_acquire_lease(name, "w2:19530", 30.0)
    assert second is not None
    assert target.address("", "novels") == "w1:19530"  # remembered for CACHE_S
    assert target.address("", "novels", fresh=True) == "w2:19530"  # a failed call asks again
    catalog.release_lease(second)
    clock.now += CACHE_S + 0.01
    assert target.address("", "novels") is None  # expired: no owner, the coordinator takes it
