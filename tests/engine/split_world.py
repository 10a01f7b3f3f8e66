"""Rows split over engines: one engine with them all, two with a share each (cluster reduce tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState, QueryResult, SearchResult
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

DB = "default"
DIM = 8
ROWS = 600
SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
        FieldSchema("vec2", DataType.FLOAT_VECTOR, dim=DIM),
        FieldSchema("num", DataType.INT64),
        FieldSchema("score", DataType.DOUBLE, nullable=True),
        FieldSchema("tag", DataType.VARCHAR, max_length=16),
    )
)


def rows(ids: np.ndarray) -> pa.Table:
    rng = np.random.default_rng(7)
    vec = rng.standard_normal((ROWS, DIM)).astype(np.float32)[ids]
    vec2 = rng.standard_normal((ROWS, DIM)).astype(np.float32)[ids]
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), DIM),
            "vec2": pa.FixedSizeListArray.from_arrays(pa.array(vec2.ravel()), DIM),
            "num": pa.array(ids % 7, pa.int64()),
            "score": pa.array([None if i % 11 == 0 else float(i) / 3 for i in ids], pa.float64()),
            "tag": pa.array([f"t{i % 5}" for i in ids]),
        }
    )


def build(path: Path, ids: np.ndarray) -> Engine:
    """An engine holding ``ids``: two sealed segments and growing rows."""
    engine = Engine(EngineConfig(path, fsync=False, restore_loads=False))
    engine.create_collection(DB, "c", SCHEMA)
    thirds = np.array_split(ids, 3)
    for part in thirds[:2]:
        engine.insert(DB, "c", rows(part))
        engine.flush(DB, ["c"])
    engine.create_index(DB, "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
    engine.create_index(DB, "c", "vec2", "", {"index_type": "FLAT", "metric_type": "IP"})
    engine.wait_for_index_builds(60)
    engine.load_collection(DB, "c")
    engine.wait_for_loads(60)
    assert engine.get_load_state(DB, "c") is LoadState.LOADED
    engine.insert(DB, "c", rows(thirds[2]))  # growing
    return engine


def split_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Engine, Engine]]:
    everything = np.arange(ROWS)
    shuffled = np.random.default_rng(3).permutation(ROWS)
    whole = build(tmp_path_factory.mktemp("whole"), everything)
    left = build(tmp_path_factory.mktemp("left"), np.sort(shuffled[: ROWS // 3]))
    right = build(tmp_path_factory.mktemp("right"), np.sort(shuffled[ROWS // 3 :]))
    yield whole, left, right
    for engine in (whole, left, right):
        engine.close()


def query_vectors(nq: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((nq, DIM)).astype(np.float32)


def assert_same_search(got: SearchResult, want: SearchResult) -> None:
    assert got.topks.tolist() == want.topks.tolist()
    assert got.ids.to_pylist() == want.ids.to_pylist()
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-6)
    assert got.output_fields == want.output_fields
    assert got.fields.to_pydict() == want.fields.to_pydict()
    if want.group_by_values is not None:
        assert got.group_by_values is not None
        assert got.group_by_values.to_pylist() == want.group_by_values.to_pylist()


def assert_same_query(got: QueryResult, want: QueryResult) -> None:
    assert got.output_fields == want.output_fields
    assert got.table.to_pydict() == want.table.to_pydict()
