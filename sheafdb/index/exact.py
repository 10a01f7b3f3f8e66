"""Exact (brute-force) search over given vectors: growing rows, and sealed rows when a filter
leaves so few that scanning them beats walking an index.

Same conventions as the indexes: Milvus scores, labels are row positions in ``vectors``
(-1 padded), ``allowed`` a bool mask over those rows. With a mask, only the allowed rows are
gathered and scanned, so the cost follows the rows that pass the filter; dense rows are gathered
in pieces of at most GATHER_BYTES, each piece's best k merged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faiss
import numpy as np

from sheafdb.index import metrics
from sheafdb.index.binary import exact_binary_range, exact_binary_search
from sheafdb.index.dense import faiss_metric
from sheafdb.index.faiss_threads import search_threads
from sheafdb.index.params import IndexSpec, parse_search_params
from sheafdb.index.results import (
    check_mask,
    empty_topk,
    finish_range,
    fix_padding,
    remap_labels,
    require_radius,
)
from sheafdb.index.sparse import SparseInvertedIndex
from sheafdb.index.vectors import SparseMatrix, as_sparse, binary_queries, dense_queries, normalize_rows

# Allowed rows are gathered in pieces of at most this many bytes: the server pins glibc's mmap
# threshold at 1 MiB (engine/load/memory.py), so a larger temporary is a fresh mapping page-faulted
# on every search (5x slower at 5,000 x 128-d rows).
GATHER_BYTES = 512 * 1024


def exact_search(
    spec_or_metric: IndexSpec | str,
    vectors: np.ndarray | SparseMatrix,
    queries: Any,
    k: int,
    params: Mapping[str, Any],
    allowed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k: (scores float32 (nq, k), labels int64 (nq, k), -1 padded)."""
    metric = _metric(spec_or_metric)
    if isinstance(vectors, SparseMatrix):
        subset, rows = _sparse_subset(vectors, allowed)
        index = SparseInvertedIndex.build(IndexSpec("SPARSE_INVERTED_INDEX", metrics.IP), subset)
        scores, labels = index.search(queries, k, params, None)
        return scores, labels if rows is None else remap_labels(labels, rows)
    if metric in metrics.BINARY_METRICS:
        xq = binary_queries(queries, vectors.shape[1])
        return exact_binary_search(vectors, xq, k, metric, allowed)
    xb, xq = dense_queries(vectors), dense_queries(queries)
    if metric == metrics.COSINE:
        xq = normalize_rows(xq)
    if allowed is None:
        return _dense_knn(metric, xb, xq, k, None)
    rows = np.flatnonzero(check_mask(allowed, len(xb)))
    step = max(1, GATHER_BYTES // max(1, xb.shape[1] * xb.itemsize))
    pieces = np.split(rows, range(step, len(rows), step))
    found = [_dense_knn(metric, xb[piece], xq, k, piece) for piece in pieces]
    return found[0] if len(found) == 1 else _best_of_pieces(metric, found, k)


def _dense_knn(
    metric: str, xb: np.ndarray, xq: np.ndarray, k: int, rows: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of ``xq`` (normalised already for COSINE) over ``xb``; labels mapped through ``rows``."""
    if metric == metrics.COSINE:
        xb = normalize_rows(xb)
    xb = np.ascontiguousarray(xb)
    take = min(k, len(xb))
    if take == 0:
        return empty_topk(len(xq), k, metric)
    with search_threads(len(xq)):
        found_scores, found_labels = faiss.knn(xq, xb, take, metric=faiss_metric(metric))
    scores, labels = empty_topk(len(xq), k, metric)
    scores[:, :take], labels[:, :take] = fix_padding(found_scores, found_labels, metric)
    return scores, labels if rows is None else remap_labels(labels, rows)


def _best_of_pieces(
    metric: str, found: list[tuple[np.ndarray, np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's best k over the pieces' top-k lists (ties: the earlier piece first)."""
    scores = np.concatenate([s for s, _ in found], axis=1)
    labels = np.concatenate([lab for _, lab in found], axis=1)
    key = np.where(labels >= 0, metrics.sort_key(metric, scores), np.inf)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(labels, order, axis=1)


def exact_range_search(
    spec_or_metric: IndexSpec | str,
    vectors: np.ndarray | SparseMatrix,
    queries: Any,
    params: Mapping[str, Any],
    allowed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact range search: (lims int64 (nq+1), scores, labels), each query's hits best first."""
    metric = _metric(spec_or_metric)
    parsed = parse_search_params(params)
    radius = require_radius(metric, parsed.radius, parsed.range_filter)
    if isinstance(vectors, SparseMatrix):
        subset, rows = _sparse_subset(vectors, allowed)
        index = SparseInvertedIndex.build(IndexSpec("SPARSE_INVERTED_INDEX", metrics.IP), subset)
        lims, scores, labels = index.range_search(queries, params, None)
        return lims, scores, labels if rows is None else rows[labels]
    if metric in metrics.BINARY_METRICS:
        xq = binary_queries(queries, vectors.shape[1])
        return exact_binary_range(vectors, xq, metric, radius, parsed.range_filter, allowed)
    xb, xq, rows = _dense_inputs(metric, vectors, queries, allowed)
    flat = faiss.IndexFlat(xq.shape[1], faiss_metric(metric))
    flat.add(xb)
    with search_threads(len(xq)):
        lims, scores, labels = flat.range_search(xq, radius)
    lims, scores, labels = finish_range(metric, lims, scores, labels, radius, parsed.range_filter)
    return lims, scores, labels if rows is None else rows[labels]


def _metric(spec_or_metric: IndexSpec | str) -> str:
    return spec_or_metric.metric_type if isinstance(spec_or_metric, IndexSpec) else spec_or_metric.upper()


def _dense_inputs(
    metric: str, vectors: np.ndarray, queries: Any, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    xb = dense_queries(vectors)
    rows = None
    if allowed is not None:
        rows = np.flatnonzero(check_mask(allowed, len(xb)))
        xb = xb[rows]
    xq = dense_queries(queries)
    if metric == metrics.COSINE:
        xb, xq = normalize_rows(xb), normalize_rows(xq)
    return np.ascontiguousarray(xb), xq, rows


def _sparse_subset(
    vectors: SparseMatrix, allowed: np.ndarray | None
) -> tuple[SparseMatrix, np.ndarray | None]:
    if allowed is None:
        return vectors, None
    rows = np.flatnonzero(check_mask(allowed, vectors.num_rows))
    return as_sparse(vectors).take(rows), rows
