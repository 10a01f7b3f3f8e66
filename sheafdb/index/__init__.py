"""Vector indexes on faiss, and exact search (see docs/internals.md, "index/")."""

from __future__ import annotations

from sheafdb.index.builder import DEFAULT_FAISS_THREADS, build_index, load_index, set_faiss_threads
from sheafdb.index.exact import exact_range_search, exact_search
from sheafdb.index.metrics import higher_is_better
from sheafdb.index.params import (
    IndexSpec,
    SearchParams,
    describe_index_params,
    parse_index_params,
    parse_search_params,
)
from sheafdb.index.protocols import IndexStore, VectorIndex
from sheafdb.index.vectors import SparseMatrix, vectors_from_arrow

__all__ = [
    "DEFAULT_FAISS_THREADS",
    "IndexSpec",
    "IndexStore",
    "SearchParams",
    "SparseMatrix",
    "VectorIndex",
    "build_index",
    "describe_index_params",
    "exact_range_search",
    "exact_search",
    "higher_is_better",
    "load_index",
    "parse_index_params",
    "parse_search_params",
    "set_faiss_threads",
    "vectors_from_arrow",
]
