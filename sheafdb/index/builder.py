"""Building, saving and loading vector indexes; the ``VectorIndex`` protocol they share.

Saved files are the backend's own format, so ``load_index`` tells them apart by their first
bytes: numpy's ``.npy`` magic (JACCARD codes), a zip header (the sparse index's ``.npz``),
faiss's binary-index fourcc (``IB..``), anything else a dense faiss index. That matters for
AUTOINDEX with IP, which is dense or sparse depending on the field.

Threads: a build uses every core from the thread that calls it (the engine's build thread,
at low priority); searches choose their own count per call (faiss_threads.py).
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from sheafdb.index import metrics
from sheafdb.index.binary import BinaryIndex, JaccardIndex, build_binary
from sheafdb.index.dense import DenseIndex, build_dense
from sheafdb.index.faiss_threads import use_all_cores
from sheafdb.index.params import IndexSpec, resolve_build
from sheafdb.index.protocols import IndexStore, VectorIndex
from sheafdb.index.sparse import SparseInvertedIndex
from sheafdb.index.vectors import SparseMatrix, as_sparse


def build_index(spec: IndexSpec, vectors: np.ndarray | SparseMatrix) -> VectorIndex:
    """Build the index ``spec`` describes over ``vectors`` (row i gets label i)."""
    use_all_cores()
    if isinstance(vectors, SparseMatrix) or spec.index_type in ("SPARSE_INVERTED_INDEX", "SPARSE_WAND"):
        _, build = resolve_build(spec, "sparse")
        return SparseInvertedIndex.build(spec, as_sparse(vectors), float(build["drop_ratio_build"]))
    if spec.metric_type in metrics.BINARY_METRICS:
        index_type, build = resolve_build(spec, "binary")
        if spec.metric_type in metrics.EXACT_BINARY_METRICS:
            return JaccardIndex(spec, vectors)
        return build_binary(spec, index_type, build, vectors)
    index_type, build = resolve_build(spec, "dense")
    return build_dense(spec, index_type, build, vectors)


def load_index(store: IndexStore, path: str, spec: IndexSpec, *, mmap: bool = False) -> VectorIndex:
    """Read an index written by ``VectorIndex.save``; its ``nbytes`` is the file's size.

    ``mmap``: a faiss index in a local file is mapped (IO_FLAG_MMAP_IFC) instead of read, so
    processes serving the same files (``serve --workers N``) share its pages.

    Read into the heap, not mapped: faiss's IO_FLAG_MMAP_IFC maps HNSW and flat indexes
    (measured, 50k x 128-d HNSW: load 14 ms -> 1 ms, same search speed once warm, the pages
    file-backed), but then a load would leave the first searches to fault the index in. In
    the heap its links and vectors are a few blocks over glibc's pinned 1 MiB mmap threshold
    (engine/load/memory.py), so they leave the process the moment the last reference goes.
    """
    size = store.size(path)
    local = store.local_path(path)
    head = _head(local, store, path)
    if head.startswith(b"\x93NUMPY"):
        return JaccardIndex.from_bytes(spec, store.read_bytes(path))
    if head.startswith(b"PK"):
        return SparseInvertedIndex.from_bytes(spec, store.read_bytes(path))
    if head.startswith(b"IB"):
        binary = (
            faiss.read_index_binary(str(local))
            if local is not None
            else faiss.deserialize_index_binary(np.frombuffer(store.read_bytes(path), dtype=np.uint8))
        )
        return BinaryIndex(spec, binary, nbytes=size)
    # Reading from the file directly avoids holding the bytes and the index at once.
    dense = (
        faiss.read_index(str(local), faiss.IO_FLAG_MMAP_IFC if mmap else 0)
        if local is not None
        else faiss.deserialize_index(np.frombuffer(store.read_bytes(path), dtype=np.uint8))
    )
    return DenseIndex(spec, dense, nbytes=size)


def _head(local: Any, store: IndexStore, path: str) -> bytes:
    if local is not None:
        with open(local, "rb") as f:
            return f.read(8)
    return store.read_bytes(path)[:8]
