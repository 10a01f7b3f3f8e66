"""Batch searches over real loaded segments and growing rows: the answer does not depend on how
many OpenMP threads faiss ran on (a batch runs on every core unless another batch holds them),
and a batch answers what its queries answer one at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sheafdb.engine.load.loaded_segment import LoadedSegment
from sheafdb.engine.models import SearchRequest, SearchResult
from sheafdb.engine.read import search as search_module
from sheafdb.engine.read.search import execute_search
from sheafdb.index.faiss_threads import CORES, WIDE_MIN_QUERIES, search_threads
from sheafdb.storage.object_store import LocalStore

from .read_plane_world import DIM, build_world

NQ = 40


def batch(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((NQ, DIM)).astype(np.float32)


def answer(result: SearchResult) -> tuple[list[int], list[int], list[float]]:
    return result.topks.tolist(), result.ids.to_pylist(), result.scores.tolist()


def on_fresh_thread(call: Callable[[], SearchResult]) -> SearchResult:
    """As a request thread of the server runs it: a new thread, process-default OpenMP count."""
    out: list[SearchResult] = []
    worker = threading.Thread(target=lambda: out.append(call()))
    worker.start()
    worker.join()
    return out[0]


@pytest.mark.skipif(CORES < 2, reason="one core: every search runs on one thread")
@pytest.mark.parametrize("index_path", [True, False], ids=["index", "exact"])
@pytest.mark.parametrize("filter_text", ["", "num >= 3"])
def test_wide_batch_equals_narrow_batch(
    tmp_path: Path, monkeypatch, index_path: bool, filter_text: str
) -> None:
    if index_path:
        monkeypatch.setattr(search_module, "EXACT_SEARCH_MAX_ROWS", 0)
    world = build_world(LocalStore(tmp_path), index_type="HNSW", metric="COSINE")
    request = SearchRequest(collection="c", vectors=batch(), limit=12, filter=filter_text, params={"ef": 32})
    wide = on_fresh_thread(lambda: execute_search(world.ctx, request))
    with search_threads(WIDE_MIN_QUERIES):  # this thread holds the wide slot: the next batch runs narrow
        narrow = on_fresh_thread(lambda: execute_search(world.ctx, request))
    assert answer(wide) == answer(narrow)
    assert wide.topks.tolist() == [12] * NQ


def test_batch_rows_equal_single_query_searches(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(search_module, "EXACT_SEARCH_MAX_ROWS", 0)  # every sealed segment by its HNSW
    world = build_world(LocalStore(tmp_path), index_type="HNSW", metric="L2")
    # Sealed segments only: growing rows are scanned exactly, where faiss computes a batch's
    # distances with BLAS and a single query's without (equal only to rounding).
    ctx = replace(world.ctx, sources=tuple(s for s in world.ctx.sources if isinstance(s, LoadedSegment)))
    assert len(ctx.sources) == 2
    queries = batch(4)
    whole = SearchRequest(collection="c", vectors=queries, limit=10, params={"ef": 32})
    topks, ids, scores = answer(on_fresh_thread(lambda: execute_search(ctx, whole)))
    assert topks == [10] * NQ
    for q, query in enumerate(queries):
        alone = SearchRequest(collection="c", vectors=query[None, :], limit=10, params={"ef": 32})
        rows = slice(q * 10, q * 10 + 10)
        assert answer(execute_search(ctx, alone)) == ([10], ids[rows], scores[rows])
