"""faiss's OpenMP threads are chosen per call: a batch run on every core answers exactly what
the same batch run on one thread does, and what its queries answer one at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import faiss
import numpy as np
import pytest

from sheafdb.index import build_index, exact_search, parse_index_params
from sheafdb.index.faiss_threads import CORES, WIDE_MIN_QUERIES, search_threads
from sheafdb.schema import DataType, FieldSchema

from .index_oracle import clustered

DIM = 32
FIELD = FieldSchema("v", DataType.FLOAT_VECTOR, dim=DIM)
DATA = clustered(6000, DIM, seed=3)
QUERIES = clustered(64, DIM, seed=4)
K = 10
SEARCH = {"ef": 48, "nprobe": 8}

needs_cores = pytest.mark.skipif(CORES < 2, reason="one core: every search runs on one thread")

T = TypeVar("T")


def on_fresh_thread(call: Callable[[], T]) -> T:
    """Run ``call`` on a new thread, as a server's request thread would (process-default ICVs)."""
    out: list[T] = []
    worker = threading.Thread(target=lambda: out.append(call()))
    worker.start()
    worker.join()
    return out[0]


def wide_and_narrow(call: Callable[[], T]) -> tuple[T, T]:
    """``call`` once with the wide slot free, once while this thread holds it (so it runs narrow)."""
    wide = on_fresh_thread(call)
    with search_threads(WIDE_MIN_QUERIES):
        narrow = on_fresh_thread(call)
    return wide, narrow


def _index(index_type: str, params: dict[str, str], metric: str = "L2"):
    spec = parse_index_params(FIELD, {"index_type": index_type, "metric_type": metric, **params})
    return build_index(spec, DATA)


@needs_cores
@pytest.mark.parametrize(
    ("index_type", "params"),
    [
        ("HNSW", {"M": "16", "efConstruction": "64"}),
        ("HNSW_SQ", {"M": "16", "efConstruction": "64"}),
        ("IVF_FLAT", {"nlist": "32"}),
        ("FLAT", {}),
    ],
)
@pytest.mark.parametrize("metric", ["L2", "COSINE"])
def test_wide_batch_answers_what_one_thread_answers(
    index_type: str, params: dict[str, str], metric: str
) -> None:
    index = _index(index_type, params, metric)
    wide, narrow = wide_and_narrow(lambda: index.search(QUERIES, K, SEARCH, None))
    np.testing.assert_array_equal(wide[1], narrow[1])
    np.testing.assert_array_equal(wide[0], narrow[0])
    assert (wide[1] >= 0).all()


@pytest.mark.parametrize(
    ("index_type", "params"), [("HNSW", {"M": "16", "efConstruction": "64"}), ("IVF_FLAT", {"nlist": "32"})]
)
def test_wide_batch_answers_what_each_query_answers_alone(index_type: str, params: dict[str, str]) -> None:
    # A graph walk or list scan per query does not depend on its neighbours in the batch.
    index = _index(index_type, params)
    scores, labels = on_fresh_thread(lambda: index.search(QUERIES, K, SEARCH, None))
    for q, query in enumerate(QUERIES):
        alone_scores, alone_labels = index.search(query[None, :], K, SEARCH, None)
        np.testing.assert_array_equal(alone_labels[0], labels[q])
        np.testing.assert_array_equal(alone_scores[0], scores[q])


@needs_cores
def test_filtered_and_range_searches_wide_equal_narrow() -> None:
    index = _index("HNSW", {"M": "16", "efConstruction": "64"})
    allowed = np.random.default_rng(5).random(len(DATA)) < 0.3
    wide, narrow = wide_and_narrow(lambda: index.search(QUERIES, K, SEARCH, allowed))
    np.testing.assert_array_equal(wide[1], narrow[1])
    assert allowed[wide[1][wide[1] >= 0]].all()
    ranged = {**SEARCH, "radius": float(np.median(wide[0][:, -1]))}  # about k hits per query
    wide_range, narrow_range = wide_and_narrow(lambda: index.range_search(QUERIES, ranged, None))
    for got, expected in zip(wide_range, narrow_range, strict=True):
        np.testing.assert_array_equal(got, expected)
    assert len(wide_range[2]) > 0


@needs_cores
def test_exact_search_wide_equals_narrow() -> None:
    wide, narrow = wide_and_narrow(lambda: exact_search("L2", DATA, QUERIES, K, {}, None))
    np.testing.assert_array_equal(wide[1], narrow[1])
    np.testing.assert_array_equal(wide[0], narrow[0])


def test_thread_count_belongs_to_the_calling_thread() -> None:
    # The premise: libgomp keeps the count per thread, so setting it here leaves a new thread
    # at the process default (what gRPC's request threads start with).
    with search_threads(1):
        assert faiss.omp_get_max_threads() == 1
        assert on_fresh_thread(faiss.omp_get_max_threads) == CORES


@needs_cores
def test_one_wide_search_at_a_time_and_the_slot_comes_back() -> None:
    def threads_inside(nq: int) -> int:
        with search_threads(nq):
            return faiss.omp_get_max_threads()

    assert threads_inside(WIDE_MIN_QUERIES - 1) == 1
    with search_threads(WIDE_MIN_QUERIES):
        assert faiss.omp_get_max_threads() == CORES
        assert on_fresh_thread(lambda: threads_inside(1000)) == 1  # the slot is taken
    with pytest.raises(RuntimeError), search_threads(WIDE_MIN_QUERIES):
        raise RuntimeError("a failing search")
    assert on_fresh_thread(lambda: threads_inside(WIDE_MIN_QUERIES)) == CORES
