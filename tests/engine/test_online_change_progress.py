"""An online load change (``sheafdb.online_load_change``) keeps the collection Loaded and
serving, but its loading progress stays below 100 until the loader has published the new
fields: a client that waits for 100 (pymilvus's ``load_collection``) can use them on return."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

DB, NAME, ROWS, DIM = "default", "c", 500, 8


def test_progress_is_100_only_once_the_new_fields_are_installed(open_engine: Callable[..., Engine]) -> None:
    e = open_engine(compaction_min_segments=None)
    schema = CollectionSchema(
        (
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
            FieldSchema("tag", DataType.VARCHAR, max_length=16),
        )
    )
    e.create_collection(DB, NAME, schema)
    e.alter_collection_properties(DB, NAME, {"sheafdb.online_load_change": "true"})
    vectors = np.random.default_rng(0).random((ROWS, DIM), dtype=np.float32)
    e.insert(
        DB,
        NAME,
        pa.table(
            {
                "id": pa.array(np.arange(ROWS), pa.int64()),
                "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
                "tag": pa.array([f"t{i % 3}" for i in range(ROWS)]),
            }
        ),
    )
    e.flush(DB, [NAME])
    e.create_index(DB, NAME, "vec", "vec", {"index_type": "FLAT", "metric_type": "L2"})
    e.wait_for_index_builds(60)
    e.load_collection(DB, NAME, load_fields=["id", "vec"])
    assert e.wait_for_loads(60)
    assert e.get_loading_progress(DB, NAME).progress == 100

    runtime = e._loads._runtime(e._resolve(DB, NAME))
    with runtime.reconciling:  # the loader cannot run its pass: the change stays pending
        e.load_collection(DB, NAME, load_fields=["id", "vec", "tag"])
        assert e.get_load_state(DB, NAME) is LoadState.LOADED  # serving the old fields meanwhile
        assert e.get_loading_progress(DB, NAME).progress == 99
    e._loads.loader.poke(runtime)
    assert e.wait_for_loads(60)
    assert e.get_loading_progress(DB, NAME).progress == 100
    assert "tag" in e._loads.loaded_fields(e._resolve(DB, NAME))
