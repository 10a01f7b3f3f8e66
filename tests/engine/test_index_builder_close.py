"""Closing the engine does not wait for index builds (index_builds.py): a server stops in
seconds while an HNSW build of minutes is running; what was not built is built at the next
start, and a compaction waiting on a detached build gives up."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import CancelledError

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.engine import Engine
from sheafdb.engine.models import IndexState
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

DIM = 32
ROWS = 40_000
# Sized so that one build takes seconds here (M=32, efConstruction=400 on 40k x 32-d: ~5 s on
# two idle cores): far longer than close() lets a running build go on.
SLOW_HNSW = {"index_type": "HNSW", "metric_type": "L2", "M": "32", "efConstruction": "400"}


def _schema() -> CollectionSchema:
    return CollectionSchema(
        fields=(
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
        )
    )


def _rows() -> pa.Table:
    vectors = np.random.default_rng(0).random((ROWS, DIM), dtype=np.float32)
    return pa.table(
        {
            "id": pa.array(np.arange(ROWS), type=pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
        }
    )


def _wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(6000):
        if condition():
            return
        time.sleep(0.005)
    pytest.fail("condition never held")


def test_close_leaves_a_running_build_and_the_next_start_builds_it(
    open_engine: Callable[..., Engine],
) -> None:
    e = open_engine(compaction_min_segments=None)
    e.create_collection("default", "c", _schema())
    e.insert("default", "c", _rows())
    e.flush("default", ["c"])
    e.create_index("default", "c", "vec", "vec", SLOW_HNSW)
    builder = e._builder
    _wait_until(lambda: builder._running is not None)

    e.close()

    # close() returned while the build was still running: it did not wait for it.
    assert builder._worker.is_alive()
    builder._worker.join()  # the abandoned build ends; its file was not registered

    again = open_engine(compaction_min_segments=None)
    assert again.wait_for_index_builds(timeout=600)
    (info,) = again.describe_indexes("default", "c")
    assert info.state is IndexState.FINISHED and info.indexed_rows == ROWS


def test_a_detached_build_waited_on_is_cancelled_by_close(open_engine: Callable[..., Engine]) -> None:
    e = open_engine(compaction_min_segments=None)
    e.create_collection("default", "c", _schema())
    e.insert("default", "c", _rows())
    e.flush("default", ["c"])
    e.create_index("default", "c", "vec", "vec", SLOW_HNSW)
    coll = e._resolve("default", "c")
    segment, index = coll.snapshot().sealed[0], coll.indexes[0]
    builder = e._builder
    queued = builder.build_detached(coll, segment, index)  # behind the regular build
    _wait_until(lambda: builder._running is not None)

    builder.close()

    with pytest.raises(CancelledError):
        queued.result(timeout=0)
    with pytest.raises(CancelledError):  # and any asked for after close
        builder.build_detached(coll, segment, index).result(timeout=0)
    builder._worker.join()
