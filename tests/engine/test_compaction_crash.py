"""Crashes inside a compaction of an indexed collection (crash_points.py): a real engine in a
subprocess dies with os._exit once the merged segment and its index files are written (not
swapped), or right after the swap; a restart keeps every row once, removes every file the
catalog does not name, and the index stays Finished."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from sheafdb.engine.engine import Engine
from sheafdb.engine.models import IndexState
from sheafdb.engine.write import crash_points

DRIVER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import numpy as np, pyarrow as pa
    from sheafdb.engine.config import EngineConfig
    from sheafdb.engine.engine import Engine
    from sheafdb.schema import CollectionSchema, DataType, FieldSchema

    data_dir, crash_at = Path(sys.argv[1]), sys.argv[2]
    engine = Engine(EngineConfig(data_dir=data_dir, restore_loads=False, compaction_min_segments=None))
    schema = CollectionSchema(fields=(
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=4),
    ))
    engine.create_collection("default", "c", schema)
    engine.create_index("default", "c", "vec", "", {"index_type": "HNSW", "metric_type": "L2", "M": "8"})
    rng = np.random.default_rng(0)
    for start in range(0, 400, 100):
        vec = rng.random((100, 4), dtype=np.float32).ravel()
        engine.insert("default", "c", pa.table({
            "id": pa.array(range(start, start + 100), pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vec), 4)}))
        engine.flush("default", ["c"])
    engine.delete("default", "c", "id in [7, 250]")
    assert engine.wait_for_index_builds(60)
    os.environ["SHEAFDB_TEST_CRASH_AT"] = crash_at
    engine.compact("default", "c")
    engine.close()
    """
)

EXPECTED = [i for i in range(400) if i not in (7, 250)]


def _drive(data_dir: Path, crash_at: str) -> int:
    script = data_dir.parent / "driver.py"
    script.write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k != crash_points.CRASH_ENV}
    return subprocess.run(
        [sys.executable, str(script), str(data_dir), crash_at], env=env, check=False
    ).returncode


def _unnamed_files(engine: Engine) -> list[str]:
    """Files under collections/ that no catalog record names (columns, deletes, index files)."""
    named: set[str] = set()
    for record in engine._catalog.list_collections():
        for seg in engine._catalog.list_segments(record.collection_id):
            named.update(c.path for c in seg.columns.values())
            if seg.deletes_path:
                named.add(seg.deletes_path)
        named.update(i.path for i in engine._catalog.list_segment_indexes(record.collection_id))
    return sorted(set(engine._store.list("collections")) - named)


@pytest.mark.parametrize("point", [crash_points.COMPACT_AFTER_INDEX_FILES, crash_points.COMPACT_AFTER_SWAP])
def test_crash_inside_an_indexed_compaction(
    tmp_path: Path, open_engine: Callable[..., Engine], kit, point: str
) -> None:
    data = tmp_path / "data"
    assert _drive(data, point) == crash_points.CRASH_EXIT_CODE
    engine = open_engine(compaction_min_segments=None)
    assert _unnamed_files(engine) == []
    assert kit.visible_ids(engine, "c") == EXPECTED
    sealed = engine._resolve("default", "c").snapshot().sealed
    # Before the swap: the four old segments, each still indexed; after: the merged one, indexed.
    assert len(sealed) == (4 if point == crash_points.COMPACT_AFTER_INDEX_FILES else 1)
    assert all("vec" in s.index_files for s in sealed)
    assert engine.describe_indexes("default", "c")[0].state is IndexState.FINISHED
    if point == crash_points.COMPACT_AFTER_SWAP:
        assert sealed[0].num_rows == len(EXPECTED)
    assert engine.compact("default", "c") == (4 if point == crash_points.COMPACT_AFTER_INDEX_FILES else 0)
    engine.close()
    again = open_engine(compaction_min_segments=None)
    assert kit.visible_ids(again, "c") == EXPECTED
    assert _unnamed_files(again) == []
