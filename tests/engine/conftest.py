"""Shared fixtures of the engine tests: a real Engine on a temporary directory, fsync on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.read.visibility import latest_deletes, visible_rows
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.segment_files import read_column

DIM = 8


def basic_schema(*, auto_id: bool = False, dynamic: bool = False) -> CollectionSchema:
    return CollectionSchema(
        fields=(
            FieldSchema("id", DataType.INT64, is_primary=True, auto_id=auto_id),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
            FieldSchema("tag", DataType.VARCHAR, max_length=16, nullable=True),
        ),
        enable_dynamic_field=dynamic,
    )


def make_rows(ids: list[int] | range, *, with_ids: bool = True, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = len(ids)
    vectors = rng.random((n, DIM), dtype=np.float32)
    columns: dict[str, pa.Array] = {
        "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
        "tag": pa.array([f"t{i % 5}" for i in ids]),
    }
    if with_ids:
        columns = {"id": pa.array(list(ids), type=pa.int64()), **columns}
    return pa.table(columns)


def visible_table(engine: Engine, db: str, name: str) -> pa.Table:
    """Every visible row (sealed + growing, minus deletes) read straight from a snapshot."""
    coll = engine._resolve(db, name)
    snap = coll.snapshot()
    layout = coll.schema.arrow_schema()
    pk = coll.schema.primary_field.name
    tables = []
    for seg in snap.sealed:
        table = pa.Table.from_arrays(
            [
                read_column(engine._store, seg.columns[f.name].path)
                if f.name in seg.columns
                else pa.nulls(seg.num_rows, f.type)
                for f in layout
            ],
            schema=layout,
        )
        tables.append(visible_rows(table, pk, latest_deletes(snap.deletes, seg.partition_id)))
    for pid, table in snap.growing.items():
        tables.append(visible_rows(table, pk, latest_deletes(snap.deletes, pid)))
    if not tables:
        return layout.empty_table()
    return pa.concat_tables(tables)


def visible_ids(engine: Engine, name: str, db: str = "default") -> list[int]:
    return sorted(visible_table(engine, db, name).column("id").to_pylist())


class EngineTestKit:
    """The helpers above as one fixture (conftest.py is not meant to be imported)."""

    basic_schema = staticmethod(basic_schema)
    make_rows = staticmethod(make_rows)
    visible_table = staticmethod(visible_table)
    visible_ids = staticmethod(visible_ids)
    DIM = DIM


@pytest.fixture
def kit() -> type[EngineTestKit]:
    return EngineTestKit


@pytest.fixture
def open_engine(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """Opens engines on one data directory (reopen after close = restart)."""
    opened: list[Engine] = []

    def _open(**overrides: object) -> Engine:
        settings: dict[str, object] = {"fsync": True, "restore_loads": False, **overrides}
        config = EngineConfig(data_dir=tmp_path / "data", **settings)  # type: ignore[arg-type]
        engine = Engine(config)
        opened.append(engine)
        return engine

    yield _open
    for engine in opened:
        try:
            engine.close()
        except Exception:  # noqa: BLE001 - already closed by the test
            pass


@pytest.fixture
def engine(open_engine: Callable[..., Engine]) -> Engine:
    return open_engine()
