"""Partition-scoped deletes: a delete naming a partition hides the key there only.

The same primary key lives in `_default` and `p1`; deleting it in `p1` must leave the `_default`
row visible to every reader (search, query, get, count(*), row counts) while growing, after a
seal, after compaction and after a restart. Upserts keep replacing the key in every partition.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.engine import Engine
from sheafdb.engine.load.load_state import LoadState
from sheafdb.engine.models import QueryRequest, SearchRequest
from sheafdb.engine.read.visibility import (
    ALL_PARTITIONS,
    SCOPE_COLUMN,
    delete_records,
    latest_deletes,
    scoped_deletes,
    visible_rows,
)
from sheafdb.engine.write.sealing import read_delete_records
from sheafdb.storage.object_store import LocalStore
from sheafdb.storage.segment_files import write_deletes

DB = "default"
FLAT = {"index_type": "FLAT", "metric_type": "L2"}


def _wait_loaded(engine: Engine) -> None:
    for _ in range(600):  # bounded: a load that never ends fails the test
        if engine.get_load_state(DB, "c") is LoadState.LOADED:
            return
        time.sleep(0.01)
    raise AssertionError(f"not loaded: {engine.get_load_state(DB, 'c')}")


def _setup(engine: Engine, kit) -> None:
    """Key 5 in both partitions (different vectors), keys 1 and 2 in `_default`, 10 in `p1`."""
    engine.create_collection(DB, "c", kit.basic_schema())
    engine.create_partition(DB, "c", "p1")
    engine.insert(DB, "c", kit.make_rows([1, 2, 5], seed=1))
    engine.insert(DB, "c", kit.make_rows([5, 10], seed=2), partition="p1")
    engine.create_index(DB, "c", "vec", "", FLAT)


def _query_ids(engine: Engine, **kw) -> list[int]:
    result = engine.query(DB, QueryRequest("c", **kw))
    return sorted(result.table.column("id").to_pylist())


def _count(engine: Engine, partitions: tuple[str, ...] = ()) -> int:
    result = engine.query(DB, QueryRequest("c", output_fields=("count(*)",), partition_names=partitions))
    return int(result.table.column("count(*)")[0].as_py())


def _search_ids(engine: Engine, kit, partitions: tuple[str, ...] = ()) -> list[int]:
    vectors = np.asarray(kit.make_rows([5], seed=1).column("vec").to_pylist(), dtype=np.float32)
    result = engine.search(DB, SearchRequest("c", vectors, 10, partition_names=partitions))
    return sorted(result.ids.to_pylist())


def _assert_key5_only_in_default(engine: Engine, kit) -> None:
    assert kit.visible_ids(engine, "c") == [1, 2, 5, 10]
    assert _query_ids(engine, filter="id >= 0") == [1, 2, 5, 10]
    assert _query_ids(engine, ids=[5]) == [5]
    assert _query_ids(engine, filter="id in [5, 10]") == [5, 10]
    assert _query_ids(engine, ids=[5], partition_names=("p1",)) == []
    assert _query_ids(engine, ids=[5], partition_names=("_default",)) == [5]
    assert _count(engine) == 4
    assert _count(engine, ("p1",)) == 1
    assert _search_ids(engine, kit) == [1, 2, 5, 10]
    assert _search_ids(engine, kit, ("p1",)) == [10]
    assert engine.partition_row_count(DB, "c", "p1") == 1
    assert engine.partition_row_count(DB, "c", "_default") == 3
    assert engine.collection_row_count(DB, "c") == 4


@pytest.mark.parametrize("general_filter", [False, True])
def test_delete_in_one_partition_keeps_the_key_in_the_other(
    open_engine: Callable[..., Engine], kit, general_filter: bool
) -> None:
    engine = open_engine(compaction_min_segments=None)
    _setup(engine, kit)
    engine.load_collection(DB, "c")
    _wait_loaded(engine)
    # A general filter is resolved by a query of the partition; `id in [...]` is not.
    expr = "id > 4 and id < 6" if general_filter else "id in [5]"
    result = engine.delete(DB, "c", expr, partition="p1")
    assert result.count == 1
    _assert_key5_only_in_default(engine, kit)  # growing
    engine.flush(DB, ["c"])
    _assert_key5_only_in_default(engine, kit)  # sealed (deletes file)
    engine.close()

    engine = open_engine(compaction_min_segments=None)
    engine.load_collection(DB, "c")
    _wait_loaded(engine)
    _assert_key5_only_in_default(engine, kit)  # restart: scope read back from the deletes file


def test_scoped_delete_survives_restart_from_the_log(open_engine: Callable[..., Engine], kit) -> None:
    engine = open_engine(compaction_min_segments=None)
    _setup(engine, kit)
    engine.delete(DB, "c", "id in [5]", partition="p1")
    engine.close()  # nothing flushed: the delete comes back from the write-ahead log
    engine = open_engine(compaction_min_segments=None)
    engine.load_collection(DB, "c")
    _wait_loaded(engine)
    _assert_key5_only_in_default(engine, kit)


def test_compaction_drops_the_row_of_the_scoped_partition_only(
    open_engine: Callable[..., Engine], kit
) -> None:
    engine = open_engine(compaction_min_segments=None)
    _setup(engine, kit)
    engine.flush(DB, ["c"])
    engine.insert(DB, "c", kit.make_rows([20], seed=3))
    engine.insert(DB, "c", kit.make_rows([21], seed=4), partition="p1")
    engine.delete(DB, "c", "id in [5]", partition="p1")
    engine.flush(DB, ["c"])
    engine.delete(DB, "c", "id in [2]", partition="p1")  # 2 is not in p1: nothing hidden
    engine.flush(DB, ["c"])
    assert engine.compact(DB, "c") > 0
    rows_per_partition = {}
    coll = engine._resolve(DB, "c")
    for seg in coll.snapshot().sealed:
        rows_per_partition[seg.partition_id] = rows_per_partition.get(seg.partition_id, 0) + seg.num_rows
    parts = coll.partitions
    assert rows_per_partition == {parts["_default"]: 4, parts["p1"]: 2}  # 5 gone from p1 only
    expected = [1, 2, 5, 10, 20, 21]
    assert kit.visible_ids(engine, "c") == expected
    engine.close()
    engine = open_engine(compaction_min_segments=None)
    assert kit.visible_ids(engine, "c") == expected
    engine.load_collection(DB, "c")
    _wait_loaded(engine)
    assert _query_ids(engine, filter="id >= 0") == expected
    assert _count(engine, ("p1",)) == 2


def test_delete_without_partition_and_upsert_reach_every_partition(
    open_engine: Callable[..., Engine], kit
) -> None:
    engine = open_engine(compaction_min_segments=None)
    _setup(engine, kit)
    engine.load_collection(DB, "c")
    _wait_loaded(engine)
    # Milvus docs: an upsert deletes the existing entity with that primary key (no partition
    # is named for the delete half), then inserts the row into the target partition.
    engine.upsert(DB, "c", kit.make_rows([5], seed=9), partition="p1")
    assert _query_ids(engine, ids=[5]) == [5]
    assert _query_ids(engine, ids=[5], partition_names=("_default",)) == []
    assert _count(engine) == 4
    engine.delete(DB, "c", "id in [1, 5]")
    engine.flush(DB, ["c"])
    assert kit.visible_ids(engine, "c") == [2, 10]
    assert _count(engine) == 2


def test_a_later_insert_after_a_scoped_delete_is_visible(engine: Engine, kit) -> None:
    _setup(engine, kit)
    engine.delete(DB, "c", "id in [5]", partition="p1")
    engine.insert(DB, "c", kit.make_rows([5], seed=7), partition="p1")
    assert kit.visible_ids(engine, "c") == [1, 2, 5, 5, 10]


def test_deletes_written_before_scopes_hide_in_every_partition(tmp_path) -> None:
    store = LocalStore(tmp_path)
    write_deletes(store, "old.arrow", pa.array([7], pa.int64()), pa.array([50], pa.uint64()))
    old = read_delete_records(store, "old.arrow")
    assert old.column(SCOPE_COLUMN).to_pylist() == [ALL_PARTITIONS]
    legacy_log_batch = pa.table({"pk": pa.array([8], pa.int64()), "__ts": pa.array([60], pa.uint64())})
    replayed = scoped_deletes(legacy_log_batch, 60)
    assert replayed.column(SCOPE_COLUMN).to_pylist() == [ALL_PARTITIONS]
    deletes = pa.concat_tables([old, replayed, delete_records(pa.array([9], pa.int64()), 70, scope=33)])
    rows = pa.table({"id": pa.array([7, 8, 9], pa.int64()), "__ts": pa.array([1, 1, 1], pa.uint64())})
    for partition in (33, 34):
        kept = visible_rows(rows, "id", latest_deletes(deletes, partition)).column("id").to_pylist()
        assert kept == ([] if partition == 33 else [9])
