"""The read path's caches (allowed masks per loaded segment, compiled filters, output plans,
the loaded-segment sync shortcut) never serve stale rows: inserts, deletes, seals, releases
and reloads each show up in the next search, through a real Engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState, SearchRequest
from sheafdb.engine.read.search import compile_checked, row_masks
from sheafdb.errors import CollectionNotLoaded
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

DIM = 8
DB, NAME = "default", "c"


def rows(ids: range, vectors: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(list(ids), pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
            "num": pa.array([i % 10 for i in ids], pa.int64()),
        }
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(EngineConfig(tmp_path, fsync=False, restore_loads=False))
    schema = CollectionSchema(
        (
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
            FieldSchema("num", DataType.INT64),
        )
    )
    eng.create_collection(DB, NAME, schema)
    vectors = np.random.default_rng(0).random((300, DIM), dtype=np.float32)
    eng.insert(DB, NAME, rows(range(300), vectors))
    eng.flush(DB, [NAME])
    eng.create_index(DB, NAME, "vec", "", {"index_type": "HNSW", "metric_type": "L2", "M": "8"})
    eng.wait_for_index_builds(60)
    load(eng)
    yield eng
    eng.close()


def load(eng: Engine) -> None:
    eng.load_collection(DB, NAME)
    while eng.get_load_state(DB, NAME) is not LoadState.LOADED:
        pass


def search_ids(eng: Engine, query: np.ndarray, flt: str = "", limit: int = 5, **kw: object) -> list[int]:
    result = eng.search(
        DB, SearchRequest(NAME, query.reshape(1, -1), limit, filter=flt, params={"ef": 64}, **kw)
    )
    return result.ids.to_pylist()


def far_vector(value: float) -> np.ndarray:
    return np.full(DIM, value, dtype=np.float32)


def test_delete_after_a_cached_filter_hides_the_row(engine: Engine) -> None:
    target = far_vector(0.5)
    first = search_ids(engine, target, "num >= 3")
    assert search_ids(engine, target, "num >= 3") == first  # served from the cached mask
    engine.delete(DB, NAME, f"id in [{first[0]}]")
    after = search_ids(engine, target, "num >= 3")
    assert first[0] not in after and after[:4] == first[1:5]
    unfiltered = search_ids(engine, target)
    assert first[0] not in unfiltered


def test_insert_after_load_is_found_by_a_cached_filter(engine: Engine) -> None:
    target = far_vector(3.0)  # far outside the unit cube: only the new row is near
    search_ids(engine, target, "num == 7")
    engine.insert(DB, NAME, rows(range(1007, 1008), target.reshape(1, -1)))
    assert search_ids(engine, target, "num == 7")[0] == 1007
    assert search_ids(engine, target)[0] == 1007


def test_seal_after_load_keeps_rows_searchable(engine: Engine) -> None:
    target = far_vector(-2.0)
    engine.insert(DB, NAME, rows(range(2003, 2004), target.reshape(1, -1)))
    assert search_ids(engine, target, "num == 3")[0] == 2003
    engine.flush(DB, [NAME])  # the row moves from the growing table to a new sealed segment
    assert search_ids(engine, target, "num == 3")[0] == 2003
    assert search_ids(engine, target)[0] == 2003
    engine.delete(DB, NAME, "id in [2003]")
    assert 2003 not in search_ids(engine, target, "num == 3")


def test_release_and_reload_serve_fresh_state(engine: Engine) -> None:
    target = far_vector(0.2)
    before = search_ids(engine, target, "num < 5")
    engine.release_collection(DB, NAME)
    with pytest.raises(CollectionNotLoaded):
        search_ids(engine, target, "num < 5")
    engine.delete(DB, NAME, f"id in [{before[0]}]")
    load(engine)
    assert before[0] not in search_ids(engine, target, "num < 5")


def test_same_filter_text_with_other_params_is_another_filter(engine: Engine) -> None:
    target = far_vector(0.5)
    low = search_ids(engine, target, "num == {v}", limit=20, filter_params={"v": 2})
    high = search_ids(engine, target, "num == {v}", limit=20, filter_params={"v": 4})
    assert low and high and all(i % 10 == 2 for i in low) and all(i % 10 == 4 for i in high)


def test_cached_masks_are_read_only_and_renewed_by_deletes(engine: Engine) -> None:
    coll = engine._resolve(DB, NAME)
    ctx = engine._loads.read_context(coll, "search", ())
    flt = compile_checked(ctx, "num >= 1", {})
    assert compile_checked(ctx, "num >= 1", {}) is flt
    mask = row_masks(ctx, flt)[0]
    assert mask is not None and not mask.flags.writeable
    assert row_masks(ctx, flt)[0] is mask
    engine.delete(DB, NAME, "id in [1]")
    fresh = engine._loads.read_context(coll, "search", ())
    renewed = row_masks(fresh, flt)[0]
    assert renewed is not mask and mask[1] and not renewed[1]
    assert row_masks(fresh, None)[0] is not None and not row_masks(fresh, None)[0][1]


def test_output_fields_come_back_with_a_single_segment(engine: Engine) -> None:
    target = far_vector(0.5)
    result = engine.search(
        DB, SearchRequest(NAME, target.reshape(1, -1), 5, params={"ef": 64}, output_fields=("num",))
    )
    ids = result.ids.to_pylist()
    assert result.fields.column("num").to_pylist() == [i % 10 for i in ids]


def test_a_field_added_after_the_seal_reads_as_nulls(engine: Engine) -> None:
    engine.add_collection_field(DB, NAME, FieldSchema("extra", DataType.INT64, nullable=True))
    engine.release_collection(DB, NAME)
    load(engine)
    result = engine.search(
        DB,
        SearchRequest(
            NAME, far_vector(0.5).reshape(1, -1), 4, params={"ef": 64}, output_fields=("extra", "num")
        ),
    )
    ids = result.ids.to_pylist()
    assert len(ids) == 4 and result.fields.column("extra").null_count == 4
    assert result.fields.column("num").to_pylist() == [i % 10 for i in ids]


def test_read_plans_live_with_the_collection_and_its_schema(engine: Engine) -> None:
    """Filters, output plans and specs are kept by the collection's ReadPlans for its current
    schema: a schema change starts new ones, and the new field reads back."""
    coll = engine._resolve(DB, NAME)
    plans = coll.read_plans
    assert coll.read_plans is plans and plans.schema is coll.schema
    ctx = engine._loads.read_context(coll, "search", ())
    assert ctx.plans is plans
    assert compile_checked(ctx, "num >= 2", {}) is plans.filter("num >= 2", {})
    assert plans.output(("id", "num"), ("num",), dynamic_loaded=False) is plans.output(
        ("id", "num"), ("num",), dynamic_loaded=False
    )
    engine.add_collection_field(DB, NAME, FieldSchema("extra", DataType.INT64, nullable=True))
    fresh = coll.read_plans
    assert fresh is not plans and fresh.schema is coll.schema and fresh.schema.field("extra") is not None
    assert engine._loads.read_context(coll, "search", ()).plans is fresh


def test_read_plans_are_bounded() -> None:
    from sheafdb.engine.read.read_plans import FILTER_TEXT_KEPT, FILTERS_KEPT, OUTPUT_PLANS_KEPT, ReadPlans

    schema = CollectionSchema(
        (FieldSchema("id", DataType.INT64, is_primary=True), FieldSchema("vec", DataType.FLOAT_VECTOR, dim=4))
    )
    plans = ReadPlans(schema)
    for i in range(FILTERS_KEPT + 10):
        plans.filter(f"id == {i}", {})
        plans.output(("id", "vec"), ("id",) * (i + 1), dynamic_loaded=False)  # one key each
    assert 0 < len(plans._filters) <= FILTERS_KEPT
    assert 0 < len(plans._outputs) <= OUTPUT_PLANS_KEPT
    long_text = "id >= 0 and " * (FILTER_TEXT_KEPT // 12 + 1) + "id >= 0"
    first = plans.filter(long_text, {})
    assert plans.filter(long_text, {}) is not first  # too long to keep: compiled every time
    assert plans.filter("id in {v}", {"v": [1, 2]}) is not plans.filter("id in {v}", {"v": [1, 2]})


def test_live_deletes_reduce_once_per_partition() -> None:
    from sheafdb.engine.read.live_deletes import LiveDeletes
    from sheafdb.engine.read.visibility import ALL_PARTITIONS, delete_records, latest_deletes

    wide = LiveDeletes(
        pa.concat_tables(
            [delete_records(pa.array([1, 2], pa.int64()), 5), delete_records(pa.array([1], pa.int64()), 9)]
        )
    )
    assert wide.of_partition(3) is wide.of_partition(4)  # no scoped delete: one reduction shared
    assert wide.of_partition(3).equals(latest_deletes(wide.table, None))
    scoped = LiveDeletes(
        pa.concat_tables(
            [
                delete_records(pa.array([1], pa.int64()), 5, scope=7),
                delete_records(pa.array([2], pa.int64()), 6, scope=ALL_PARTITIONS),
            ]
        )
    )
    in_7, in_8 = scoped.of_partition(7), scoped.of_partition(8)
    assert scoped.of_partition(7) is in_7 and in_7 is not in_8
    assert sorted(in_7.column("pk").to_pylist()) == [1, 2] and in_8.column("pk").to_pylist() == [2]
    empty = LiveDeletes(delete_records(pa.array([], pa.int64()), 1))
    assert empty.num_rows == 0 and empty.of_partition(1) is empty.table
