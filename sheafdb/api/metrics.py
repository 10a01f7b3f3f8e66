"""Prometheus metrics, served at ``GET /metrics`` on the public port (prometheus_client).

Names follow Milvus where Milvus has the metric, so its dashboards read SheafDB unchanged:

- ``milvus_proxy_req_count{node_id,function_name,status,db_name,collection_name}``: every gRPC
  call, counted as ``total`` and as ``success`` or ``fail`` (Milvus's status values);
  ``milvus_proxy_req_latency{node_id,function_name}``: its latency histogram in milliseconds.
- ``milvus_proxy_restful_api_req_count{node_id,path}`` / ``..._latency``: the same for REST.
- ``milvus_querycoord_load_req_count{status}``, ``milvus_querycoord_release_req_count{status}``,
  ``milvus_querycoord_load_latency`` (request to Loaded, ms), ``..._release_latency`` (ms),
  ``milvus_querycoord_collection_num`` (collections loaded).

Milvus has no per-field memory figure; SheafDB's own are ``sheafdb_resident_bytes{db_name,
collection_name,partition_name,field_name,kind}`` (the accountant's ledger by name),
``sheafdb_memory_budget_bytes``, ``..._used_bytes``, ``..._reserved_bytes``, ``..._free_bytes``,
``..._mapped_bytes`` (memory-mapped field files, kind ``mapped`` in the resident bytes, outside
the budget's used bytes), ``sheafdb_process_used_bytes{process}`` (with ``serve --workers N``:
the used bytes of the primary and of each query worker, whose sum is ``..._used_bytes``) and
``sheafdb_load_progress{db_name,collection_name}`` (0..100).
Those are read from the engine at scrape time, never kept twice.

With ``serve --workers N`` the request counters and latencies include the calls the query
workers served: each worker tallies its own and reports them to the primary every ~0.5 s
(worker_reports.py), so a scrape sees a worker's calls at most that much later.

Milvus's Go client writes counters without the ``_total`` suffix that prometheus_client adds,
so the counters here are plain numbers this module keeps and exposes under Milvus's exact names
(as ``untyped``; ``rate()`` works the same).

Threads: ``_lock`` guards the counter tables (request threads add, the scrape reads). The load
watch (``LoadWatch``) runs one daemon thread, only while a load it times is in progress.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from pymilvus.grpc_gen import common_pb2

from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState
from sheafdb.errors import SheafError

NODE_ID = "1"
# Milvus's request buckets (ms): ExponentialBuckets(1, 2, 18).
REQUEST_BUCKETS_MS = tuple(float(2**i) for i in range(18))
# Milvus's querycoord load / release buckets (ms).
LOAD_BUCKETS_MS = (0, 500, 1000, 2000, 5000, 10000, 20000, 50000, 60000, 300000, 600000, 1800000)
RELEASE_BUCKETS_MS = (0, 5, 10, 20, 40, 100, 200, 400, 1000, 10000)
LOAD_OPERATIONS = frozenset({"LoadCollection", "LoadPartitions"})
RELEASE_OPERATIONS = frozenset({"ReleaseCollection", "ReleasePartitions"})
# How often the load watch looks at the state of the loads it times.
_WATCH_POLL_S = 0.02


def reply_failed(response: Any) -> bool:
    """Whether a gRPC reply carries a failed ``common.Status`` (itself or as ``status``)."""
    status = response if isinstance(response, common_pb2.Status) else getattr(response, "status", None)
    if not isinstance(status, common_pb2.Status):
        return False
    return bool(status.code != 0 or status.error_code != 0)


class LoadWatch:
    """Times loads from the request to Loaded: loads finish in the background, after the
    request returned, so a thread looks at their state until they are done."""

    def __init__(self, engine: Engine, histogram: Histogram) -> None:
        self._engine = engine
        self._histogram = histogram
        self._lock = threading.Lock()  # guards _pending and _thread
        self._pending: dict[tuple[str, str], float] = {}
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def started(self, db: str, collection: str, started_at: float) -> None:
        if self._settled(db, collection, started_at):
            return  # a small load is done before its request returns
        with self._lock:
            self._pending.setdefault((db, collection), started_at)
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._watch, name="sheafdb-load-watch", daemon=True)
                self._thread.start()

    def _watch(self) -> None:
        while not self._closed.wait(_WATCH_POLL_S):
            with self._lock:
                pending = dict(self._pending)
            for (db, name), started_at in pending.items():
                if self._settled(db, name, started_at):
                    with self._lock:
                        self._pending.pop((db, name), None)
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return

    def _settled(self, db: str, collection: str, started_at: float) -> bool:
        """Whether the load is over; a load that reached Loaded is timed."""
        try:
            state = self._engine.get_load_state(db, collection)
        except SheafError:
            return True
        if state is LoadState.LOADED:
            self._histogram.observe((time.monotonic() - started_at) * 1000)
        return state is not LoadState.LOADING

    def close(self) -> None:
        self._closed.set()


class ServerMetrics:
    """The server's registry: request counters and histograms, and the engine's figures."""

    def __init__(self, engine: Engine) -> None:
        # Milvus exposes no ``_created`` series; neither does this process.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self._engine = engine
        self.registry = CollectorRegistry(auto_describe=False)
        self._lock = threading.Lock()
        self._grpc_counts: dict[tuple[str, str, str, str], float] = {}
        self._grpc_children: dict[str, Any] = {}
        self._rest_counts: dict[str, float] = {}
        self._load_counts: dict[str, float] = {}
        self._release_counts: dict[str, float] = {}
        self._grpc_latency = Histogram(
            "milvus_proxy_req_latency",
            "latency of each request (ms)",
            ["node_id", "function_name"],
            buckets=REQUEST_BUCKETS_MS,
            registry=self.registry,
        )
        self._rest_latency = Histogram(
            "milvus_proxy_restful_api_req_latency",
            "latency of each REST request (ms)",
            ["node_id", "path"],
            buckets=REQUEST_BUCKETS_MS,
            registry=self.registry,
        )
        load_latency = Histogram(
            "milvus_querycoord_load_latency",
            "latency of a load, from the request to Loaded (ms)",
            buckets=LOAD_BUCKETS_MS,
            registry=self.registry,
        )
        self._release_latency = Histogram(
            "milvus_querycoord_release_latency",
            "latency of a release request (ms)",
            buckets=RELEASE_BUCKETS_MS,
            registry=self.registry,
        )
        self.loads = LoadWatch(engine, load_latency)
        self.registry.register(_EngineCollector(self))

    def close(self) -> None:
        self.loads.close()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # -- what the API edges report -----------------------------------------------------------
    def grpc_call(self, function: str, db: str, collection: str, *, failed: bool, started_at: float) -> None:
        now = time.monotonic()
        latency = self._grpc_children.get(function)
        if latency is None:  # labels() costs more than the observation: one child per RPC, kept
            latency = self._grpc_children.setdefault(function, self._grpc_latency.labels(NODE_ID, function))
        latency.observe((now - started_at) * 1000)
        total = (function, "total", db, collection)
        outcome = (function, "fail" if failed else "success", db, collection)
        with self._lock:
            counts = self._grpc_counts
            counts[total] = counts.get(total, 0.0) + 1
            counts[outcome] = counts.get(outcome, 0.0) + 1
        if function in LOAD_OPERATIONS or function in RELEASE_OPERATIONS:
            self._lifecycle(function, db, collection, failed=failed, started_at=started_at, now=now)

    def worker_calls(
        self, counts: Mapping[tuple[str, str, str, str], int], latencies_ms: Mapping[str, list[float]]
    ) -> None:
        """Calls a query worker served (``serve --workers N``), as it reported them: counted
        and timed here like the calls this process served (worker_reports.py)."""
        for function, observed in latencies_ms.items():
            latency = self._grpc_children.get(function)
            if latency is None:
                latency = self._grpc_children.setdefault(
                    function, self._grpc_latency.labels(NODE_ID, function)
                )
            for value in observed:
                latency.observe(value)
        with self._lock:
            for key, count in counts.items():
                self._grpc_counts[key] = self._grpc_counts.get(key, 0.0) + count

    def rest_call(
        self, path: str, operation: str, db: str, collection: str, *, failed: bool, started_at: float
    ) -> None:
        now = time.monotonic()
        self._rest_latency.labels(NODE_ID, path).observe((now - started_at) * 1000)
        with self._lock:
            self._rest_counts[path] = self._rest_counts.get(path, 0.0) + 1
        self._lifecycle(operation, db, collection, failed=failed, started_at=started_at, now=now)

    def _lifecycle(
        self, operation: str, db: str, collection: str, *, failed: bool, started_at: float, now: float
    ) -> None:
        """Loads and releases, whichever protocol (or the console) asked for them."""
        outcome = "fail" if failed else "success"
        if operation in LOAD_OPERATIONS:
            with self._lock:
                for status in ("total", outcome):
                    self._load_counts[status] = self._load_counts.get(status, 0.0) + 1
            if not failed and collection:
                self.loads.started(db, collection, started_at)
        elif operation in RELEASE_OPERATIONS:
            with self._lock:
                for status in ("total", outcome):
                    self._release_counts[status] = self._release_counts.get(status, 0.0) + 1
            if not failed:
                self._release_latency.observe((now - started_at) * 1000)

    def counters(self) -> Iterator[Metric]:
        with self._lock:
            grpc_counts = dict(self._grpc_counts)
            rest_counts = dict(self._rest_counts)
            load_counts = dict(self._load_counts)
            release_counts = dict(self._release_counts)
        requests = Metric("milvus_proxy_req_count", "count of operation executed", "unknown")
        for (function, status, db, collection), value in grpc_counts.items():
            labels = {
                "node_id": NODE_ID,
                "function_name": function,
                "status": status,
                "db_name": db,
                "collection_name": collection,
            }
            requests.add_sample("milvus_proxy_req_count", labels, value)
        yield requests
        rest = Metric("milvus_proxy_restful_api_req_count", "count of REST operation executed", "unknown")
        for path, value in rest_counts.items():
            rest.add_sample("milvus_proxy_restful_api_req_count", {"node_id": NODE_ID, "path": path}, value)
        yield rest
        for name, counts in (
            ("milvus_querycoord_load_req_count", load_counts),
            ("milvus_querycoord_release_req_count", release_counts),
        ):
            metric = Metric(name, f"count of {name.split('_')[2]} requests", "unknown")
            for status, value in counts.items():
                metric.add_sample(name, {"status": status}, value)
            yield metric

    def engine_figures(self) -> Iterator[Metric]:
        view = self._engine.memory_view()
        for name, value, text in (
            ("sheafdb_memory_budget_bytes", view.budget_bytes, "bytes loads may hold"),
            ("sheafdb_memory_used_bytes", view.used_bytes, "bytes loaded structures hold"),
            ("sheafdb_memory_reserved_bytes", view.reserved_bytes, "bytes promised to running loads"),
            ("sheafdb_memory_free_bytes", view.free_bytes, "bytes a new load may still take"),
            ("sheafdb_memory_mapped_bytes", view.mapped_bytes, "bytes of memory-mapped field files"),
        ):
            yield GaugeMetricFamily(name, text, value=value)
        if view.processes:
            processes = GaugeMetricFamily(
                "sheafdb_process_used_bytes",
                "bytes loaded structures hold, by process of the server (serve --workers N)",
                labels=["process"],
            )
            for process, nbytes in view.processes.items():
                processes.add_metric([process], nbytes)
            yield processes
        resident = GaugeMetricFamily(
            "sheafdb_resident_bytes",
            "bytes held by loaded structures, by field and kind (field, index, pk_lookup, json, masks)",
            labels=["db_name", "collection_name", "partition_name", "field_name", "kind"],
        )
        for block in view.blocks:
            resident.add_metric(
                [block.db, block.collection, block.partition, block.name, block.kind], block.nbytes
            )
        yield resident
        progress = GaugeMetricFamily(
            "sheafdb_load_progress",
            "load progress of a loaded or loading collection (0..100)",
            labels=["db_name", "collection_name"],
        )
        loaded = 0
        for db, name, percent in self._load_progress():
            progress.add_metric([db, name], percent)
            loaded += percent == 100
        yield progress
        yield GaugeMetricFamily(
            "milvus_querycoord_collection_num", "number of collections loaded", value=loaded
        )

    def _load_progress(self) -> Iterator[tuple[str, str, int]]:
        for database in self._engine.list_databases():
            try:
                names = self._engine.list_collections(database.name)
            except SheafError:
                continue  # dropped meanwhile
            for name in names:
                try:
                    if self._engine.get_load_state(database.name, name) is LoadState.NOT_LOAD:
                        continue
                    percent = self._engine.get_loading_progress(database.name, name).progress
                except SheafError:
                    continue
                yield database.name, name, percent


class _EngineCollector:
    """Hands the registry the counters and the engine's figures at each scrape."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics.counters()
        yield from self._metrics.engine_figures()
