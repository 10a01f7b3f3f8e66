"""Load / release / search through the real Engine facade on a temporary directory."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState, QueryRequest, SearchRequest
from sheafdb.errors import (
    CollectionNotFound,
    CollectionNotLoaded,
    FieldNotFound,
    IndexNotFound,
    MemoryLimitExceeded,
    ParameterInvalid,
    PartitionNotLoaded,
    SheafError,
)
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.object_store import LocalStore

DB = "default"
DIM = 4
SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
        FieldSchema("title", DataType.VARCHAR, max_length=64),
    ),
    enable_dynamic_field=True,
)
HNSW = {"index_type": "HNSW", "metric_type": "L2", "M": "8", "efConstruction": "32"}


def rows(start: int, n: int) -> pa.Table:
    vecs = np.random.default_rng(start).standard_normal((n, DIM)).astype(np.float32)
    return pa.table(
        {
            "id": pa.array(np.arange(start, start + n, dtype=np.int64)),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), DIM),
            "title": pa.array([f"title {i}" for i in range(start, start + n)]),
        }
    )


@pytest.fixture
def engine(tmp_path: Path):
    eng = Engine(EngineConfig(tmp_path / "data", fsync=False, restore_loads=False))
    yield eng
    eng.close()


def make(engine: Engine, name: str = "c", *, segments: int = 2, per: int = 50, index: bool = True) -> None:
    engine.create_collection(DB, name, SCHEMA)
    for s in range(segments):
        engine.insert(DB, name, rows(s * per, per))
        engine.flush(DB, [name])
    if index:
        engine.create_index(DB, name, "vec", "", HNSW)
        engine.wait_for_index_builds(30)


def wait_loaded(engine: Engine, name: str = "c") -> None:
    for _ in range(600):  # bounded: a load that never ends fails the test
        if engine.get_load_state(DB, name) is LoadState.LOADED:
            return
        time.sleep(0.01)
    raise AssertionError(f"not loaded: {engine.get_load_state(DB, name)}")


def search_ids(engine: Engine, vec: np.ndarray, limit: int = 5, **kw) -> list[int]:
    return engine.search(DB, SearchRequest("c", vec.reshape(1, -1), limit, **kw)).ids.to_pylist()


def test_load_search_release_cycle(engine: Engine) -> None:
    make(engine)
    assert engine.get_load_state(DB, "c") is LoadState.NOT_LOAD
    coll_id = engine.describe_collection(DB, "c").collection_id
    with pytest.raises(CollectionNotLoaded) as err:
        search_ids(engine, np.zeros(DIM, np.float32))
    assert err.value.message == f"failed to search: collection not loaded[collection={coll_id}]"
    with pytest.raises(CollectionNotLoaded, match="failed to query"):
        engine.query(DB, QueryRequest("c", filter="id > 0"))
    with pytest.raises(CollectionNotLoaded):
        engine.get_loading_progress(DB, "c")
    engine.load_collection(DB, "c")
    wait_loaded(engine)
    assert engine.get_loading_progress(DB, "c").progress == 100
    target = rows(0, 100).column("vec").combine_chunks().values.to_numpy().reshape(-1, DIM)[42]
    assert search_ids(engine, target)[0] == 42
    engine.load_collection(DB, "c")  # again, same fields: no-op success
    assert engine.get_load_state(DB, "c") is LoadState.LOADED
    used = engine.memory_report()["collections"][coll_id]["bytes"]
    assert engine.release_collection(DB, "c") == used > 0
    assert engine.get_load_state(DB, "c") is LoadState.NOT_LOAD
    assert coll_id not in engine.memory_report()["collections"]
    assert engine.release_collection(DB, "c") == 0  # idempotent
    assert engine.get_load_state(DB, "missing") is LoadState.NOT_EXIST
    with pytest.raises(CollectionNotFound):
        engine.load_collection(DB, "missing")


def test_load_rules(engine: Engine) -> None:
    make(engine, index=False)
    with pytest.raises(IndexNotFound) as err:
        engine.load_collection(DB, "c")
    assert (err.value.code, err.value.message) == (700, "index not found[collection=c]")
    engine.create_index(DB, "c", "vec", "", HNSW)
    engine.wait_for_index_builds(30)
    with pytest.raises(ParameterInvalid, match="does not contain primary key field id"):
        engine.load_collection(DB, "c", load_fields=["vec"])
    with pytest.raises(ParameterInvalid, match="does not contain vector field"):
        engine.load_collection(DB, "c", load_fields=["id", "title"])
    with pytest.raises(FieldNotFound):
        engine.load_collection(DB, "c", load_fields=["id", "vec", "nope"])
    engine.load_collection(DB, "c", load_fields=["id", "vec"], skip_load_dynamic_field=True)
    with pytest.raises(SheafError) as changed:
        engine.load_collection(DB, "c")
    assert changed.value.code == 1100
    assert "can't change the load field list for loaded collection" in changed.value.message
    engine.load_collection(DB, "c", load_fields=["vec", "id"], skip_load_dynamic_field=True)
    wait_loaded(engine)
    report = engine.memory_report()["collections"]
    (entry,) = report.values()
    assert "title" not in entry["fields"] and "$meta" not in entry["fields"]
    with pytest.raises(SheafError, match="field title is not loaded"):
        search_ids(engine, np.zeros(DIM, np.float32), output_fields=("title",))
    engine.release_collection(DB, "c")
    engine.load_collection(DB, "c")  # after release the list may change
    wait_loaded(engine)


def test_budget_refusal_is_immediate_and_leaves_not_load(tmp_path: Path) -> None:
    engine = Engine(
        EngineConfig(tmp_path / "data", fsync=False, restore_loads=False, memory_budget_bytes=2000)
    )
    try:
        make(engine)
        with pytest.raises(MemoryLimitExceeded) as err:
            engine.load_collection(DB, "c")
        assert err.value.code == 3 and "needed(MB)" in err.value.message
        assert engine.get_load_state(DB, "c") is LoadState.NOT_LOAD
    finally:
        engine.close()


def test_rows_written_after_load_are_found_at_once(engine: Engine) -> None:
    make(engine)
    engine.load_collection(DB, "c")
    wait_loaded(engine)
    fresh = rows(1000, 10)
    engine.insert(DB, "c", fresh)
    vec = fresh.column("vec").combine_chunks().values.to_numpy().reshape(-1, DIM)[3]
    assert search_ids(engine, vec)[0] == 1003  # growing, searched exactly
    engine.flush(DB, ["c"])  # sealed after load: still found
    assert search_ids(engine, vec)[0] == 1003
    engine.delete(DB, "c", "id in [1003]")
    assert 1003 not in search_ids(engine, vec)
    count = engine.query(DB, QueryRequest("c", output_fields=("count(*)",))).table
    assert count.column(0).to_pylist() == [109]
    engine.wait_for_index_builds(30)
    engine.load_collection(DB, "c", refresh=True)
    assert engine.get_loading_progress(DB, "c").refresh_progress == 100
    assert search_ids(engine, vec)[0] != 1003


def test_partitions(engine: Engine) -> None:
    make(engine, segments=1)
    engine.create_partition(DB, "c", "p1")
    engine.insert(DB, "c", rows(500, 20), partition="p1")
    engine.flush(DB, ["c"])
    engine.wait_for_index_builds(30)
    engine.load_partitions(DB, "c", ["p1"])
    wait_loaded(engine)
    assert engine.get_load_state(DB, "c", ["_default"]) is LoadState.NOT_LOAD
    with pytest.raises(PartitionNotLoaded) as err:
        search_ids(engine, np.zeros(DIM, np.float32), partition_names=("_default",))
    assert err.value.code == 201
    got = engine.query(DB, QueryRequest("c", filter="id >= 0", output_fields=("count(*)",))).table
    assert got.column(0).to_pylist() == [20]
    engine.load_collection(DB, "c")  # loads the missing partition
    wait_loaded(engine)
    got = engine.query(DB, QueryRequest("c", filter="id >= 0", output_fields=("count(*)",))).table
    assert got.column(0).to_pylist() == [70]
    engine.create_partition(DB, "c", "p2")  # whole collection loaded: new partitions are loaded
    assert engine.get_load_state(DB, "c", ["p2"]) is LoadState.LOADED
    engine.release_partitions(DB, "c", ["_default", "p1", "p2"])
    with pytest.raises(CollectionNotLoaded):
        search_ids(engine, np.zeros(DIM, np.float32))


class GatedStore(LocalStore):
    """The real store, whose reads wait for a gate: lets a test release in the middle of a load."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate = threading.Event()
        self.reads = 0

    def read_bytes(self, path: str) -> bytes:
        self.reads += 1
        if self.reads > 1:
            self.gate.wait(10)
        return super().read_bytes(path)


def test_release_during_load_cancels_it_cleanly(engine: Engine, tmp_path: Path) -> None:
    make(engine, segments=3)
    gated = GatedStore(tmp_path / "data")
    engine._loads.loader.store = gated
    engine.load_collection(DB, "c")
    assert engine.get_load_state(DB, "c") is LoadState.LOADING
    assert engine.get_loading_progress(DB, "c").progress < 100
    releaser = threading.Thread(target=engine.release_collection, args=(DB, "c"))
    releaser.start()
    for _ in range(500):
        if engine.get_load_state(DB, "c") is LoadState.NOT_LOAD:
            break
        time.sleep(0.01)
    gated.gate.set()
    releaser.join(10)
    assert not releaser.is_alive()
    assert engine.get_load_state(DB, "c") is LoadState.NOT_LOAD
    assert engine.memory_report()["used_bytes"] == 0
    engine.load_collection(DB, "c")
    wait_loaded(engine)
    assert engine.query(DB, QueryRequest("c", output_fields=("count(*)",))).table.column(0).to_pylist() == [
        150
    ]


def test_races_give_only_the_right_errors(engine: Engine) -> None:
    make(engine, segments=3, per=30)
    errors: list[BaseException] = []
    stop = threading.Event()
    vec = np.zeros((1, DIM), np.float32)

    def guard(fn):
        def run() -> None:
            while not stop.is_set():
                try:
                    fn()
                except (CollectionNotLoaded, PartitionNotLoaded):
                    pass
                except BaseException as exc:  # anything else is a bug
                    errors.append(exc)
                    return

        return threading.Thread(target=run)

    counter = iter(range(10_000, 10**9, 3))
    threads = [
        guard(lambda: engine.load_collection(DB, "c")),
        guard(lambda: engine.release_collection(DB, "c")),
        guard(lambda: engine.search(DB, SearchRequest("c", vec, 3))),
        guard(lambda: engine.query(DB, QueryRequest("c", filter="id >= 0", output_fields=("count(*)",)))),
        guard(lambda: engine.insert(DB, "c", rows(next(counter), 3))),
    ]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(20)
    assert errors == []
    engine.load_collection(DB, "c")
    wait_loaded(engine)
    total = engine.query(DB, QueryRequest("c", output_fields=("count(*)",))).table.column(0)[0].as_py()
    assert total == engine.collection_row_count(DB, "c")


def test_segments_sealed_and_indexes_built_after_load_are_loaded(engine: Engine) -> None:
    make(engine, segments=1)
    engine.load_collection(DB, "c")
    wait_loaded(engine)
    coll_id = engine.describe_collection(DB, "c").collection_id

    def index_bytes() -> int:
        return engine.memory_report()["collections"][coll_id]["indexes"].get("vec", 0)

    before = index_bytes()
    engine.insert(DB, "c", rows(100, 50))
    engine.flush(DB, ["c"])
    engine.wait_for_index_builds(30)
    for _ in range(500):  # the listener loads the new index in the background
        if index_bytes() > before:
            break
        time.sleep(0.01)
    assert index_bytes() > before
    assert engine.get_loading_progress(DB, "c").progress == 100


def test_a_restart_loads_again_what_was_loaded_and_only_that(tmp_path: Path) -> None:
    config = EngineConfig(tmp_path / "data", fsync=False, restore_loads=True)
    first = Engine(config)
    make(first, "c")
    make(first, "idle")
    first.load_collection(DB, "c", load_fields=("id", "vec"))
    wait_loaded(first, "c")
    first.close()

    second = Engine(config)
    try:
        wait_loaded(second, "c")  # nobody asked: the persisted load config did
        assert second.get_load_state(DB, "idle") is LoadState.NOT_LOAD
        probe = rows(0, 50).column("vec").combine_chunks().values.to_numpy().reshape(50, -1)[3:4]
        hits = second.search(DB, SearchRequest("c", probe, 1, output_fields=("id",)))
        assert hits.ids.to_pylist() == [3]
        with pytest.raises(SheafError, match="not loaded"):  # the same partial field list came back
            second.search(DB, SearchRequest("c", probe, 1, output_fields=("title",)))
    finally:
        second.close()
