"""Each window of a seal and a compaction, crashed at deliberately (crash_points.py): a real
engine in a subprocess dies with os._exit at the named point; a restart must show every
acknowledged write exactly once, and leave no file the catalog does not name."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from sheafdb.engine.engine import Engine
from sheafdb.engine.write import crash_points

# Phase "seal": rows in two partitions, deletes and upserts in both, then a flush that dies.
# Phase "compact": four small segments and a deletes file, then a compaction that dies.
DRIVER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import numpy as np, pyarrow as pa
    from sheafdb.engine.config import EngineConfig
    from sheafdb.engine.engine import Engine
    from sheafdb.schema import CollectionSchema, DataType, FieldSchema

    data_dir, phase, crash_at = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    engine = Engine(EngineConfig(data_dir=data_dir, restore_loads=False, compaction_min_segments=None))

    def rows(ids, value):
        vec = np.full((len(ids), 4), value, dtype=np.float32).ravel()
        return pa.table({"id": pa.array(ids, pa.int64()),
                         "vec": pa.FixedSizeListArray.from_arrays(pa.array(vec), 4)})

    if phase == "seal":
        schema = CollectionSchema(fields=(
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=4),
        ))
        engine.create_collection("default", "c", schema)
        engine.create_partition("default", "c", "p1")
        engine.insert("default", "c", rows(list(range(10)), 0.0))
        engine.insert("default", "c", rows(list(range(100, 110)), 0.0), partition="p1")
        engine.flush("default", ["c"])
        engine.insert("default", "c", rows(list(range(10, 20)), 0.0))
        engine.insert("default", "c", rows(list(range(110, 120)), 0.0), partition="p1")
        engine.delete("default", "c", "id in [3, 13, 105, 115]")
        engine.upsert("default", "c", rows([4, 14], 1.0))
        engine.upsert("default", "c", rows([104, 114], 1.0), partition="p1")
        os.environ["SHEAFDB_TEST_CRASH_AT"] = crash_at
        engine.flush("default", ["c"])
    elif phase == "routed":
        schema = CollectionSchema(fields=(
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=4),
            FieldSchema("key", DataType.INT64, is_partition_key=True),
        ))
        engine.create_collection("default", "c", schema, num_partitions=4)
        def keyed(ids, value):
            return rows(ids, value).append_column("key", pa.array(ids, pa.int64()))
        engine.insert("default", "c", keyed(list(range(8)), 0.0))
        engine.flush("default", ["c"])
        engine.insert("default", "c", keyed(list(range(8, 16)), 0.0))
        os.environ["SHEAFDB_TEST_CRASH_AT"] = crash_at
        # Spans all four partitions, replaces 2..5 (two sealed, two growing partitions' rows).
        engine.upsert("default", "c", keyed([2, 3, 4, 5, 16, 17, 18, 19], 1.0))
    elif phase == "truncate":
        engine.insert("default", "c", rows(list(range(200, 210)), 0.0))  # growing, in the log
        engine.delete("default", "c", "id in [0]")
        os.environ["SHEAFDB_TEST_CRASH_AT"] = crash_at
        engine.truncate_collection("default", "c")
    else:
        for start in range(20, 60, 10):
            engine.insert("default", "c", rows(list(range(start, start + 10)), 0.0))
            engine.flush("default", ["c"])
        engine.delete("default", "c", "id in [21, 45]")
        engine.flush("default", ["c"])
        os.environ["SHEAFDB_TEST_CRASH_AT"] = crash_at
        engine.compact("default", "c")
    engine.close()
    """
)

SEAL_POINTS = [
    crash_points.SEAL_AFTER_DELETES_FILE,
    crash_points.SEAL_AFTER_SEGMENT_FILES,
    crash_points.SEAL_AFTER_FIRST_SEGMENT,
    crash_points.SEAL_BEFORE_TRIM,
]
COMPACT_POINTS = [crash_points.COMPACT_AFTER_WRITE, crash_points.COMPACT_AFTER_SWAP]
TRUNCATE_POINTS = [crash_points.TRUNCATE_AFTER_LOG, crash_points.TRUNCATE_BEFORE_TRIM]

SEAL_EXPECTED = sorted(set(range(20)) - {3, 13} | set(range(100, 120)) - {105, 115})
COMPACT_EXPECTED = sorted(set(SEAL_EXPECTED) | set(range(20, 60)) - {21, 45})


def _drive(data_dir: Path, phase: str, crash_at: str | None) -> int:
    script = data_dir.parent / "driver.py"
    script.write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k != crash_points.CRASH_ENV}
    argv = [sys.executable, str(script), str(data_dir), phase, crash_at or "none"]
    return subprocess.run(argv, env=env, check=False).returncode


def _check(engine: Engine, kit, expected: list[int]) -> None:
    table = kit.visible_table(engine, "default", "c")
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)), "a row is visible twice"
    assert sorted(ids) == expected
    # Upserted rows carry their new vectors (the old versions are hidden).
    vectors = dict(zip(ids, table.column("vec").to_pylist(), strict=True))
    assert all(vectors[i][0] == 1.0 for i in (4, 14, 104, 114))


def _unregistered_files(engine: Engine) -> list[str]:
    named: set[str] = set()
    for record in engine._catalog.list_collections():
        for seg in engine._catalog.list_segments(record.collection_id):
            named.update(c.path for c in seg.columns.values())
            if seg.deletes_path:
                named.add(seg.deletes_path)
    on_disk = set(engine._store.list("collections"))
    dirs = {p.name for p in (engine._store.root / "collections").glob("*/segments/*")}
    registered = {
        seg.directory.rsplit("/", 1)[-1]
        for r in engine._catalog.list_collections()
        for seg in engine._catalog.list_segments(r.collection_id)
    }
    return sorted(on_disk - named) + sorted(dirs - registered)


@pytest.mark.parametrize("point", SEAL_POINTS)
def test_crash_inside_a_seal(tmp_path: Path, open_engine: Callable[..., Engine], kit, point: str) -> None:
    data = tmp_path / "data"
    assert _drive(data, "seal", point) == crash_points.CRASH_EXIT_CODE
    engine = open_engine(compaction_min_segments=None)
    _check(engine, kit, SEAL_EXPECTED)
    assert _unregistered_files(engine) == []
    # Seal again after the restart (the replayed rows and the untrimmed log must not double).
    engine.flush("default", ["c"])
    _check(engine, kit, SEAL_EXPECTED)
    engine.close()
    again = open_engine(compaction_min_segments=None)
    _check(again, kit, SEAL_EXPECTED)
    assert again._resolve("default", "c").snapshot().growing == {}


@pytest.mark.parametrize("point", COMPACT_POINTS)
def test_crash_inside_a_compaction(
    tmp_path: Path, open_engine: Callable[..., Engine], kit, point: str
) -> None:
    data = tmp_path / "data"
    assert _drive(data, "seal", None) == 0
    assert _drive(data, "compact", point) == crash_points.CRASH_EXIT_CODE
    engine = open_engine(compaction_min_segments=None)
    _check(engine, kit, COMPACT_EXPECTED)
    assert _unregistered_files(engine) == []
    engine.compact("default", "c")
    engine.close()
    _check(open_engine(compaction_min_segments=None), kit, COMPACT_EXPECTED)


@pytest.mark.parametrize("point", TRUNCATE_POINTS)
def test_crash_inside_a_truncate(tmp_path: Path, open_engine: Callable[..., Engine], kit, point: str) -> None:
    data = tmp_path / "data"
    assert _drive(data, "seal", None) == 0
    assert _drive(data, "truncate", point) == crash_points.CRASH_EXIT_CODE
    engine = open_engine(compaction_min_segments=None)
    assert kit.visible_ids(engine, "c") == []
    assert _unregistered_files(engine) == []
    vectors = pa.FixedSizeListArray.from_arrays(pa.array([0.5] * 8, pa.float32()), 4)
    engine.insert("default", "c", pa.table({"id": pa.array([0, 1], pa.int64()), "vec": vectors}))
    engine.close()
    assert kit.visible_ids(open_engine(compaction_min_segments=None), "c") == [0, 1]


def test_segment_boundary_record_is_not_applied_twice(
    tmp_path: Path, open_engine: Callable[..., Engine], kit
) -> None:
    """The seal's lsn is exactly the last record's: replay after a crash before the trim must
    skip that record (lsn == wal_lsn), for its rows and its delete half alike."""
    data = tmp_path / "data"
    assert _drive(data, "seal", crash_points.SEAL_BEFORE_TRIM) == crash_points.CRASH_EXIT_CODE
    engine = open_engine(compaction_min_segments=None)
    coll = engine._resolve("default", "c")
    last = coll.wal.last_lsn
    assert max(s.wal_lsn for s in engine._catalog.list_segments(coll.collection_id)) == last
    assert coll.snapshot().growing == {}  # nothing replayed: everything is in segments
    _check(engine, kit, SEAL_EXPECTED)


@pytest.mark.parametrize("torn", [b"SWAL", b"SWAL" + bytes(40), bytes(3)])
def test_torn_log_tail_keeps_every_acknowledged_write(
    open_engine: Callable[..., Engine], kit, torn: bytes
) -> None:
    e = open_engine(compaction_min_segments=None)
    e.create_collection("default", "c", kit.basic_schema())
    e.insert("default", "c", kit.make_rows(range(10)))
    e.flush("default", ["c"])
    e.insert("default", "c", kit.make_rows(range(10, 15)))
    e.upsert("default", "c", kit.make_rows([2, 12], seed=1))
    active = e._resolve("default", "c").wal.files()[-1]
    e.close()
    with open(active, "ab") as f:  # a record cut short by the kill
        f.write(torn)
    e2 = open_engine(compaction_min_segments=None)
    assert kit.visible_ids(e2, "c") == list(range(15))
    e2.insert("default", "c", kit.make_rows(range(15, 20)))
    e2.close()
    table = kit.visible_table(open_engine(compaction_min_segments=None), "default", "c")
    assert sorted(table.column("id").to_pylist()) == list(range(20))


def test_crash_after_logging_a_partition_key_batch_keeps_all_of_it(
    tmp_path: Path, open_engine: Callable[..., Engine], kit
) -> None:
    """A batch routed to four partitions is one log record: a crash right after logging it
    (before any apply or acknowledgement) recovers all of its rows or none, never a part."""
    data = tmp_path / "data"
    assert _drive(data, "routed", crash_points.WRITE_AFTER_LOG) == crash_points.CRASH_EXIT_CODE
    engine = open_engine(compaction_min_segments=None)
    table = kit.visible_table(engine, "default", "c")
    ids = table.column("id").to_pylist()
    assert sorted(ids) == list(range(20))  # the whole upsert batch: logged, so kept
    vectors = dict(zip(ids, table.column("vec").to_pylist(), strict=True))
    assert sorted(i for i in ids if vectors[i][0] == 1.0) == [2, 3, 4, 5, 16, 17, 18, 19]
    engine.flush("default", ["c"])
    engine.close()
    again = kit.visible_table(open_engine(compaction_min_segments=None), "default", "c")
    assert sorted(again.column("id").to_pylist()) == list(range(20))
