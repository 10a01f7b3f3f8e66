"""Shaping search results: faiss selectors from masks, top-k from score matrices, padding and
range-search lists in Milvus's conventions (labels -1 padded, best hit first).
"""

from __future__ import annotations

import faiss
import numpy as np

from sheafdb.errors import ParameterInvalid
from sheafdb.index import metrics


class AllowedSelector:
    """A faiss IDSelectorBitmap over a bool mask; keeps the bitmap alive while faiss reads it."""

    def __init__(self, allowed: np.ndarray, num_rows: int) -> None:
        mask = check_mask(allowed, num_rows)
        self.bitmap = np.packbits(mask, bitorder="little")
        self.selector = faiss.IDSelectorBitmap(len(self.bitmap), faiss.swig_ptr(self.bitmap))


def check_mask(allowed: np.ndarray, num_rows: int) -> np.ndarray:
    mask = np.asarray(allowed, dtype=bool)
    if mask.shape != (num_rows,):
        raise ParameterInvalid(f"allowed mask has {mask.shape} entries, the index has {num_rows} rows")
    return mask


def empty_topk(nq: int, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    scores = np.full((nq, k), metrics.worst_score(metric), dtype=np.float32)
    return scores, np.full((nq, k), -1, dtype=np.int64)


def fix_padding(scores: np.ndarray, labels: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """faiss pads with +-FLT_MAX; make padding the metric's worst score (+-inf) and float32."""
    scores = scores.astype(np.float32, copy=False)
    padded = labels < 0
    if padded.any():
        scores[padded] = metrics.worst_score(metric)
    return scores, labels.astype(np.int64, copy=False)


def topk_from_matrix(
    scores: np.ndarray, k: int, metric: str, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Best k columns per row of a dense (nq, n) score matrix; ``valid`` marks usable cells."""
    nq, n = scores.shape
    out_scores, out_labels = empty_topk(nq, k, metric)
    if n == 0 or k == 0:
        return out_scores, out_labels
    key = metrics.sort_key(metric, scores.astype(np.float32, copy=False))
    if valid is not None:
        key = np.where(valid, key, np.inf)
    take = min(k, n)
    part = np.argpartition(key, take - 1, axis=1)[:, :take] if take < n else np.tile(np.arange(n), (nq, 1))
    part_keys = np.take_along_axis(key, part, axis=1)
    order = np.argsort(part_keys, axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1)
    best_keys = np.take_along_axis(part_keys, order, axis=1)
    hit = np.isfinite(best_keys)
    out_labels[:, :take] = np.where(hit, best, -1)
    best_scores = np.take_along_axis(scores, best, axis=1).astype(np.float32)
    out_scores[:, :take] = np.where(hit, best_scores, metrics.worst_score(metric))
    return out_scores, out_labels


def remap_labels(labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Labels over a subset of rows -> labels over the full row space (keeping -1)."""
    mapped = np.full_like(labels, -1)
    hit = labels >= 0
    mapped[hit] = rows[labels[hit]]
    return mapped


def finish_range(
    metric: str,
    lims: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    radius: float,
    range_filter: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply Milvus's range window and sort every query's hits best first."""
    lims = np.asarray(lims, dtype=np.int64)  # faiss hands back uint64
    nq = len(lims) - 1
    scores = scores.astype(np.float32, copy=False)
    labels = labels.astype(np.int64, copy=False)
    query_of = np.repeat(np.arange(nq, dtype=np.int64), np.diff(lims))
    keep = metrics.in_range(metric, scores, radius, range_filter) & (labels >= 0)
    scores, labels, query_of = scores[keep], labels[keep], query_of[keep]
    order = np.lexsort((labels, metrics.sort_key(metric, scores), query_of))
    new_lims = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(np.bincount(query_of, minlength=nq), out=new_lims[1:])
    return new_lims, scores[order], labels[order]


def range_from_matrix(
    scores: np.ndarray,
    metric: str,
    radius: float,
    range_filter: float | None,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Range-search lists from a dense (nq, n) score matrix."""
    nq, n = scores.shape
    keep = metrics.in_range(metric, scores, radius, range_filter)
    if valid is not None:
        keep &= valid
    query_of, labels = np.nonzero(keep)
    lims = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(np.bincount(query_of, minlength=nq), out=lims[1:])
    return finish_range(metric, lims, scores[query_of, labels], labels.astype(np.int64), radius, range_filter)


def require_radius(metric: str, radius: float | None, range_filter: float | None) -> float:
    if radius is None:
        raise ParameterInvalid("range search needs a radius: invalid parameter")
    metrics.validate_range(metric, radius, range_filter)
    return radius
