"""A partial load from S3 fetches only the objects of the listed fields (counted by the server)."""

from __future__ import annotations

import dataclasses
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState, SearchRequest
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.s3_store import S3Store
from tests.services import S3Server

pytestmark = pytest.mark.cluster

DB = "default"
DIM = 8
SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
        FieldSchema("title", DataType.VARCHAR, max_length=64),
        FieldSchema("body", DataType.VARCHAR, max_length=4096),
    ),
    enable_dynamic_field=True,
)
HNSW = {"index_type": "HNSW", "metric_type": "L2", "M": "8", "efConstruction": "32"}
SEGMENTS, PER_SEGMENT = 2, 100


def batch(start: int) -> pa.Table:
    vectors = np.random.default_rng(start).random((PER_SEGMENT, DIM), dtype=np.float32)
    ids = range(start, start + PER_SEGMENT)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
            "title": [f"title {i}" for i in ids],
            "body": ["x" * 2000 for _ in ids],
        }
    )


def wait_loaded(engine: Engine) -> None:
    for _ in range(3000):  # bounded: a load that never ends fails the test
        if engine.get_load_state(DB, "c") is LoadState.LOADED:
            return
        time.sleep(0.01)
    raise AssertionError(f"not loaded: {engine.get_load_state(DB, 'c')}")


def test_a_partial_load_fetches_only_the_listed_fields(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_server.credentials_env().items():
        monkeypatch.setenv(key, value)
    bucket = f"sheafdb-load-{uuid.uuid4().hex[:8]}"
    url = s3_server.url(bucket, "db") + "&allow_bucket_creation=true"
    config = EngineConfig(tmp_path / "data", fsync=False, restore_loads=False, objects_url=url)
    engine = Engine(config)
    try:
        engine.create_collection(DB, "c", SCHEMA)
        for segment in range(SEGMENTS):
            engine.insert(DB, "c", batch(segment * PER_SEGMENT))
            engine.flush(DB, ["c"])
        engine.create_index(DB, "c", "vec", "", HNSW)
        assert engine.wait_for_index_builds(60)
    finally:
        engine.close()
    cache = tmp_path / "data" / "object-cache"
    shutil.rmtree(cache)  # cold: as on a machine that has never read this collection

    engine = Engine(config)
    try:
        cached_at_start = {p for p in cache.rglob("*") if p.is_file()}  # the catalog identity
        before = s3_server.get_requests(bucket, code="206")
        engine.load_collection(DB, "c", load_fields=["id", "vec"], skip_load_dynamic_field=True)
        wait_loaded(engine)
        reads = s3_server.get_requests(bucket, code="206") - before
        fetched = {p for p in cache.rglob("*") if p.is_file()} - cached_at_start
        query = batch(0).column("vec").combine_chunks().values.to_numpy().reshape(-1, DIM)[7]
        found = engine.search(DB, SearchRequest("c", query.reshape(1, -1), 3)).ids.to_pylist()
        assert found[0] == 7
    finally:
        engine.close()
    # Per segment: the listed fields, the timestamps and the index of "vec"; nothing else.
    names = sorted(p.name for p in fetched)
    index_files = [n for n in names if not n.endswith(".arrow")]
    assert len(index_files) == SEGMENTS
    assert sorted(set(names) - set(index_files)) == ["__ts.arrow", "id.arrow", "vec.arrow"]
    assert len(names) == SEGMENTS * 4
    # And the server read each of them once: one object read per fetched object, no more.
    assert reads == len(fetched)
    # The other fields are there, unread.
    listed = S3Store.from_url(url, tmp_path / "probe").list("collections")
    assert sum(p.endswith("/body.arrow") for p in listed) == SEGMENTS


def test_a_bounded_cache_evicts_what_no_load_maps_and_reloads_it(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_server.credentials_env().items():
        monkeypatch.setenv(key, value)
    bucket = f"sheafdb-bound-{uuid.uuid4().hex[:8]}"
    url = s3_server.url(bucket, "db") + "&allow_bucket_creation=true"
    cache = tmp_path / "data" / "object-cache"

    def cached() -> dict[Path, int]:
        return {p: p.stat().st_size for p in cache.rglob("*") if p.is_file()}

    config = EngineConfig(tmp_path / "data", fsync=False, restore_loads=False, objects_url=url)
    engine = Engine(config)
    try:
        for name in ("a", "b"):
            engine.create_collection(DB, name, SCHEMA)
            for segment in range(SEGMENTS):
                engine.insert(DB, name, batch(segment * PER_SEGMENT))
                engine.flush(DB, [name])
            engine.create_index(DB, name, "vec", "", HNSW)
        assert engine.wait_for_index_builds(60)
        # b's loads map its column files (a's read them into the heap): those must stay put.
        engine.alter_collection_properties(DB, "b", {"mmap.enabled": "true"})
    finally:
        engine.close()
    total = sum(cached().values())
    shutil.rmtree(cache)
    bound = total * 6 // 10  # more than one collection's files, less than both
    engine = Engine(dataclasses.replace(config, object_cache_bytes=bound))
    try:
        engine.load_collection(DB, "a")
        wait_loaded_named(engine, "a")
        loaded_a = set(cached())
        engine.release_collection(DB, "a")
        engine.load_collection(DB, "b")
        wait_loaded_named(engine, "b")
        assert sum(cached().values()) <= bound
        loaded_b = set(cached()) - loaded_a
        assert loaded_b and loaded_a - set(cached())  # some of a's files went to make room
        # While b is loaded, every file it maps stays, whatever is read next.
        # a's evicted files are fetched again (the search below reads a's reloaded data).
        engine.load_collection(DB, "a")
        wait_loaded_named(engine, "a")
        assert sum(cached().values()) <= bound  # what b pins is under the bound: room to evict
        # b's mapped field files were never evicted under it (4 fields and $meta;
        # its timestamps are in the heap).
        mapped_b = {p for p in loaded_b if p.name.endswith(".arrow") and p.name != "__ts.arrow"}
        assert len(mapped_b) == SEGMENTS * 5 and mapped_b <= set(cached())
        query = batch(0).column("vec").combine_chunks().values.to_numpy().reshape(-1, DIM)[7]
        for name in ("a", "b"):
            found = engine.search(DB, SearchRequest(name, query.reshape(1, -1), 3)).ids.to_pylist()
            assert found[0] == 7
    finally:
        engine.close()


def wait_loaded_named(engine: Engine, name: str) -> None:
    for _ in range(3000):  # bounded: a load that never ends fails the test
        if engine.get_load_state(DB, name) is LoadState.LOADED:
            return
        time.sleep(0.01)
    raise AssertionError(f"not loaded: {engine.get_load_state(DB, name)}")
