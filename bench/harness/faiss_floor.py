"""The floor: the same HNSW index (M=16, efConstruction=200, L2) called bare, in-process.

No server, no protocol, no storage: what is left is faiss itself. Filters are given to faiss as
an ``IDSelectorBitmap`` built from the precomputed row mask (the mask itself is not timed: a
database has to evaluate the expression, faiss is handed the answer).
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from harness.dataset import Dataset, K, recall_at_k
from harness.milvus_workload import HNSW_EF_CONSTRUCTION, HNSW_M, WorkloadSizes
from harness.timing import latencies_ms, p50, p99, sequential_qps, timed


class FaissRepeat:
    def __init__(self, data: Dataset, sizes: WorkloadSizes, sweep: bool) -> None:
        self.data = data
        self.sizes = sizes
        self.sweep = sweep
        self.metrics: dict[str, float] = {}
        self.ef_sweep: list[dict[str, float]] = []
        self.index: Any = None

    def run(self) -> dict[str, Any]:
        index = faiss.IndexHNSWFlat(self.data.dim, HNSW_M, faiss.METRIC_L2)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        _, self.metrics["index_build_s"] = timed(lambda: index.add(self.data.vectors))
        self.index = index
        self._searches()
        if self.sweep:
            self._ef_sweep()
        return {"metrics": self.metrics, "ef_sweep": self.ef_sweep, "rss_trace": None}

    def _search(self, queries: np.ndarray, ef: int, selector: Any = None) -> list[list[int]]:
        if selector is None:
            params = faiss.SearchParametersHNSW(efSearch=ef)
        else:
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
        _, found = self.index.search(queries, K, params=params)
        return [[int(i) for i in row if i >= 0] for row in found]

    def _searches(self) -> None:
        data, sizes, m = self.data, self.sizes, self.metrics
        queries = data.queries[: sizes.latency_queries]
        truth = data.truth[: sizes.latency_queries]
        for ef in (64, 128):
            found, samples = latencies_ms([lambda q=q, e=ef: self._search(q[None, :], e) for q in queries])
            m[f"search_p50_ms_ef{ef}"] = p50(samples)
            m[f"search_p99_ms_ef{ef}"] = p99(samples)
            m[f"recall10_ef{ef}"] = recall_at_k([f[0] for f in found], truth)
        batches = [
            data.queries[(i * sizes.batch_nq) % len(data.queries) :][: sizes.batch_nq]
            for i in range(sizes.batches)
        ]
        found, samples = latencies_ms([lambda b=b: self._search(b, 64) for b in batches])
        m["batch_qps_nq100"] = sum(len(b) for b in batches) / (sum(samples) / 1e3)
        m["batch_recall10"] = recall_at_k(found[0], data.truth[: len(batches[0])])
        fq = sizes.filtered_queries
        for name, flt in data.filters.items():
            bits = np.packbits(flt.mask, bitorder="little")  # must outlive the selector that points at it
            selector = faiss.IDSelectorBitmap(len(flt.mask), faiss.swig_ptr(bits))
            found, samples = latencies_ms(
                [lambda q=q, sel=selector: self._search(q[None, :], 64, sel) for q in data.queries[:fq]]
            )
            m[f"filtered_p50_ms_{name}"] = p50(samples)
            m[f"filtered_recall10_{name}"] = recall_at_k([f[0] for f in found], flt.truth[:fq])

    def _ef_sweep(self) -> None:
        queries = self.data.queries[: self.sizes.sweep_queries]
        truth = self.data.truth[: self.sizes.sweep_queries]
        for ef in self.sizes.sweep_efs:
            found, samples = latencies_ms([lambda q=q, e=ef: self._search(q[None, :], e) for q in queries])
            self.ef_sweep.append(
                {
                    "ef": ef,
                    "qps": sequential_qps(samples),
                    "recall": recall_at_k([f[0] for f in found], truth),
                }
            )
