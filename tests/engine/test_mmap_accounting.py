"""``mmap.enabled`` in the accountant: mapped columns are reported apart from resident bytes,
do not count against the budget, and leave with the release."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from sheafdb.engine.engine import Engine
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

ROWS, DIM = 5000, 16


def _collection(report: Any) -> Any:
    (entry,) = report["collections"].values()
    return entry


def test_mapped_columns_are_counted_apart_and_released(open_engine: Callable[..., Engine]) -> None:
    e = open_engine(compaction_min_segments=None)
    schema = CollectionSchema(
        fields=(
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
            FieldSchema("num", DataType.INT64, type_params={"mmap.enabled": "false"}),
        )
    )
    e.create_collection("default", "m", schema)
    vectors = np.random.default_rng(0).random((ROWS, DIM), dtype=np.float32)
    e.insert(
        "default",
        "m",
        pa.table(
            {
                "id": pa.array(np.arange(ROWS), pa.int64()),
                "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
                "num": pa.array(np.arange(ROWS), pa.int64()),
            }
        ),
    )
    e.flush("default", ["m"])
    e.create_index("default", "m", "vec", "vec", {"index_type": "FLAT", "metric_type": "L2"})
    e.wait_for_index_builds(60)
    e.load_collection("default", "m")
    e.wait_for_loads(60)
    read = _collection(e.memory_report())
    assert read["mapped_bytes"] == 0
    e.release_collection("default", "m")

    e.alter_collection_properties("default", "m", {"mmap.enabled": "true"})
    e.load_collection("default", "m")
    e.wait_for_loads(60)
    report = e.memory_report()
    mapped = _collection(report)
    # The collection-wide setting maps id and vec; num's own "false" wins for num.
    assert set(mapped["mapped"]) == {"id", "vec"}
    assert mapped["mapped"]["vec"] == read["fields"]["vec"]
    assert mapped["bytes"] == read["bytes"] - read["fields"]["id"] - read["fields"]["vec"]
    assert report["used_bytes"] == mapped["bytes"]  # the budget sees only resident bytes
    assert "num" in mapped["fields"]
    freed = e.release_collection("default", "m")
    assert freed == mapped["bytes"]
    after = e.memory_report()
    assert after["used_bytes"] == 0 and after["mapped_bytes"] == 0
