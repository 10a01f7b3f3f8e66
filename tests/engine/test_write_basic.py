from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pytest

from sheafdb.engine.engine import Engine
from sheafdb.errors import ParameterInvalid

F32 = pa.list_(pa.float32())


def test_insert_then_snapshot_shows_rows(engine: Engine, kit) -> None:
    engine.create_collection("default", "c", kit.basic_schema())
    res = engine.insert("default", "c", kit.make_rows(range(10)))
    assert res.count == 10
    assert res.ids.to_pylist() == list(range(10))
    assert kit.visible_ids(engine, "c") == list(range(10))


def test_auto_ids_are_unique_and_increasing(engine: Engine, kit) -> None:
    engine.create_collection("default", "c", kit.basic_schema(auto_id=True))
    a = engine.insert("default", "c", kit.make_rows(range(5), with_ids=False)).ids.to_pylist()
    b = engine.insert("default", "c", kit.make_rows(range(5), with_ids=False)).ids.to_pylist()
    assert len(set(a + b)) == 10
    assert a == sorted(a) and max(a) < min(b)


def test_delete_and_upsert(engine: Engine, kit) -> None:
    engine.create_collection("default", "c", kit.basic_schema())
    engine.insert("default", "c", kit.make_rows(range(10)))
    res = engine.delete("default", "c", "id in [1, 2, 3]")
    assert res.count == 3
    engine.upsert("default", "c", kit.make_rows([4, 11]))
    assert kit.visible_ids(engine, "c") == [0, 4, 5, 6, 7, 8, 9, 11]


def test_flush_seals_and_restart_keeps_everything(open_engine: Callable[..., Engine], kit) -> None:
    e = open_engine()
    e.create_collection("default", "c", kit.basic_schema())
    e.insert("default", "c", kit.make_rows(range(10)))
    e.delete("default", "c", "id in [0]")
    e.flush("default", ["c"])
    snap = e._resolve("default", "c").snapshot()
    assert len(snap.sealed) == 1 and not snap.growing
    e.insert("default", "c", kit.make_rows(range(10, 13)))
    e.delete("default", "c", "id == 12")
    e.close()
    e2 = open_engine()
    assert kit.visible_ids(e2, "c") == list(range(1, 12))
    assert e2.collection_row_count("default", "c") == 11


@pytest.mark.parametrize(
    ("columns", "text"),
    [
        ({"id": [1], "vec": pa.array([[0.0] * 3], F32)}, "dim"),
        ({"id": [1], "vec": pa.array([[0.0] * 8], F32), "x": [1]}, "does not exist"),
        ({"vec": pa.array([[0.0] * 8], F32)}, "missed"),
        ({"id": [1], "vec": pa.array([[0.0] * 8], F32), "tag": ["x" * 17]}, "exceeds max length"),
        ({"id": ["a"], "vec": pa.array([[0.0] * 8], F32)}, "data type"),
        ({"id": [None], "vec": pa.array([[0.0] * 8], F32)}, "null"),
    ],
)
def test_invalid_batches_write_nothing(engine: Engine, kit, columns: dict, text: str) -> None:
    engine.create_collection("default", "c", kit.basic_schema())
    with pytest.raises(ParameterInvalid) as err:
        engine.insert("default", "c", pa.table(columns))
    assert text in err.value.message
    assert err.value.code == 1100
    assert kit.visible_ids(engine, "c") == []
    assert engine._resolve("default", "c").wal.last_lsn == 0
