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

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import faiss
import numpy as np

from sheafdb.errors import ParameterInvalid
from sheafdb.index import metrics
from sheafdb.index.faiss_threads import search_threads
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


# How many SearchParameters objects (one per ef / nprobe) one index keeps per allowed set
# (cleared when full), and how many allowed sets' selectors (a bitmap of rows/8 bytes each).
_UNFILTERED_PARAMS_KEPT = 32
_FILTERED_MASKS_KEPT = 8


def _is_frozen(allowed: np.ndarray) -> bool:
    """A read-only bool array owning its data: the caller promises it never changes."""
    return allowed.dtype == np.bool_ and allowed.base is None and not allowed.flags.writeable


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
        # Unfiltered searches' SearchParameters by (efSearch or nprobe): faiss only reads them,
        # so one object serves concurrent searches. Written without a lock (GIL-atomic dict set;
        # a racing duplicate is equal). Few keys: requests use a handful of ef values.
        self._unfiltered_params: dict[int, faiss.SearchParameters] = {}
        # Filtered searches with a read-only mask the caller keeps (a loaded segment's cached
        # mask): id(mask) -> (mask, its selector, SearchParameters by knob), most recent last.
        # The entry holds the mask, so its id is not reused. Guarded by _filtered_lock.
        self._filtered: OrderedDict[
            int, tuple[np.ndarray, AllowedSelector, dict[int, faiss.SearchParameters]]
        ] = OrderedDict()
        self._filtered_lock = threading.Lock()

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
        if allowed is not None and _is_frozen(allowed):
            search_params = self._kept_filtered_parameters(params, k, allowed)
        else:
            selector = AllowedSelector(allowed, self.num_rows) if allowed is not None else None
            search_params = self._search_parameters(params, k, selector)
        n, dim = xq.shape
        if dim != self.index.d:  # search_c reads n * d floats: never let it read past the queries
            raise ParameterInvalid(
                f"vector dimension mismatch, expected vector size {self.index.d}, actual {dim}"
            )
        scores = np.empty((n, k), dtype=np.float32)
        labels = np.empty((n, k), dtype=np.int64)
        # The C++ search itself: faiss's Python ``search`` wraps it with checks and allocations
        # that _queries (C-contiguous float32) and the lines above already cover.
        ptrs = faiss.swig_ptr(xq), faiss.swig_ptr(scores), faiss.swig_ptr(labels)
        with search_threads(n):
            self.index.search_c(n, ptrs[0], k, ptrs[1], ptrs[2], search_params)
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
        with search_threads(len(xq)):
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

    def _knob(self, params: Mapping[str, Any], k: int) -> int:
        """The per-search knob of this index type: efSearch, nprobe, or 0 (none)."""
        parsed = parse_search_params(params)
        if isinstance(self.index, faiss.IndexHNSW):
            return parsed.ef_for(k)
        if isinstance(self.index, faiss.IndexIVF):
            return min(parsed.nprobe, self.index.nlist)
        return 0

    def _kept_filtered_parameters(
        self, params: Mapping[str, Any], k: int, allowed: np.ndarray
    ) -> faiss.SearchParameters:
        knob = self._knob(params, k)
        with self._filtered_lock:
            entry = self._filtered.get(id(allowed))
            if entry is not None and entry[0] is allowed:
                self._filtered.move_to_end(id(allowed))
                found = entry[2].get(knob)
                if found is not None:
                    return found
        if entry is None or entry[0] is not allowed:
            entry = (allowed, AllowedSelector(allowed, self.num_rows), {})
        made = self._make_parameters(knob, entry[1].selector)
        with self._filtered_lock:
            if len(entry[2]) >= _UNFILTERED_PARAMS_KEPT:
                entry[2].clear()
            entry[2][knob] = made
            self._filtered[id(allowed)] = entry
            self._filtered.move_to_end(id(allowed))
            while len(self._filtered) > _FILTERED_MASKS_KEPT:
                self._filtered.popitem(last=False)
        return made

    def _search_parameters(
        self, params: Mapping[str, Any], k: int, selector: AllowedSelector | None
    ) -> faiss.SearchParameters:
        knob = self._knob(params, k)
        if selector is None:
            cached = self._unfiltered_params.get(knob)
            if cached is None:
                cached = self._make_parameters(knob, None)
                if len(self._unfiltered_params) >= _UNFILTERED_PARAMS_KEPT:
                    self._unfiltered_params.clear()
                self._unfiltered_params[knob] = cached
            return cached
        return self._make_parameters(knob, selector.selector)

    def _make_parameters(self, knob: int, sel: faiss.IDSelector | None) -> faiss.SearchParameters:
        if isinstance(self.index, faiss.IndexHNSW):
            return faiss.SearchParametersHNSW(efSearch=knob, sel=sel)
        if isinstance(self.index, faiss.IndexIVF):
            return faiss.SearchParametersIVF(nprobe=knob, sel=sel)
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
