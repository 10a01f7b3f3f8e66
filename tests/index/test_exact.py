from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheafdb.index import SparseMatrix, exact_range_search, exact_search, higher_is_better, parse_index_params
from sheafdb.schema import DataType, FieldSchema

from .index_oracle import binary_scores, clustered, dense_scores, recall, topk

DATA = clustered(800, 16, seed=4)
QUERIES = clustered(6, 16, seed=5)


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_dense_exact_search_with_and_without_mask(metric: str) -> None:
    truth = dense_scores(metric, DATA, QUERIES)
    scores, labels = exact_search(metric, DATA, QUERIES, 10, {}, None)
    assert recall(labels, topk(metric, truth, 10)) == 1.0
    assert np.allclose(scores, np.take_along_axis(truth, labels, axis=1), rtol=1e-4, atol=1e-3)
    allowed = np.zeros(len(DATA), bool)
    allowed[[3, 50, 700]] = True
    scores, labels = exact_search(metric, DATA, QUERIES, 10, {}, allowed)
    assert np.all(np.sort(labels[:, :3], axis=1) == [3, 50, 700]) and np.all(labels[:, 3:] == -1)
    assert np.all(np.isinf(scores[:, 3:]))


def test_exact_search_accepts_a_spec() -> None:
    spec = parse_index_params(FieldSchema("v", DataType.FLOAT_VECTOR, dim=16), {"metric_type": "IP"})
    _, labels = exact_search(spec, DATA, QUERIES, 5, {}, None)
    assert recall(labels, topk("IP", dense_scores("IP", DATA, QUERIES), 5)) == 1.0


@pytest.mark.parametrize("metric", ["L2", "COSINE"])
def test_dense_exact_range(metric: str) -> None:
    truth = dense_scores(metric, DATA, QUERIES)
    lo, hi = np.quantile(truth, [0.1, 0.3])
    window = {"radius": hi, "range_filter": lo} if metric == "L2" else {"radius": lo, "range_filter": hi}
    allowed = np.arange(len(DATA)) % 3 == 0
    lims, scores, labels = exact_range_search(metric, DATA, QUERIES, window, allowed)
    for q in range(len(QUERIES)):
        inside = (truth[q] < hi) & (truth[q] >= lo) if metric == "L2" else (truth[q] > lo) & (truth[q] <= hi)
        expected = np.flatnonzero(inside & allowed)
        # float32 vs float64 rounding may move a boundary row.
        assert abs(len(set(labels[lims[q] : lims[q + 1]].tolist()) ^ set(expected.tolist()))) <= 2


@pytest.mark.parametrize("metric", ["HAMMING", "JACCARD"])
def test_binary_exact(metric: str) -> None:
    rng = np.random.default_rng(9)
    codes = rng.integers(0, 256, (300, 4), dtype=np.uint8)
    queries = rng.integers(0, 256, (5, 4), dtype=np.uint8)
    truth = binary_scores(metric, codes, queries)
    scores, _ = exact_search(metric, codes, queries, 7, {}, None)
    assert np.allclose(scores, np.sort(truth, axis=1)[:, :7], atol=1e-6)


def test_sparse_exact_with_mask() -> None:
    data = SparseMatrix.from_rows([{0: 1.0}, {0: 3.0, 5: 1.0}, {5: 2.0}, {7: 9.0}])
    query = SparseMatrix.from_rows([{0: 1.0, 5: 1.0}])
    scores, labels = exact_search("IP", data, query, 3, {}, np.array([True, False, True, True]))
    assert labels.tolist() == [[2, 0, -1]] and scores[0, :2].tolist() == [2.0, 1.0]
    lims, _, labels = exact_range_search("IP", data, query, {"radius": 1.5}, None)
    assert lims.tolist() == [0, 2] and labels.tolist() == [1, 2]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 40),
    k=st.integers(1, 12),
    metric=st.sampled_from(["L2", "IP", "COSINE"]),
    seed=st.integers(0, 2**16),
    density=st.floats(0, 1),
)
def test_exact_topk_matches_oracle(n: int, k: int, metric: str, seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n, 4)).astype(np.float32)
    queries = rng.normal(size=(3, 4)).astype(np.float32)
    allowed = rng.random(n) < density
    scores, labels = exact_search(metric, data, queries, k, {}, allowed)
    expected_hits = min(k, int(allowed.sum()))
    assert np.all((labels >= 0).sum(axis=1) == expected_hits)
    if n:
        truth = dense_scores(metric, data, queries)
        best = np.sort(np.where(allowed, truth, -np.inf if higher_is_better(metric) else np.inf), axis=1)
        best = best[:, ::-1] if higher_is_better(metric) else best
        assert np.allclose(scores[:, :expected_hits], best[:, :expected_hits], rtol=1e-4, atol=1e-4)
