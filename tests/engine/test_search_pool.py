"""Sources searched at once (engine/read/segment_pool.py) answer exactly what one-by-one searches
answer: ids, scores, order, output fields, group values and errors, on real loaded segments
and growing rows; and the multi-source output gather equals a row-by-row reference."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.load.loaded_segment import GrowingRows
from sheafdb.engine.models import SearchRequest, SearchResult
from sheafdb.engine.read import search as search_module
from sheafdb.engine.read import segment_pool
from sheafdb.engine.read.output import OutputPlan, gather
from sheafdb.engine.read.search import execute_search
from sheafdb.errors import SheafError
from sheafdb.index.faiss_threads import CORES, WIDE_MIN_QUERIES
from sheafdb.storage.object_store import LocalStore

from .read_plane_world import DIM, build_world, oracle

needs_cores = pytest.mark.skipif(CORES < 2, reason="one core: sources are always searched in turn")

DELETES = pa.table({"pk": pa.array([5, 310, 650], pa.int64()), "__ts": pa.array([11, 50, 30], pa.uint64())})

# (request keywords, build_world keywords): the shapes a search takes.
SHAPES: dict[str, tuple[dict, dict]] = {
    "plain": ({}, {}),
    "deletes": ({"limit": 30}, {"deletes": DELETES}),
    "filter": ({"filter": "num >= 4 and color != 'blue'"}, {}),
    "filter_deletes": ({"filter": "num < 7", "limit": 25}, {"deletes": DELETES}),
    "offset": ({"offset": 7, "limit": 9}, {}),
    "outputs": ({"output_fields": ("num", "color", "tag")}, {}),
    "all_outputs": ({"output_fields": ("*",), "limit": 12}, {}),
    "group_by": ({"group_by_field": "num", "group_size": 2, "limit": 4}, {}),
    "range": ({"params": {"radius": 12.0, "range_filter": 2.0}, "limit": 40}, {}),
    "round": ({"round_decimal": 2, "output_fields": ("id",)}, {}),
    "ip": ({"metric_type": "IP"}, {"metric": "IP"}),
    "partition_1": ({}, {}),  # sources of partition 1 only, see _sources_of
}


def answer(result: SearchResult) -> tuple:
    groups = None if result.group_by_values is None else result.group_by_values.to_pylist()
    return (
        result.topks.tolist(),
        result.ids.to_pylist(),
        result.scores.tolist(),
        result.fields.to_pydict(),
        result.fields.schema,
        result.output_fields,
        groups,
    )


def sequential(monkeypatch: pytest.MonkeyPatch, call: Callable[[], SearchResult]) -> SearchResult:
    """``call`` with every source searched in turn on the calling thread (the old behaviour)."""
    with monkeypatch.context() as patch:
        patch.setattr(segment_pool, "CORES", 1)
        return call()


@pytest.fixture(params=[True, False], ids=["index", "exact"])
def index_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param:
        monkeypatch.setattr(search_module, "EXACT_SEARCH_MAX_ROWS", 0)  # through the faiss index
    return bool(request.param)


@needs_cores
@pytest.mark.parametrize("nq", [1, 3, WIDE_MIN_QUERIES + 4])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_parallel_search_equals_sequential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index_path: bool, shape: str, nq: int
) -> None:
    request_kw, world_kw = SHAPES[shape]
    world = build_world(LocalStore(tmp_path), index_type="HNSW" if index_path else "FLAT", **world_kw)
    ctx = world.ctx
    if shape == "partition_1":
        ctx = replace(ctx, sources=tuple(s for s in ctx.sources if s.partition_id == 1))
    queries = np.random.default_rng(nq).standard_normal((nq, DIM)).astype(np.float32)
    request = SearchRequest(collection="c", vectors=queries, **{"limit": 10, **request_kw})
    want = answer(sequential(monkeypatch, lambda: execute_search(ctx, request)))
    for _ in range(3):  # the interleaving of the threads differs from run to run
        assert answer(execute_search(ctx, request)) == want


@needs_cores
@pytest.mark.parametrize("nq", [1, 2])
def test_parallel_search_equals_brute_force(tmp_path: Path, nq: int) -> None:
    world = build_world(LocalStore(tmp_path), deletes=DELETES)
    queries = np.random.default_rng(9).standard_normal((nq, DIM)).astype(np.float32)
    result = execute_search(world.ctx, SearchRequest(collection="c", vectors=queries, limit=40))
    ids = world.rows.column("id").to_numpy()
    keep = ~np.isin(ids, [5, 310])  # pk 650's delete (ts 30) follows its insert (ts 20) too
    keep &= ids != 650
    want_ids, _ = oracle(world.rows, queries, 40, "L2", keep)
    got = result.ids.to_pylist()
    assert [got[i * 40 : (i + 1) * 40] for i in range(nq)] == want_ids


@needs_cores
def test_parallel_search_raises_what_sequential_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_module, "EXACT_SEARCH_MAX_ROWS", 0)
    world = build_world(LocalStore(tmp_path), index_type="HNSW")
    queries = np.random.default_rng(2).standard_normal((2, DIM)).astype(np.float32)
    request = SearchRequest(collection="c", vectors=queries, limit=50, params={"ef": 20})  # ef < k

    def run() -> SheafError:
        with pytest.raises(SheafError) as caught:
            execute_search(world.ctx, request)
        return caught.value

    want = sequential(monkeypatch, run)  # type: ignore[arg-type]
    got = run()
    assert (type(got), str(got)) == (type(want), str(want))


@needs_cores
def test_run_all_runs_tasks_at_once_and_keeps_their_order() -> None:
    # Both tasks wait for each other: this passes only if they run on two threads at once.
    meet = threading.Barrier(2, timeout=30)
    tasks = [lambda i=i: (meet.wait(), i)[1] for i in range(2)]
    assert segment_pool.run_all(tasks, nq=1) == [0, 1]


@needs_cores
def test_run_all_raises_the_first_failing_task_in_task_order() -> None:
    second_failed = threading.Event()

    def first() -> int:
        second_failed.wait(30)  # the later task fails first in time
        raise ValueError("first")

    def second() -> int:
        second_failed.set()
        raise KeyError("second")

    with pytest.raises(ValueError, match="first"):
        segment_pool.run_all([first, second], nq=1)


def test_run_all_keeps_wide_batches_on_the_calling_thread() -> None:
    caller = threading.current_thread()
    ran_on = segment_pool.run_all([threading.current_thread] * 4, nq=WIDE_MIN_QUERIES)
    assert ran_on == [caller] * 4


@pytest.mark.parametrize("with_growing", [True, False], ids=["growing", "sealed_only"])
def test_multi_source_gather_equals_row_by_row(tmp_path: Path, with_growing: bool) -> None:
    world = build_world(LocalStore(tmp_path))
    sealed_a, sealed_b, growing = world.ctx.sources
    # Growing rows without "num": a field added after they were written reads as nulls.
    # Sealed segments only: their numeric columns are gathered from numpy views.
    assert isinstance(growing, GrowingRows)
    without_num = GrowingRows(growing.partition_id, growing.table.drop_columns(["num"]))
    sources = (sealed_a, sealed_b, without_num) if with_growing else (sealed_a, sealed_b)
    rng = np.random.default_rng(4)
    source_ids = rng.integers(0, len(sources), 50)
    rows = np.array([rng.integers(0, sources[s].num_rows) for s in source_ids], dtype=np.int64)
    kinds = world.ctx.schema.arrow_schema()
    columns = ("id", "num", "color", "$meta")
    plan = OutputPlan(columns, ("num", "color"), ("tag",), tuple(kinds.field(c).type for c in columns))
    table = gather(sources, source_ids, rows, plan)
    assert table.column_names == ["id", "num", "color", "$meta"]
    assert table.schema.field("num").type == pa.int64()
    for name in ("id", "num", "color"):
        want = [
            sources[s].table.column(name)[int(r)].as_py() if name in sources[s].table.column_names else None
            for s, r in zip(source_ids, rows, strict=True)
        ]
        assert table.column(name).to_pylist() == want
    metas = [sources[s].table.column("$meta")[int(r)].as_py() for s, r in zip(source_ids, rows, strict=True)]
    assert table.column("$meta").to_pylist() == [json.dumps({"tag": json.loads(m)["tag"]}) for m in metas]
