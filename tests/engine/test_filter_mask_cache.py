"""Cached filter masks through a real Engine: upserts and compaction never serve a stale mask,
and the masks' bytes are registered with the memory accountant, bounded, and given back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.load.loaded_segment import ALLOWED_MASKS_KEPT
from sheafdb.engine.models import LoadState, SearchRequest
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

DIM = 8
DB, NAME = "default", "c"
ROWS = 300


def rows(ids: list[int], vectors: np.ndarray, nums: list[int] | None = None) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
            "num": pa.array([i % 10 for i in ids] if nums is None else nums, pa.int64()),
        }
    )


def wait_loaded(eng: Engine) -> None:
    for _ in range(600):  # bounded: a load that never ends fails the test
        if eng.get_load_state(DB, NAME) is LoadState.LOADED:
            return
        time.sleep(0.01)
    raise AssertionError("not loaded")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(EngineConfig(tmp_path, fsync=False, restore_loads=False, compaction_min_segments=None))
    schema = CollectionSchema(
        (
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
            FieldSchema("num", DataType.INT64),
        )
    )
    eng.create_collection(DB, NAME, schema)
    vectors = np.random.default_rng(0).random((ROWS, DIM), dtype=np.float32)
    eng.insert(DB, NAME, rows(list(range(ROWS)), vectors))
    eng.flush(DB, [NAME])
    eng.create_index(DB, NAME, "vec", "", {"index_type": "HNSW", "metric_type": "L2", "M": "8"})
    eng.wait_for_index_builds(60)
    eng.load_collection(DB, NAME)
    wait_loaded(eng)
    yield eng
    eng.close()


def search_ids(eng: Engine, query: np.ndarray, flt: str, limit: int = 5) -> list[int]:
    result = eng.search(DB, SearchRequest(NAME, query.reshape(1, -1), limit, filter=flt, params={"ef": 64}))
    return result.ids.to_pylist()


def mask_bytes(eng: Engine) -> int:
    report = eng.memory_report()["collections"]  # type: ignore[index]
    return sum(c["fields"].get("filter masks", 0) for c in report.values())


def test_upsert_after_cached_filters_moves_the_row_between_them(engine: Engine) -> None:
    target = np.full(DIM, 4.0, dtype=np.float32)  # far outside the unit cube
    assert 17 not in search_ids(engine, target, "num == 3")
    assert search_ids(engine, target, "num == 7")  # both masks cached before the upsert
    engine.upsert(DB, NAME, rows([17], target.reshape(1, -1), nums=[3]))
    assert search_ids(engine, target, "num == 3")[0] == 17
    assert 17 not in search_ids(engine, target, "num == 7", limit=50)
    engine.flush(DB, [NAME])  # the new row sealed: still the same answers
    assert search_ids(engine, target, "num == 3")[0] == 17
    assert 17 not in search_ids(engine, target, "num == 7", limit=50)


def test_compaction_after_a_cached_filter_serves_the_merged_rows(engine: Engine) -> None:
    rng = np.random.default_rng(5)
    extra = rng.random((100, DIM), dtype=np.float32)
    engine.insert(DB, NAME, rows(list(range(ROWS, ROWS + 100)), extra))
    engine.flush(DB, [NAME])
    engine.wait_for_index_builds(60)
    target = np.full(DIM, 0.5, dtype=np.float32)
    before = search_ids(engine, target, "num < 4", limit=20)
    engine.delete(DB, NAME, f"id in [{before[0]}, {before[1]}]")
    assert engine.compact(DB, NAME) == 2
    engine.wait_for_index_builds(60)
    engine.wait_for_loads(60)  # the merged segment installed (it was handed off meanwhile)
    after = search_ids(engine, target, "num < 4", limit=18)
    assert after == before[2:]  # every row scanned exactly (few rows): same order, two gone
    assert mask_bytes(engine) == ROWS + 100 - 2  # only the merged segment's mask is counted


def test_masks_are_accounted_bounded_and_given_back(engine: Engine) -> None:
    target = np.full(DIM, 0.5, dtype=np.float32)
    assert mask_bytes(engine) == 0
    search_ids(engine, target, "num >= 1")
    assert mask_bytes(engine) == ROWS
    search_ids(engine, target, "num >= 1")  # the same mask, not another
    assert mask_bytes(engine) == ROWS
    for bound in range(2, 2 + ALLOWED_MASKS_KEPT + 3):
        search_ids(engine, target, f"num >= {bound}")
    assert mask_bytes(engine) == ALLOWED_MASKS_KEPT * ROWS
    engine.release_collection(DB, NAME)
    assert mask_bytes(engine) == 0
