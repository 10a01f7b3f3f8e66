"""Prepared JSON columns on the read path: results match an oracle as data grows, seals and is
released; their bytes are accounted; get by ids stays right across deletes and upserts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState, QueryRequest, SearchRequest
from sheafdb.engine.read.growing_json import RUN_ROWS, GrowingJsonCache
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

DB = "default"
DIM = 4
SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
    ),
    enable_dynamic_field=True,
)
HNSW = {"index_type": "HNSW", "metric_type": "L2", "M": "8", "efConstruction": "32"}
COLORS = ("red", "green", "blue")


def rows(ids: list[int], colors: list[str], seed: int = 0) -> pa.Table:
    vecs = np.random.default_rng(seed).standard_normal((len(ids), DIM)).astype(np.float32)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), DIM),
            "$meta": pa.array([json.dumps({"color": c, "n": i}) for i, c in zip(ids, colors, strict=True)]),
        }
    )


@pytest.fixture
def engine(tmp_path: Path):
    eng = Engine(EngineConfig(tmp_path / "data", fsync=False, restore_loads=False))
    yield eng
    eng.close()


def wait_loaded(engine: Engine) -> None:
    for _ in range(600):  # bounded: a load that never ends fails the test
        if engine.get_load_state(DB, "c") is LoadState.LOADED:
            return
        time.sleep(0.01)
    raise AssertionError("not loaded")


def red_ids(engine: Engine) -> list[int]:
    result = engine.query(DB, QueryRequest("c", 'color == "red"', output_fields=("id",)))
    return sorted(result.table.column("id").to_pylist())


def runtime_of(engine: Engine):
    coll = engine._resolve(DB, "c")
    return engine._loads._runtime(coll)


def json_bytes(engine: Engine) -> int:
    accountant = engine._accountant
    with accountant._lock:
        return sum(n for key, n in accountant._blocks.items() if key.kind == "json")


def test_dynamic_key_filter_follows_appends_upserts_deletes_seal_and_release(engine: Engine) -> None:
    rng = np.random.default_rng(1)
    oracle: dict[int, str] = {}

    def write(ids: list[int], *, upsert: bool = False) -> None:
        colors = [COLORS[int(c)] for c in rng.integers(0, 3, len(ids))]
        (engine.upsert if upsert else engine.insert)(DB, "c", rows(ids, colors, seed=len(oracle)))
        oracle.update(zip(ids, colors, strict=True))

    def expected() -> list[int]:
        return sorted(i for i, c in oracle.items() if c == "red")

    engine.create_collection(DB, "c", SCHEMA)
    write(list(range(200)))
    engine.flush(DB, ["c"])
    engine.create_index(DB, "c", "vec", "", HNSW)
    engine.wait_for_index_builds(30)
    engine.load_collection(DB, "c")
    wait_loaded(engine)
    assert red_ids(engine) == expected()
    sealed_json = json_bytes(engine)
    assert sealed_json > 0  # the sealed segment's projection is registered once built
    assert red_ids(engine) == expected() and json_bytes(engine) == sealed_json  # reused, not rebuilt

    write(list(range(200, 260)))  # growing rows, then more: each batch parsed once
    assert red_ids(engine) == expected()
    write(list(range(260, 300)))
    write([5, 210, 280], upsert=True)  # upserts across sealed and growing rows
    assert red_ids(engine) == expected()
    engine.delete(DB, "c", "id in [1, 2, 3, 250]")
    for gone in (1, 2, 3, 250):
        oracle.pop(gone)
    assert red_ids(engine) == expected()
    assert len(runtime_of(engine).growing_json) > 0

    engine.flush(DB, ["c"])  # the growing rows become a sealed segment: their cache goes
    engine.wait_for_index_builds(30)
    assert red_ids(engine) == expected()
    assert len(runtime_of(engine).growing_json) == 0

    vec = np.zeros((1, DIM), np.float32)
    hits = engine.search(DB, SearchRequest("c", vec, 10, filter='color == "red"', output_fields=("color",)))
    assert set(hits.ids.to_pylist()) <= set(expected())

    engine.release_collection(DB, "c")
    assert json_bytes(engine) == 0, engine._accountant._blocks
    assert len(runtime_of(engine).growing_json) == 0
    engine.load_collection(DB, "c")
    wait_loaded(engine)
    assert red_ids(engine) == expected()


def test_growing_cache_reuses_old_batches_and_forgets_gone_ones() -> None:
    cache = GrowingJsonCache()
    first = pa.array([json.dumps({"k": i}) for i in range(RUN_ROWS)])
    second = pa.array([json.dumps({"k": -1})])
    old = pa.chunked_array([first])
    grown = pa.chunked_array([first, second])
    prepared_old = cache.column(old)
    prepared_grown = cache.column(grown)
    assert len(prepared_old) == RUN_ROWS and len(prepared_grown) == RUN_ROWS + 1
    assert len(cache) == 2  # the full first run is shared; the new tail is its own run
    cache.retain([pa.table({"$meta": grown})])
    assert len(cache) == 2
    cache.retain([pa.table({"$meta": pa.chunked_array([second])})])  # the first run was sealed
    assert len(cache) == 1
    cache.retain([])
    assert len(cache) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_get_by_ids_matches_an_oracle_across_deletes_upserts_and_seals(engine: Engine, seed: int) -> None:
    rng = np.random.default_rng(seed)
    oracle: dict[int, int] = {}  # id -> n (the version written last)
    engine.create_collection(DB, "c", SCHEMA)
    engine.insert(DB, "c", rows([0], ["red"]))
    oracle[0] = 0
    engine.create_index(DB, "c", "vec", "", HNSW)
    engine.load_collection(DB, "c")
    wait_loaded(engine)
    version = 0
    for step in range(25):
        action = rng.choice(["insert", "upsert", "delete", "flush"], p=[0.35, 0.3, 0.25, 0.1])
        ids = sorted({int(i) for i in rng.integers(0, 60, 5)})
        if action == "flush":
            engine.flush(DB, ["c"])
        elif action == "delete":
            engine.delete(DB, "c", f"id in {ids}")
            for i in ids:
                oracle.pop(i, None)
        else:
            version += 1
            fresh = ids if action == "upsert" else [i for i in ids if i not in oracle]
            if not fresh:
                continue
            table = rows(fresh, ["red"] * len(fresh), seed=step)
            meta = [json.dumps({"color": "red", "n": version}) for _ in fresh]
            table = table.set_column(2, "$meta", pa.array(meta))
            (engine.upsert if action == "upsert" else engine.insert)(DB, "c", table)
            oracle.update(dict.fromkeys(fresh, version))
        wanted = sorted({int(i) for i in rng.integers(0, 60, 10)})
        got = engine.query(DB, QueryRequest("c", ids=wanted, output_fields=("id", "n")))
        pairs = sorted(
            zip(got.table.column("id").to_pylist(), got.table.column("$meta").to_pylist(), strict=True)
        )
        assert [(i, json.loads(m)["n"]) for i, m in pairs] == [(i, oracle[i]) for i in wanted if i in oracle]
        by_filter = engine.query(DB, QueryRequest("c", f"id in {wanted}", output_fields=("count(*)",)))
        assert by_filter.table.column(0).to_pylist() == [sum(i in oracle for i in wanted)]
        combined = engine.query(DB, QueryRequest("c", f"n == {version}", ids=wanted, output_fields=("id",)))
        expected = sorted(i for i in wanted if oracle.get(i) == version)
        assert sorted(combined.table.column("id").to_pylist()) == expected
