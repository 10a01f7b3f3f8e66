"""HNSW through SheafDB's index layer vs the same faiss index called bare.

100k x 128-d clustered float32 (16-d latent clusters), HNSW M=16 efConstruction=200, L2, searched with ef=64.
Reports the build time, recall@10 against exact search, and single-query search p50 for
SheafDB's ``VectorIndex.search`` and for ``faiss.IndexHNSW.search`` on the very same index
(so the difference is our Python wrapper), unfiltered and with a 10% allowed mask.
Timings are medians of one run on a shared machine: read the ratio, not the absolute.

Run: .venv/bin/python bench/index_search.py [--rows 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import faiss
import numpy as np

from sheafdb.index import build_index, parse_index_params
from sheafdb.schema import DataType, FieldSchema


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Embedding-like data: 100 clusters in a 16-d latent space, mapped linearly to ``dim``.

    (Isotropic noise in all 128 dims would make every in-cluster neighbour equally far and
    measure the data, not the index.)
    """
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(0).normal(size=(16, dim)).astype(np.float32)
    centers = np.random.default_rng(1).normal(size=(100, 16)).astype(np.float32) * 4
    latent = centers[rng.integers(0, 100, n)] + rng.normal(size=(n, 16)).astype(np.float32)
    return (latent @ basis + 0.1 * rng.normal(size=(n, dim))).astype(np.float32)


def p50_ms(fn, queries: np.ndarray) -> float:
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q[None, :])
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    dim, k, ef = 128, 10, 64
    data = clustered(args.rows, dim, seed=1)
    queries = clustered(args.queries, dim, seed=2)
    field = FieldSchema("v", DataType.FLOAT_VECTOR, dim=dim)
    spec = parse_index_params(
        field, {"index_type": "HNSW", "metric_type": "L2", "M": "16", "efConstruction": "200"}
    )

    start = time.perf_counter()
    index = build_index(spec, data)
    build_s = time.perf_counter() - start
    raw = index.index  # the faiss.IndexHNSWFlat inside

    _, truth = faiss.knn(queries, data, k)
    allowed = np.random.default_rng(3).random(args.rows) < 0.1
    masked_truth = np.flatnonzero(allowed)[faiss.knn(queries, data[allowed], k)[1]]

    params = {"ef": ef}
    ours = index.search(queries, k, params, None)[1]
    bare = raw.search(queries, k, params=faiss.SearchParametersHNSW(efSearch=ef))[1]
    ours_masked = index.search(queries, k, params, allowed)[1]

    bitmap = np.packbits(allowed, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
    bare_masked_params = faiss.SearchParametersHNSW(efSearch=ef, sel=selector)

    print(f"rows={args.rows} dim={dim} HNSW M=16 efConstruction=200 ef={ef} k={k} threads=1")
    print(f"build: {build_s:.1f} s   index bytes: {index.nbytes / 2**20:.1f} MiB")
    print(f"recall@10 sheafdb={recall_at(ours, truth):.3f} faiss={recall_at(bare, truth):.3f}")
    print(f"recall@10 with 10% mask sheafdb={recall_at(ours_masked, masked_truth):.3f}")
    bare_params = faiss.SearchParametersHNSW(efSearch=ef)
    ours_ms = p50_ms(lambda q: index.search(q, k, params, None), queries)
    bare_ms = p50_ms(lambda q: raw.search(q, k, params=bare_params), queries)
    print(f"p50 search sheafdb={ours_ms:.3f} ms faiss={bare_ms:.3f} ms")
    ours_ms = p50_ms(lambda q: index.search(q, k, params, allowed), queries)
    bare_ms = p50_ms(lambda q: raw.search(q, k, params=bare_masked_params), queries)
    print(f"p50 search 10% mask sheafdb={ours_ms:.3f} ms faiss={bare_ms:.3f} ms")


if __name__ == "__main__":
    main()
