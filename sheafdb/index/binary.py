"""Binary vector indexes: BIN_FLAT and BIN_IVF_FLAT (HAMMING on faiss), JACCARD and the
structure metrics (SUBSTRUCTURE, SUPERSTRUCTURE).

Vectors are packed bits, ``dim/8`` uint8 per row. HAMMING runs on faiss's binary indexes;
faiss has no JACCARD nor structure matching, so those indexes keep the packed codes and search
them exactly with numpy popcounts (recall 1 for either index type). faiss's IndexBinaryIVF takes neither an
IDSelector nor search params in range search, so a BIN_IVF_FLAT index keeps its codes in row
order too and answers filtered and range searches exactly over them. Read-only after build:
concurrent searches need no lock.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import faiss
import numpy as np

from sheafdb.index import metrics
from sheafdb.index.faiss_threads import search_threads
from sheafdb.index.params import IndexSpec, parse_search_params
from sheafdb.index.protocols import IndexStore, write_index_bytes
from sheafdb.index.results import (
    AllowedSelector,
    check_mask,
    empty_topk,
    finish_range,
    fix_padding,
    range_from_matrix,
    remap_labels,
    require_radius,
    topk_from_matrix,
)
from sheafdb.index.vectors import binary_queries

# Bytes of the (queries x rows x code) XOR block computed at once by the exact paths.
_EXACT_BLOCK_BYTES = 32 << 20


def binary_distances(xq: np.ndarray, xb: np.ndarray, metric: str) -> np.ndarray:
    """(nq, n) distances between packed codes, as float32 (structure metrics: 0 for a match,
    +inf for no hit, see metrics.py)."""
    if metric == metrics.HAMMING:
        return (
            np.bitwise_count(xq[:, None, :] ^ xb[None, :, :]).sum(axis=2, dtype=np.int32).astype(np.float32)
        )
    inter = np.bitwise_count(xq[:, None, :] & xb[None, :, :]).sum(axis=2, dtype=np.int32)
    if metric in (metrics.SUBSTRUCTURE, metrics.SUPERSTRUCTURE):
        # The query is inside the row (sub) / the row inside the query (super): their common
        # bits are all of the query's / all of the row's.
        inner = xq if metric == metrics.SUBSTRUCTURE else xb
        bits = np.bitwise_count(inner).sum(axis=1, dtype=np.int32)
        whole = bits[:, None] if metric == metrics.SUBSTRUCTURE else bits[None, :]
        return np.where(inter == whole, np.float32(0.0), np.float32(np.inf)).astype(np.float32)
    union = np.bitwise_count(xq[:, None, :] | xb[None, :, :]).sum(axis=2, dtype=np.int32)
    # Two all-zero vectors are identical: distance 0.
    similarity = np.divide(inter, union, out=np.ones(inter.shape, np.float64), where=union > 0)
    return (1.0 - similarity).astype(np.float32)


def exact_binary_search(
    codes: np.ndarray, xq: np.ndarray, k: int, metric: str, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    rows = None
    if allowed is not None:
        rows = np.flatnonzero(check_mask(allowed, len(codes)))
        codes = codes[rows]
    scores, labels = empty_topk(len(xq), k, metric)
    if len(codes) == 0 or k == 0:
        return scores, labels
    for start, stop in _query_blocks(len(xq), len(codes), codes.shape[1]):
        distances = binary_distances(xq[start:stop], codes, metric)
        scores[start:stop], labels[start:stop] = topk_from_matrix(distances, k, metric)
    if rows is not None:
        labels = remap_labels(labels, rows)
    return scores, labels


def exact_binary_range(
    codes: np.ndarray,
    xq: np.ndarray,
    metric: str,
    radius: float,
    range_filter: float | None,
    allowed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    valid = None if allowed is None else check_mask(allowed, len(codes))
    parts = [
        range_from_matrix(
            binary_distances(xq[start:stop], codes, metric), metric, radius, range_filter, valid
        )
        for start, stop in _query_blocks(len(xq), len(codes), codes.shape[1])
    ]
    if not parts:
        return np.zeros(len(xq) + 1, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
    lims = np.concatenate([[0], np.cumsum(np.concatenate([np.diff(p[0]) for p in parts]))]).astype(np.int64)
    return lims, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])


def _query_blocks(nq: int, n: int, code_size: int) -> list[tuple[int, int]]:
    step = max(1, _EXACT_BLOCK_BYTES // max(1, n * code_size))
    return [(start, min(nq, start + step)) for start in range(0, nq, step)]


class BinaryIndex:
    """HAMMING on a faiss binary index (flat or IVF)."""

    def __init__(self, spec: IndexSpec, index: faiss.IndexBinary, nbytes: int | None = None) -> None:
        self.spec = spec
        self.index = index
        self.num_rows = int(index.ntotal)
        self.code_size = int(index.code_size)
        self._is_ivf = isinstance(index, faiss.IndexBinaryIVF)
        self.codes = _ivf_codes(index) if self._is_ivf else None
        self._nbytes = None if nbytes is None else nbytes + (0 if self.codes is None else self.codes.nbytes)

    @property
    def nbytes(self) -> int:
        if self._nbytes is None:
            extra = 0 if self.codes is None else self.codes.nbytes
            self._nbytes = int(faiss.serialize_index_binary(self.index).nbytes) + extra
        return self._nbytes

    def search(
        self, queries: np.ndarray, k: int, params: Mapping[str, Any], allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        xq = binary_queries(queries, self.code_size)
        metric = self.spec.metric_type
        if k == 0 or self.num_rows == 0 or (allowed is not None and not allowed.any()):
            return empty_topk(len(xq), k, metric)
        if self.codes is not None and allowed is not None:
            return exact_binary_search(self.codes, xq, k, metric, allowed)
        if self._is_ivf:
            nprobe = min(parse_search_params(params).nprobe, self.index.nlist)
            with search_threads(len(xq)):
                scores, labels = self.index.search(xq, k, params=faiss.SearchParametersIVF(nprobe=nprobe))
        else:
            selector = AllowedSelector(allowed, self.num_rows) if allowed is not None else None
            search_params = faiss.SearchParameters(sel=selector.selector if selector else None)
            with search_threads(len(xq)):
                scores, labels = self.index.search(xq, k, params=search_params)
        return fix_padding(scores, labels, metric)

    def range_search(
        self, queries: np.ndarray, params: Mapping[str, Any], allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        metric = self.spec.metric_type
        parsed = parse_search_params(params)
        radius = require_radius(metric, parsed.radius, parsed.range_filter)
        xq = binary_queries(queries, self.code_size)
        if self.codes is not None:
            return exact_binary_range(self.codes, xq, metric, radius, parsed.range_filter, allowed)
        selector = AllowedSelector(allowed, self.num_rows) if allowed is not None else None
        search_params = faiss.SearchParameters(sel=selector.selector if selector else None)
        # faiss keeps integer distances d < radius; d < r holds exactly when d < ceil(r).
        with search_threads(len(xq)):
            lims, scores, labels = self.index.range_search(xq, int(np.ceil(radius)), params=search_params)
        return finish_range(metric, lims, scores, labels, radius, parsed.range_filter)

    def save(self, store: IndexStore, path: str) -> int:
        return write_index_bytes(store, path, self.save_bytes())

    def save_bytes(self) -> bytes:
        return faiss.serialize_index_binary(self.index).tobytes()


class JaccardIndex:
    """JACCARD, SUBSTRUCTURE or SUPERSTRUCTURE over packed codes, searched exactly (faiss has
    none of them)."""

    def __init__(self, spec: IndexSpec, codes: np.ndarray) -> None:
        self.spec = spec
        self.codes = np.ascontiguousarray(codes, dtype=np.uint8)
        self.num_rows = len(self.codes)
        self.nbytes = int(self.codes.nbytes)

    def search(
        self, queries: np.ndarray, k: int, params: Mapping[str, Any], allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        xq = binary_queries(queries, self.codes.shape[1])
        return exact_binary_search(self.codes, xq, k, self.spec.metric_type, allowed)

    def range_search(
        self, queries: np.ndarray, params: Mapping[str, Any], allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parsed = parse_search_params(params)
        radius = require_radius(self.spec.metric_type, parsed.radius, parsed.range_filter)
        xq = binary_queries(queries, self.codes.shape[1])
        return exact_binary_range(self.codes, xq, self.spec.metric_type, radius, parsed.range_filter, allowed)

    def save(self, store: IndexStore, path: str) -> int:
        return write_index_bytes(store, path, self.save_bytes())

    def save_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, self.codes, allow_pickle=False)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, spec: IndexSpec, data: bytes) -> JaccardIndex:
        return cls(spec, np.load(io.BytesIO(data), allow_pickle=False))


def build_binary(
    spec: IndexSpec, index_type: str, build: Mapping[str, Any], codes: np.ndarray
) -> BinaryIndex:
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n, code_size = codes.shape
    dim = code_size * 8
    nlist = int(build["nlist"])
    if index_type == "BIN_IVF_FLAT" and n >= nlist:
        index: faiss.IndexBinary = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(dim), dim, nlist)
        index.train(codes)
    else:
        # BIN_FLAT, or an IVF over fewer rows than lists: searched exactly (as Milvus does).
        index = faiss.IndexBinaryFlat(dim)
    if n:
        index.add(codes)
    return BinaryIndex(spec, index)


def _ivf_codes(index: faiss.IndexBinaryIVF) -> np.ndarray:
    """The IVF's codes in row order, read from its inverted lists (one pass per list)."""
    invlists = index.invlists
    code_size = int(index.code_size)
    codes = np.zeros((int(index.ntotal), code_size), dtype=np.uint8)
    for list_no in range(int(index.nlist)):
        size = invlists.list_size(list_no)
        if size == 0:
            continue
        ids = faiss.rev_swig_ptr(invlists.get_ids(list_no), size).copy()
        block = faiss.rev_swig_ptr(invlists.get_codes(list_no), size * code_size).copy()
        codes[ids] = block.reshape(size, code_size)
    return codes
