"""The one pymilvus workload that every Milvus-protocol server under test runs, unchanged.

One repeat = a fresh server on a fresh data dir: create -> insert (batches of 5,000) -> flush
-> build the HNSW index -> load -> searches and queries -> release -> partial load -> release
-> load again and restart. Memory is the server's RSS, read from outside with psutil.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.client.types import LoadState

from harness.dataset import Dataset, recall_at_k
from harness.servers import RssSampler, RunningServer, ServerKind
from harness.timing import latencies_ms, p50, p99, sequential_qps, timed

COLLECTION = "bench"
INSERT_BATCH = 5_000
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
METRIC = "L2"
INDEX_TIMEOUT_S = 3600.0
SETTLE_S = 1.0  # let the server finish freeing before RSS is read


@dataclass(frozen=True)
class WorkloadSizes:
    """How many requests each measurement makes (kept small enough for a slow competitor)."""

    latency_queries: int = 200
    filtered_queries: int = 50
    batch_nq: int = 100
    batches: int = 5
    small_calls: int = 20
    trivial_calls: int = 200
    sweep_queries: int = 100
    sweep_efs: tuple[int, ...] = (16, 32, 64, 128, 256)


# ``--quick``: enough requests for every figure to exist (a size check), not for stable tails.
QUICK_SIZES = WorkloadSizes(
    latency_queries=50, filtered_queries=20, batches=2, small_calls=5, trivial_calls=20, sweep_queries=50
)


def _schema(dim: int) -> Any:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    schema.add_field("num", DataType.INT64)
    return schema


def _rows(data: Dataset, start: int, stop: int) -> list[dict[str, Any]]:
    return [
        {
            "pk": i,
            "vector": data.vectors[i],
            "tag": str(data.tags[i]),
            "num": int(data.nums[i]),
            "color": str(data.colors[i]),
        }
        for i in range(start, stop)
    ]


def _search_params(ef: int) -> dict[str, Any]:
    return {"metric_type": METRIC, "params": {"ef": ef}}


def _ids(hits: list[Any]) -> list[int]:
    return [int(hit.id) for hit in hits]


def _wait_index_finished(client: MilvusClient) -> None:
    deadline = time.perf_counter() + INDEX_TIMEOUT_S
    while time.perf_counter() < deadline:
        info = client.describe_index(COLLECTION, index_name="vector")
        if str(info.get("state", "")).endswith("Finished") and int(info.get("pending_index_rows", 0)) == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("index build did not finish")


def _wait_loaded(client: MilvusClient) -> None:
    deadline = time.perf_counter() + INDEX_TIMEOUT_S
    while client.get_load_state(COLLECTION)["state"] != LoadState.Loaded:
        if time.perf_counter() > deadline:
            raise RuntimeError("collection did not load")
        time.sleep(0.05)


def _pk_and_vector_file_bytes(data_dir: Path) -> int:
    """Bytes on disk of what a partial load (pk, vector) needs, in SheafDB's layout: the
    ``pk.arrow`` and ``vector.arrow`` column files and the vector index ``index_<id>.faiss`` of
    every segment. 0 for a server with another layout (Milvus Lite): the figure is then absent."""
    names = ("pk.arrow", "vector.arrow")
    return sum(
        f.stat().st_size
        for f in data_dir.rglob("*")
        if f.is_file() and (f.name in names or (f.name.startswith("index_") and f.suffix == ".faiss"))
    )


def _rss_mib(server: RunningServer) -> float:
    time.sleep(SETTLE_S)
    return server.rss_bytes() / 2**20


class ServerRepeat:
    """One repeat of the workload against one server kind; ``run`` returns flat metrics."""

    def __init__(self, kind: ServerKind, data: Dataset, sizes: WorkloadSizes, workdir: Path, sweep: bool):
        self.kind = kind
        self.data = data
        self.sizes = sizes
        self.workdir = workdir
        self.sweep = sweep
        self.metrics: dict[str, float] = {}
        self.ef_sweep: list[dict[str, float]] = []
        self.sampler = RssSampler()

    def run(self) -> dict[str, Any]:
        data_dir = self.workdir / "data"
        log = self.workdir / "server.log"
        self.sampler.start()
        self.sampler.phase("start")
        server = RunningServer(self.kind, data_dir, log)
        try:
            self.sampler.follow(server)
            client, self.metrics["cold_start_to_serving_s"] = server.wait_serving()
            self._build(client)
            self._load_and_measure(client, server)
            server = self._restart(client, server)
        finally:
            server.stop()
            self.sampler.close()
        return {
            "metrics": self.metrics,
            "ef_sweep": self.ef_sweep,
            "rss_trace": {"samples": self.sampler.samples, "phases": self.sampler.phases},
        }

    def _build(self, client: MilvusClient) -> None:
        data, m = self.data, self.metrics
        if client.has_collection(COLLECTION):
            client.drop_collection(COLLECTION)
        client.create_collection(COLLECTION, schema=_schema(data.dim))
        self.sampler.phase("insert")
        insert_s = 0.0
        # Each batch's row dicts are made just before it is sent (not timed): all of them at
        # once would hold ~1 GiB of Python objects at 1M rows.
        for start in range(0, data.n, INSERT_BATCH):
            batch = _rows(data, start, min(start + INSERT_BATCH, data.n))
            _, seconds = timed(lambda b=batch: client.insert(COLLECTION, b))
            insert_s += seconds
        m["insert_rows_per_s"] = data.n / insert_s
        self.sampler.phase("flush")
        _, m["flush_s"] = timed(lambda: client.flush(COLLECTION))
        self.sampler.phase("index")
        index_params = client.prepare_index_params()
        index_params.add_index(
            field_name="vector",
            index_name="vector",
            index_type="HNSW",
            metric_type=METRIC,
            params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION},
        )
        start = time.perf_counter()
        client.create_index(COLLECTION, index_params)
        _wait_index_finished(client)
        m["index_build_s"] = time.perf_counter() - start
        loaded_field_bytes = _pk_and_vector_file_bytes(self.workdir / "data")
        if loaded_field_bytes:
            m["pk_vector_files_mib"] = loaded_field_bytes / 2**20

    def _load_and_measure(self, client: MilvusClient, server: RunningServer) -> None:
        m = self.metrics
        client.release_collection(COLLECTION)
        self.sampler.phase("released")
        m["rss_before_load_mib"] = _rss_mib(server)
        self.sampler.phase("load")
        start = time.perf_counter()
        client.load_collection(COLLECTION)
        _wait_loaded(client)
        m["load_s"] = time.perf_counter() - start
        m["rss_after_load_mib"] = _rss_mib(server)
        self.sampler.phase("search")
        self._searches(client)
        self._queries(client)
        if self.sweep:
            self._ef_sweep(client)
        self.sampler.phase("release")
        client.release_collection(COLLECTION)
        m["rss_after_release_mib"] = _rss_mib(server)
        added = m["rss_after_load_mib"] - m["rss_before_load_mib"]
        freed = m["rss_after_load_mib"] - m["rss_after_release_mib"]
        m["release_freed_fraction"] = freed / added if added > 0 else float("nan")
        self.sampler.phase("partial load")
        client.load_collection(COLLECTION, load_fields=["pk", "vector"], skip_load_dynamic_field=True)
        _wait_loaded(client)
        m["rss_after_partial_load_mib"] = _rss_mib(server)
        self.sampler.phase("release ")
        client.release_collection(COLLECTION)
        m["rss_after_partial_release_mib"] = _rss_mib(server)
        m["partial_load_added_mib"] = m["rss_after_partial_load_mib"] - m["rss_after_release_mib"]

    def _search(self, client: MilvusClient, queries: np.ndarray, ef: int, expr: str = "") -> list[list[int]]:
        found = client.search(
            COLLECTION,
            data=list(queries),
            filter=expr,
            limit=10,
            anns_field="vector",
            search_params=_search_params(ef),
        )
        return [_ids(hits) for hits in found]

    def _searches(self, client: MilvusClient) -> None:
        data, sizes, m = self.data, self.sizes, self.metrics
        queries = data.queries[: sizes.latency_queries]
        truth = data.truth[: sizes.latency_queries]
        for ef in (64, 128):
            found, samples = latencies_ms(
                [lambda q=q, e=ef: self._search(client, q[None, :], e) for q in queries]
            )
            m[f"search_p50_ms_ef{ef}"] = p50(samples)
            m[f"search_p99_ms_ef{ef}"] = p99(samples)
            m[f"recall10_ef{ef}"] = recall_at_k([f[0] for f in found], truth)
        batches = [
            data.queries[(i * sizes.batch_nq) % len(data.queries) :][: sizes.batch_nq]
            for i in range(sizes.batches)
        ]
        found, samples = latencies_ms([lambda b=b: self._search(client, b, 64) for b in batches])
        m["batch_qps_nq100"] = sum(len(b) for b in batches) / (sum(samples) / 1e3)
        m["batch_recall10"] = recall_at_k(found[0], data.truth[: len(batches[0])])
        fq = sizes.filtered_queries
        for name, flt in data.filters.items():
            found, samples = latencies_ms(
                [lambda q=q, e=flt.expr: self._search(client, q[None, :], 64, e) for q in data.queries[:fq]]
            )
            m[f"filtered_p50_ms_{name}"] = p50(samples)
            m[f"filtered_recall10_{name}"] = recall_at_k([f[0] for f in found], flt.truth[:fq])

    def _queries(self, client: MilvusClient) -> None:
        data, sizes, m = self.data, self.sizes, self.metrics
        rng = np.random.default_rng(3)
        width = max(1, data.n // 1000)
        starts = rng.integers(0, max(1, data.n - width), sizes.small_calls)
        _, samples = latencies_ms(
            [
                lambda s=int(s): client.query(
                    COLLECTION, filter=f"num >= {s} and num < {s + width}", output_fields=["pk", "num"]
                )
                for s in starts
            ]
        )
        m["query_range_p50_ms"] = p50(samples)
        counts, samples = latencies_ms(
            [lambda: client.query(COLLECTION, filter='tag == "a"', output_fields=["count(*)"])]
            * sizes.small_calls
        )
        m["count_filtered_p50_ms"] = p50(samples)
        m["count_filtered_correct"] = float(int(counts[0][0]["count(*)"]) == int((data.tags == "a").sum()))
        id_sets = [rng.choice(data.n, 10, replace=False).tolist() for _ in range(sizes.small_calls)]
        _, samples = latencies_ms([lambda ids=ids: client.get(COLLECTION, ids=ids) for ids in id_sets])
        m["get_by_ids_p50_ms"] = p50(samples)
        _, samples = latencies_ms([lambda: client.get_load_state(COLLECTION)] * sizes.trivial_calls)
        m["trivial_rpc_p50_ms"] = p50(samples)

    def _ef_sweep(self, client: MilvusClient) -> None:
        queries = self.data.queries[: self.sizes.sweep_queries]
        truth = self.data.truth[: self.sizes.sweep_queries]
        for ef in self.sizes.sweep_efs:
            found, samples = latencies_ms(
                [lambda q=q, e=ef: self._search(client, q[None, :], e) for q in queries]
            )
            self.ef_sweep.append(
                {
                    "ef": ef,
                    "qps": sequential_qps(samples),
                    "recall": recall_at_k([f[0] for f in found], truth),
                }
            )

    def _restart(self, client: MilvusClient, server: RunningServer) -> RunningServer:
        m = self.metrics
        self.sampler.phase("restart")
        client.load_collection(COLLECTION)
        _wait_loaded(client)
        client.close()
        server.stop()
        restarted = RunningServer(self.kind, server.data_dir, server.log_path, port=server.port)
        self.sampler.follow(restarted)
        client, m["restart_to_serving_s"] = restarted.wait_serving()
        state = client.get_load_state(COLLECTION)["state"]
        m["restart_comes_back_loaded"] = float(state in (LoadState.Loaded, LoadState.Loading))
        if state == LoadState.Loading:
            _wait_loaded(client)
            m["restart_to_loaded_s"] = time.perf_counter() - restarted.started_at
        elif state == LoadState.Loaded:
            m["restart_to_loaded_s"] = time.perf_counter() - restarted.started_at
        client.close()
        return restarted
