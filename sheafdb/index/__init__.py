"""Vector indexes on faiss, and exact search (see docs/internals.md, "index/")."""

from __future__ import annotations

import os

# libgomp reads its wait policy once, when faiss first loads it: PASSIVE makes faiss's OpenMP
# threads sleep when a call ends instead of spinning a core for ~8 ms (faiss_threads.py).
# Set before anything imports faiss; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from sheafdb.index.builder import build_index, load_index  # noqa: E402 (after the policy)
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
    "vectors_from_arrow",
]
