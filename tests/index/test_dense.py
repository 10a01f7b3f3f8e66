from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sheafdb.errors import ParameterInvalid, UnexpectedError
from sheafdb.index import build_index, load_index, parse_index_params
from sheafdb.schema import DataType, FieldSchema
from sheafdb.storage.object_store import LocalStore

from .index_oracle import clustered, dense_scores, recall, topk

DIM = 32
FIELD = FieldSchema("v", DataType.FLOAT_VECTOR, dim=DIM)
DATA = clustered(2000, DIM, seed=1)
QUERIES = clustered(20, DIM, seed=2)
K = 10
SEARCH = {"ef": 64, "nprobe": 16}

# (index_type, build params, minimum recall@10, whether scores are exact)
INDEXES = [
    ("FLAT", {}, 1.0, True),
    ("HNSW", {"M": "16", "efConstruction": "100"}, 0.9, True),
    ("IVF_FLAT", {"nlist": "32"}, 0.9, True),
    ("IVF_SQ8", {"nlist": "32"}, 0.8, False),
    ("IVF_PQ", {"nlist": "32", "m": "8"}, 0.3, False),
    ("HNSW_SQ", {"M": "16", "efConstruction": "100"}, 0.8, False),
    ("HNSW_PQ", {"M": "16", "efConstruction": "100", "m": "8"}, 0.3, False),
    ("AUTOINDEX", {}, 0.9, True),
]
METRICS = ["L2", "IP", "COSINE"]


def _build(index_type: str, params: dict[str, str], metric: str, data: np.ndarray = DATA):
    spec = parse_index_params(FIELD, {"index_type": index_type, "metric_type": metric, **params})
    return build_index(spec, data)


@pytest.mark.parametrize(("index_type", "params", "min_recall", "exact_scores"), INDEXES)
@pytest.mark.parametrize("metric", METRICS)
def test_search_against_oracle(
    index_type: str, params: dict[str, str], min_recall: float, exact_scores: bool, metric: str
) -> None:
    index = _build(index_type, params, metric)
    assert index.num_rows == len(DATA) and index.nbytes > 0
    scores, labels = index.search(QUERIES, K, SEARCH, None)
    assert scores.shape == labels.shape == (len(QUERIES), K)
    assert scores.dtype == np.float32 and labels.dtype == np.int64
    truth_scores = dense_scores(metric, DATA, QUERIES)
    truth = topk(metric, truth_scores, K)
    if metric == "IP" and index_type.startswith(("HNSW", "AUTO")):
        # Graph search is weaker for raw inner product (not a metric) on unnormalised data.
        min_recall *= 0.7
    assert recall(labels, truth) >= min_recall
    # Best first in Milvus's direction.
    ordered = -scores if metric != "L2" else scores
    assert np.all(np.diff(ordered, axis=1) >= -1e-4)
    if exact_scores:
        expected = np.take_along_axis(truth_scores, labels, axis=1)
        assert np.allclose(scores, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(("index_type", "params"), [(t, p) for t, p, _, _ in INDEXES])
def test_allowed_mask_is_applied_inside_the_index(index_type: str, params: dict[str, str]) -> None:
    index = _build(index_type, params, "L2")
    rng = np.random.default_rng(3)
    allowed = rng.random(len(DATA)) < 0.3
    _, labels = index.search(QUERIES, K, SEARCH, allowed)
    hits = labels[labels >= 0]
    assert allowed[hits].all()
    # Nearly every query still fills k with allowed rows (no post-filter starvation).
    assert (labels >= 0).sum() >= 0.9 * labels.size


def test_fewer_than_k_when_few_rows_are_allowed() -> None:
    for index_type, params, _, _ in INDEXES:
        index = _build(index_type, params, "IP")
        allowed = np.zeros(len(DATA), dtype=bool)
        allowed[[5, 17, 99]] = True
        scores, labels = index.search(QUERIES[:3], K, SEARCH, allowed)
        for row_scores, row in zip(scores, labels, strict=True):
            found = set(row[row >= 0].tolist())
            assert found <= {5, 17, 99}
            assert np.all(row[3:] == -1) and np.all(np.isneginf(row_scores[3:]))
        none_scores, none_labels = index.search(QUERIES[:2], K, SEARCH, np.zeros(len(DATA), bool))
        assert np.all(none_labels == -1) and np.all(np.isneginf(none_scores))


def test_flat_filtered_is_exact() -> None:
    index = _build("FLAT", {}, "COSINE")
    allowed = np.arange(len(DATA)) % 7 == 0
    _, labels = index.search(QUERIES, K, {}, allowed)
    truth = topk("COSINE", dense_scores("COSINE", DATA, QUERIES), K, allowed)
    assert recall(labels, truth) == 1.0


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("index_type", ["FLAT", "HNSW", "IVF_FLAT"])
def test_range_search_window(metric: str, index_type: str) -> None:
    params = {"HNSW": {"M": "16", "efConstruction": "100"}, "IVF_FLAT": {"nlist": "8"}}.get(index_type, {})
    index = _build(index_type, params, metric)
    truth = dense_scores(metric, DATA, QUERIES[:4])
    # A window holding roughly the 20th..200th best scores of the first query.
    ranked = np.sort(truth[0]) if metric == "L2" else np.sort(truth[0])[::-1]
    near, far = float(ranked[20]), float(ranked[200])
    window = {"radius": far, "range_filter": near, "ef": 256, "nprobe": 8}
    # FLAT and IVF probing all 8 lists are exact; HNSW's range walk is approximate.
    min_recall = 0.6 if index_type == "HNSW" else 1.0
    lims, scores, labels = index.range_search(QUERIES[:4], window, None)
    assert len(lims) == 5 and lims[-1] == len(scores) == len(labels)
    for q in range(4):
        got_scores = scores[lims[q] : lims[q + 1]]
        got = labels[lims[q] : lims[q + 1]]
        if metric == "L2":
            assert np.all((got_scores < far) & (got_scores >= near - 1e-3))
            expected = np.flatnonzero((truth[q] < far) & (truth[q] >= near))
            assert np.all(np.diff(got_scores) >= 0)
        else:
            assert np.all((got_scores > far) & (got_scores <= near + 1e-3))
            expected = np.flatnonzero((truth[q] > far) & (truth[q] <= near))
            assert np.all(np.diff(got_scores) <= 0)
        found = set(got.tolist())
        assert len(found & set(expected.tolist())) >= min_recall * len(expected)


def test_range_search_with_mask_and_validation() -> None:
    index = _build("HNSW", {"M": "16"}, "L2")
    allowed = np.arange(len(DATA)) % 2 == 1
    lims, _, labels = index.range_search(QUERIES, {"radius": 1e9}, allowed)
    assert lims[-1] > 0 and allowed[labels].all()
    with pytest.raises(ParameterInvalid, match="range_filter must be less than radius"):
        index.range_search(QUERIES, {"radius": 1.0, "range_filter": 2.0}, None)
    with pytest.raises(ParameterInvalid, match="radius"):
        index.range_search(QUERIES, {}, None)


def test_ef_smaller_than_k_is_rejected() -> None:
    index = _build("HNSW", {}, "L2")
    with pytest.raises(UnexpectedError, match=r"ef\(5\) should be larger than k\(10\)"):
        index.search(QUERIES, 10, {"ef": 5}, None)


@pytest.mark.parametrize(("index_type", "params"), [(t, p) for t, p, _, _ in INDEXES])
def test_save_load_round_trip(tmp_path: Path, index_type: str, params: dict[str, str]) -> None:
    store = LocalStore(tmp_path)
    index = _build(index_type, params, "COSINE")
    allowed = np.arange(len(DATA)) % 3 != 0
    before = index.search(QUERIES, K, SEARCH, allowed)
    written = index.save(store, "seg/1/v.index")
    loaded = load_index(store, "seg/1/v.index", index.spec)
    assert loaded.nbytes == written == store.size("seg/1/v.index")
    assert loaded.num_rows == index.num_rows
    after = loaded.search(QUERIES, K, SEARCH, allowed)
    assert np.array_equal(before[1], after[1]) and np.array_equal(before[0], after[0])


def test_small_segments_fall_back_to_exact_search() -> None:
    small = DATA[:50]
    for index_type, params in [
        ("IVF_FLAT", {"nlist": "128"}),
        ("IVF_PQ", {"m": "8"}),
        ("HNSW_PQ", {"m": "4"}),
    ]:
        index = _build(index_type, params, "L2", small)
        _, labels = index.search(QUERIES, 5, {}, None)
        truth = topk("L2", dense_scores("L2", small, QUERIES), 5)
        assert recall(labels, truth) == 1.0


def test_empty_segment_and_k_beyond_rows() -> None:
    empty = _build("HNSW", {}, "L2", np.zeros((0, DIM), np.float32))
    scores, labels = empty.search(QUERIES[:2], 3, {}, None)
    assert np.all(labels == -1) and np.all(np.isposinf(scores))
    tiny = _build("FLAT", {}, "L2", DATA[:4])
    _, labels = tiny.search(QUERIES[:1], 6, {}, None)
    assert sorted(labels[0][:4].tolist()) == [0, 1, 2, 3] and np.all(labels[0][4:] == -1)


def test_half_precision_queries() -> None:
    index = _build("FLAT", {}, "L2")
    exact = index.search(QUERIES.astype(np.float16).astype(np.float32), K, {}, None)
    half = index.search(QUERIES.astype(np.float16), K, {}, None)
    assert np.array_equal(exact[1], half[1])
