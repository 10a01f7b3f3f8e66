"""Dense float indexes on faiss: FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ, HNSW, HNSW_SQ, HNSW_PQ.

COSINE is IP over L2-normalised vectors (data at build, queries at search). Filtering goes
into faiss as an IDSelectorBitmap inside the Search parameters, so the index only ever visits
allowed rows. Trained types fall back to an exact flat index when a segment has too few rows
to train them (fewer rows than IVF lists, or than PQ centroids), as Milvus searches such small
segments by brute force; the fallback is visible in the saved file, so load needs no flag.

A faiss index is read-only after build: concurrent searches are safe without a lock, since
all per-search knobs (efSearch, nprobe, selector) travel in a per-call SearchParameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faiss
import numpy as np

from sheafdb.index import metrics
from sheafdb.index.params import IndexSpec, parse_search_params
from sheafdb.index.protocols import IndexStore, write_index_bytes
from sheafdb.index.results import AllowedSelector, empty_topk, finish_range, fix_padding, require_radius
from sheafdb.index.vectors import dense_queries, normalize_rows

_SQ_TYPES = {
    "SQ4U": faiss.ScalarQuantizer.QT_4bit_uniform,
    "SQ6": faiss.ScalarQuantizer.QT_6bit,
    "SQ8": faiss.ScalarQuantizer.QT_8bit,
    "FP16": faiss.ScalarQuantizer.QT_fp16,
    "BF16": faiss.ScalarQuantizer.QT_bf16,
}


def faiss_metric(metric: str) -> int:
    return faiss.METRIC_L2 if metric == metrics.L2 else faiss.METRIC_INNER_PRODUCT


def default_pq_m(dim: int) -> int:
    """IVF_PQ/HNSW_PQ ``m`` when not given: the largest divisor of dim up to dim/4 (max 32)."""
    return max(m for m in range(1, min(32, max(1, dim // 4)) + 1) if dim % m == 0)


class DenseIndex:
    """A faiss index over float32 vectors, searched in Milvus's score convention."""

    def __init__(self, spec: IndexSpec, index: faiss.Index, nbytes: int | None = None) -> None:
        self.spec = spec
        self.index = index
        self.num_rows = int(index.ntotal)
        self._nbytes = nbytes

    @property
    def nbytes(self) -> int:
        # faiss has no generic size query; its serialized size is the in-memory footprint to
        # within a few headers (codes, graph links, centroids).
        if self._nbytes is None:
            self._nbytes = int(faiss.serialize_index(self.index).nbytes)
        return self._nbytes

    def search(
        self, queries: np.ndarray, k: int, params: Mapping[str, Any], allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        metric = self.spec.metric_type
        xq = self._queries(queries)
        if k == 0 or self.num_rows == 0 or (allowed is not None and not allowed.any()):
            return empty_topk(len(xq), k, metric)
        selector = AllowedSelector(allowed, self.num_rows) if allowed is not None else None
        search_params = self._search_parameters(params, k, selector)
        scores, labels = self.index.search(xq, k, params=search_params)
        return fix_padding(scores, labels, metric)

    def range_search(
        self, queries: np.ndarray, params: Mapping[str, Any], allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        metric = self.spec.metric_type
        parsed = parse_search_params(params)
        radius = require_radius(metric, parsed.radius, parsed.range_filter)
        xq = self._queries(queries)
        if self.num_rows == 0:
            return np.zeros(len(xq) + 1, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
        selector = AllowedSelector(allowed, self.num_rows) if allowed is not None else None
        # Range search has no k; HNSW's beam then is the ef asked for or knowhere's floor.
        search_params = self._search_parameters(params, 1, selector)
        lims, scores, labels = self.index.range_search(xq, radius, params=search_params)
        return finish_range(metric, lims, scores, labels, radius, parsed.range_filter)

    def save(self, store: IndexStore, path: str) -> int:
        return write_index_bytes(store, path, self.save_bytes())

    def save_bytes(self) -> bytes:
        data = faiss.serialize_index(self.index)
        self._nbytes = int(data.nbytes)
        return data.tobytes()

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        xq = dense_queries(queries)
        return normalize_rows(xq) if self.spec.metric_type == metrics.COSINE else xq

    def _search_parameters(
        self, params: Mapping[str, Any], k: int, selector: AllowedSelector | None
    ) -> faiss.SearchParameters:
        parsed = parse_search_params(params)
        sel = selector.selector if selector is not None else None
        if isinstance(self.index, faiss.IndexHNSW):
            return faiss.SearchParametersHNSW(efSearch=parsed.ef_for(k), sel=sel)
        if isinstance(self.index, faiss.IndexIVF):
            return faiss.SearchParametersIVF(nprobe=min(parsed.nprobe, self.index.nlist), sel=sel)
        return faiss.SearchParameters(sel=sel)


def build_dense(
    spec: IndexSpec, index_type: str, build: Mapping[str, Any], vectors: np.ndarray
) -> DenseIndex:
    """Build the faiss index for ``index_type`` with full ``build`` params over ``vectors``."""
    xb = dense_queries(vectors)
    if spec.metric_type == metrics.COSINE:
        xb = normalize_rows(xb)
    n, dim = xb.shape
    metric = faiss_metric(spec.metric_type)
    index = _make_index(index_type, build, n, dim, metric)
    if not index.is_trained:
        index.train(xb)
    if n:
        index.add(xb)
    return DenseIndex(spec, index)


def _make_index(index_type: str, build: Mapping[str, Any], n: int, dim: int, metric: int) -> faiss.Index:
    nlist = int(build["nlist"])
    nbits = int(build["nbits"])
    pq_m = int(build.get("m") or default_pq_m(dim))
    if index_type == "FLAT" or _too_small_to_train(index_type, n, nlist, nbits):
        return faiss.IndexFlat(dim, metric)
    if index_type in ("IVF_FLAT", "IVF_SQ8", "IVF_PQ"):
        quantizer = faiss.IndexFlat(dim, metric)
        if index_type == "IVF_FLAT":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, metric)
        elif index_type == "IVF_SQ8":
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, metric
            )
        else:
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, nbits, metric)
        return index  # faiss's Python wrapper keeps the quantizer alive with the index
    if index_type == "HNSW":
        index = faiss.IndexHNSWFlat(dim, int(build["M"]), metric)
    elif index_type == "HNSW_SQ":
        index = faiss.IndexHNSWSQ(dim, _SQ_TYPES[str(build["sq_type"])], int(build["M"]), metric)
    elif index_type == "HNSW_PQ":
        index = faiss.IndexHNSWPQ(dim, pq_m, int(build["M"]), nbits, metric)
    else:
        raise ValueError(f"not a dense index type: {index_type}")
    index.hnsw.efConstruction = int(build["efConstruction"])
    return index


def _too_small_to_train(index_type: str, n: int, nlist: int, nbits: int) -> bool:
    if n == 0 or (index_type.startswith("IVF") and n < nlist):
        return True
    return index_type in ("IVF_PQ", "HNSW_PQ") and n < 2**nbits
