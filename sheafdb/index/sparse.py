"""The sparse inverted index (SPARSE_INVERTED_INDEX, SPARSE_WAND): IP or BM25 over sparse vectors.

One posting list per dimension, held as flat numpy arrays sorted by dimension: ``dims`` (the
distinct dimensions), ``starts`` (where each one's postings begin), ``rows`` and ``values``.
A query gathers the postings of its own dimensions and accumulates ``value * query value``
per row with ``np.bincount``: cost O(postings touched + rows), no per-row Python. Like
Milvus, only rows sharing at least one dimension with the query are hits. The same structure,
built on the fly, serves exact search over growing rows. Read-only after build: no lock.

With metric BM25 the rows are term-frequency vectors (a BM25 function's output): the index
also keeps each row's length (its values' sum, taken before ``drop_ratio_build``), and a
posting contributes ``query weight x saturated(tf, length)`` (``bm25_weights.py``). The
query weights (count x idf) and ``bm25_avgdl`` come from the caller, which knows the whole
collection's statistics.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from sheafdb.index import metrics
from sheafdb.index.bm25_weights import DEFAULT_B, DEFAULT_K1, saturated
from sheafdb.index.params import IndexSpec, parse_search_params
from sheafdb.index.protocols import IndexStore, write_index_bytes
from sheafdb.index.results import check_mask, empty_topk, require_radius, topk_from_matrix
from sheafdb.index.vectors import SparseMatrix, as_sparse

_SAVED_ARRAYS = ("dims", "starts", "rows", "values")
# The search param carrying the collection's average document length (Milvus's name).
BM25_AVGDL = "bm25_avgdl"


class SparseInvertedIndex:
    def __init__(
        self,
        spec: IndexSpec,
        num_rows: int,
        dims: np.ndarray,
        starts: np.ndarray,
        rows: np.ndarray,
        values: np.ndarray,
        row_lengths: np.ndarray | None = None,
    ) -> None:
        self.spec = spec
        self.num_rows = num_rows
        self.dims = dims  # uint32, sorted distinct dimensions
        self.starts = starts  # int64, len(dims) + 1
        self.rows = rows  # int64 row of each posting
        self.values = values  # float32
        self.row_lengths = row_lengths  # float32 per row, BM25 only
        extra = 0 if row_lengths is None else row_lengths.nbytes
        self.nbytes = int(dims.nbytes + starts.nbytes + rows.nbytes + values.nbytes + extra)

    @classmethod
    def build(
        cls, spec: IndexSpec, matrix: SparseMatrix, drop_ratio_build: float = 0.0
    ) -> SparseInvertedIndex:
        row_of = np.repeat(np.arange(matrix.num_rows, dtype=np.int64), np.diff(matrix.indptr))
        indices, values = matrix.indices, matrix.values
        lengths = None
        if spec.metric_type == metrics.BM25:
            lengths = np.bincount(row_of, weights=values, minlength=matrix.num_rows).astype(np.float32)
        if drop_ratio_build > 0 and len(values):
            # knowhere drops the smallest-magnitude share of all values before building.
            threshold = np.quantile(np.abs(values), drop_ratio_build)
            keep = np.abs(values) >= threshold
            row_of, indices, values = row_of[keep], indices[keep], values[keep]
        order = np.argsort(indices, kind="stable")
        sorted_dims = indices[order]
        dims, first = np.unique(sorted_dims, return_index=True)
        starts = np.append(first, len(sorted_dims)).astype(np.int64)
        return cls(
            spec,
            matrix.num_rows,
            dims.astype(np.uint32),
            starts,
            row_of[order],
            values[order].astype(np.float32),
            lengths,
        )

    def doc_freqs(self, dims: np.ndarray) -> np.ndarray:
        """How many rows hold each of ``dims`` (BM25's document frequency)."""
        if len(self.dims) == 0:
            return np.zeros(len(dims), np.int64)
        slot = np.minimum(np.searchsorted(self.dims, dims), len(self.dims) - 1)
        return np.where(self.dims[slot] == dims, self.starts[slot + 1] - self.starts[slot], 0)

    def _bm25(self, params: Mapping[str, Any]) -> tuple[float, float, float] | None:
        """(avgdl, k1, b) when this is a BM25 index, else None."""
        if self.spec.metric_type != metrics.BM25:
            return None
        lengths = self.row_lengths if self.row_lengths is not None else np.zeros(1, np.float32)
        avgdl = params.get(BM25_AVGDL)
        own = float(lengths.mean()) if len(lengths) else 1.0
        k1 = float(self.spec.params.get("bm25_k1", DEFAULT_K1))
        b = float(self.spec.params.get("bm25_b", DEFAULT_B))
        return (own if avgdl is None else float(avgdl)), k1, b

    def scores(
        self,
        query_indices: np.ndarray,
        query_values: np.ndarray,
        bm25: tuple[float, float, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(IP or BM25 score per row, whether the row shares a dimension with the query)."""
        if len(self.dims) == 0:
            return np.zeros(self.num_rows, np.float32), np.zeros(self.num_rows, bool)
        slot = np.minimum(np.searchsorted(self.dims, query_indices), len(self.dims) - 1)
        present = self.dims[slot] == query_indices
        slot, weights = slot[present], query_values[present]
        lo, hi = self.starts[slot], self.starts[slot + 1]
        lengths = hi - lo
        offsets = np.repeat(lo - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        postings = np.arange(int(lengths.sum()), dtype=np.int64) + offsets
        rows = self.rows[postings]
        values = self.values[postings]
        if bm25 is not None and self.row_lengths is not None:
            avgdl, k1, b = bm25
            values = saturated(values, self.row_lengths[rows], avgdl, k1, b)
        contributions = values * np.repeat(weights, lengths)
        totals = np.bincount(rows, weights=contributions, minlength=self.num_rows)
        touched = np.bincount(rows, minlength=self.num_rows) > 0
        return totals.astype(np.float32), touched

    def search(
        self, queries: Any, k: int, params: Mapping[str, Any], allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        matrix = as_sparse(queries)
        drop = parse_search_params(params).drop_ratio_search
        mask = None if allowed is None else check_mask(allowed, self.num_rows)
        scores, labels = empty_topk(matrix.num_rows, k, metrics.IP)
        if k == 0 or self.num_rows == 0:
            return scores, labels
        bm25 = self._bm25(params)
        for q in range(matrix.num_rows):
            totals, touched = self.scores(*_query_terms(matrix, q, drop), bm25)
            valid = touched if mask is None else touched & mask
            scores[q], labels[q] = (
                part[0] for part in topk_from_matrix(totals[None, :], k, metrics.IP, valid)
            )
        return scores, labels

    def range_search(
        self, queries: Any, params: Mapping[str, Any], allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        matrix = as_sparse(queries)
        parsed = parse_search_params(params)
        radius = require_radius(metrics.IP, parsed.radius, parsed.range_filter)
        mask = None if allowed is None else check_mask(allowed, self.num_rows)
        lims = np.zeros(matrix.num_rows + 1, dtype=np.int64)
        all_scores: list[np.ndarray] = []
        all_labels: list[np.ndarray] = []
        bm25 = self._bm25(params)
        for q in range(matrix.num_rows):
            totals, touched = self.scores(*_query_terms(matrix, q, parsed.drop_ratio_search), bm25)
            keep = touched & metrics.in_range(metrics.IP, totals, radius, parsed.range_filter)
            if mask is not None:
                keep &= mask
            hits = np.flatnonzero(keep)
            order = np.lexsort((hits, -totals[hits]))
            all_labels.append(hits[order].astype(np.int64))
            all_scores.append(totals[hits][order])
            lims[q + 1] = lims[q] + len(hits)
        if not all_scores:
            return lims, np.zeros(0, np.float32), np.zeros(0, np.int64)
        return lims, np.concatenate(all_scores), np.concatenate(all_labels)

    def save(self, store: IndexStore, path: str) -> int:
        return write_index_bytes(store, path, self.save_bytes())

    def save_bytes(self) -> bytes:
        buffer = io.BytesIO()
        arrays = {name: getattr(self, name) for name in _SAVED_ARRAYS}
        if self.row_lengths is not None:
            arrays["row_lengths"] = self.row_lengths
        np.savez(buffer, num_rows=np.int64(self.num_rows), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, spec: IndexSpec, data: bytes) -> SparseInvertedIndex:
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            lengths = saved["row_lengths"] if "row_lengths" in saved.files else None
            return cls(spec, int(saved["num_rows"]), *(saved[name] for name in _SAVED_ARRAYS), lengths)


def _query_terms(matrix: SparseMatrix, q: int, drop_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Query q's (dims, values); drop_ratio_search drops its smallest-magnitude share."""
    lo, hi = int(matrix.indptr[q]), int(matrix.indptr[q + 1])
    indices, values = matrix.indices[lo:hi].astype(np.uint32), matrix.values[lo:hi].astype(np.float32)
    if drop_ratio > 0 and len(values):
        keep_count = max(1, int(np.ceil(len(values) * (1.0 - drop_ratio))))
        keep = np.argsort(-np.abs(values), kind="stable")[:keep_count]
        indices, values = indices[keep], values[keep]
    return indices, values
