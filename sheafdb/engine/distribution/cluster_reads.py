"""The proxy's read path in cluster mode: route a read to one complete replica, fan it out to
that replica's query workers, reduce their answers (reduce.py), retry elsewhere on failure.

Routes come from the catalog's placement rows (CLUSTER.md Contract B): a replica is
*complete* when every segment assigned to it is acked and every worker it needs (those holding
its segments and its leader, which serves the growing rows) holds a live lease. Reads go
round-robin over the complete replicas of a collection (Milvus's proxy LB policy). A worker
that answers ``ReplicaNotAvailable`` or cannot be reached makes the whole read start again on
another replica, without that worker (Milvus's retry, excluding the failed node); when no
replica is complete the read waits (re-reading the placement) up to ``wait_s``, then fails with
Milvus's not-available error. A collection with no load config fails at once as not loaded.

Routes are cached: the placement version is polled at most every ``ROUTE_POLL_S`` and the rows
re-read when it moved (a save, drop, ack or registration bumps it) or when the worker leases
are older than ``LEASE_REFRESH_S``; a failed read re-reads them at once. Collections (name or
alias -> record, with their indexes for the metric) are cached with the routes and forgotten
with them, so a rename or a drop is seen within ``LEASE_REFRESH_S``.

It answers the read API of engine/follower.py's Follower (search, hybrid_search, query,
collection_schema, output_zone, allocate_timestamp, load_state), so the serving code takes
either. Nothing is kept that the catalog does not hold: a restarted proxy serves the same.

Threads: the gRPC handler threads call in; ``_pool`` sends the calls to the other workers of a
fan-out while the calling thread sends one itself. ``_lock`` guards the route cache and the
round-robin counters (held only to swap them, never during a call).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import tzinfo
from typing import Protocol, TypeVar, cast

from sheafdb.engine.distribution.read_calls import ReadAnswer, ReadCall
from sheafdb.engine.distribution.reduce import (
    WorkerAnswer,
    fanned_hybrid_search,
    fanned_query,
    fanned_search,
    fanned_search_by_keys,
    metric_for,
)
from sheafdb.engine.models import (
    HybridSearchRequest,
    LoadState,
    QueryRequest,
    QueryResult,
    SearchRequest,
    SearchResult,
)
from sheafdb.engine.name_rules import check_collection_name
from sheafdb.errors import (
    CollectionNotLoaded,
    ReplicaNotAvailable,
    ServiceUnavailable,
    SheafError,
    error_for_code,
    invalid,
)
from sheafdb.schema import CollectionSchema
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.placement_rows import ReplicaRecord, SegmentAssignment, WorkerRecord
from sheafdb.storage.records import CollectionRecord, IndexRecord
from sheafdb.storage.timestamps import TimestampOracle
from sheafdb.timestamptz import TIMEZONE_PROPERTY, zone

# How often the placement version is polled, and how stale worker leases may be.
ROUTE_POLL_S = 0.2
LEASE_REFRESH_S = 1.0
# How long a read waits for a complete replica before it fails.
DEFAULT_WAIT_S = 15.0
# Pause between attempts while no replica is complete.
RETRY_PAUSE_S = 0.1
MAX_FAN_OUT_THREADS = 32

_T = TypeVar("_T")

# The calling client's metadata (its authorization) to pass on to the workers, which check its
# privileges: set by the serving code around each read.
CALL_METADATA: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("call_metadata", default=())


class WorkerClient(Protocol):
    """Sends one read call to a worker's internal read service (api/cluster/worker_client.py).

    Raises ``ReplicaNotAvailable`` when the worker cannot be reached (the transport failed or
    timed out), so the caller retries elsewhere; a worker's own error comes back in the answer.
    """

    def read(
        self, address: str, call: ReadCall, metadata: Sequence[tuple[str, str]], timeout_s: float | None
    ) -> ReadAnswer: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Route:
    """One replica's workers to ask, with the placement version they were chosen from."""

    collection_id: int
    replica_id: int
    addresses: Mapping[int, str]  # worker id -> address
    placement_version: int


@dataclass(frozen=True)
class _Routes:
    version: int
    read_at: float
    replicas: Mapping[int, tuple[ReplicaRecord, ...]]
    assignments: Mapping[tuple[int, int], tuple[SegmentAssignment, ...]]  # (collection, replica)
    workers: Mapping[int, WorkerRecord]


class WorkerFailed(Exception):
    """One worker of a fan-out could not answer for its replica (internal: triggers a retry)."""

    def __init__(self, worker_id: int, cause: SheafError) -> None:
        super().__init__(cause.message)
        self.worker_id = worker_id
        self.cause = cause


class ClusterReads:
    def __init__(
        self,
        catalog: Catalog,
        client: WorkerClient,
        *,
        wait_s: float = DEFAULT_WAIT_S,
        call_timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._catalog = catalog
        self._client = client
        self._wait_s = wait_s
        self._call_timeout_s = call_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._routes: _Routes | None = None
        self._polled_at = 0.0
        self._turns: dict[int, itertools.count[int]] = {}
        # Collections by (db, name or alias) with their indexes, forgotten with the routes.
        self._records: dict[tuple[str, str], tuple[CollectionRecord, tuple[IndexRecord, ...]]] = {}
        self._pool = ThreadPoolExecutor(MAX_FAN_OUT_THREADS, thread_name_prefix="fan-out")
        self._oracle = TimestampOracle(catalog.max_timestamp())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    # -- the read API (engine/follower.py's) -------------------------------------------------
    def search(self, db: str, request: SearchRequest) -> SearchResult:
        record = self._resolve(db, request.collection)
        metric = self._metric(record, request)

        def run(fan: _Fan) -> SearchResult:
            if request.ids is not None:
                return fanned_search_by_keys(fan, record.schema, request, metric)
            return fanned_search(fan, request, metric)

        return self._read(db, record, "search", run)

    def hybrid_search(self, db: str, request: HybridSearchRequest) -> SearchResult:
        record = self._resolve(db, request.collection)
        metrics = [self._metric(record, sub) for sub in request.requests]
        return self._read(db, record, "search", lambda fan: fanned_hybrid_search(fan, request, metrics))

    def query(self, db: str, request: QueryRequest) -> QueryResult:
        record = self._resolve(db, request.collection)
        primary = record.schema.primary_field.name
        return self._read(db, record, "query", lambda fan: fanned_query(fan, request, primary))

    def collection_schema(self, db: str, name: str) -> CollectionSchema:
        return self._resolve(db, name).schema

    def output_zone(self, db: str, name: str, asked: str = "") -> tzinfo:
        properties = self._resolve(db, name).properties
        try:
            return zone(asked or properties.get(TIMEZONE_PROPERTY))
        except ValueError as e:
            raise invalid(str(e)) from None

    def allocate_timestamp(self) -> int:
        """A reply's session timestamp (this process's clock; writes are stamped by the writer)."""
        return self._oracle.next()

    def load_state(self, db: str, name: str) -> LoadState:
        """Loaded when a complete replica serves the collection, loading while none does."""
        record = self._resolve(db, name)
        if self._catalog.get_load_config(record.collection_id) is None:
            return LoadState.NOT_LOAD
        routes = self._current_routes(force=True)
        if self._complete(routes, record.collection_id, frozenset()):
            return LoadState.LOADED
        return LoadState.LOADING

    # -- routing ---------------------------------------------------------------------------
    def _resolve(self, db: str, name: str) -> CollectionRecord:
        return self._described(db, name)[0]

    def _described(self, db: str, name: str) -> tuple[CollectionRecord, tuple[IndexRecord, ...]]:
        self._current_routes(force=False)  # a moved placement forgets the collections too
        with self._lock:
            known = self._records.get((db, name))
        if known is not None:
            return known
        check_collection_name(name)
        record = self._catalog.resolve_collection(db, name)
        described = (record, tuple(self._catalog.list_indexes(record.collection_id)))
        with self._lock:
            self._records[(db, name)] = described
        return described

    def _metric(self, record: CollectionRecord, request: SearchRequest) -> str:
        indexes = self._described(record.db_name, record.name)[1]
        return metric_for(record.schema, indexes, request.anns_field, request.metric_type)

    def _current_routes(self, *, force: bool) -> _Routes:
        now = self._clock()
        with self._lock:
            routes, polled_at = self._routes, self._polled_at
        if routes is not None and not force and now - polled_at < ROUTE_POLL_S:
            return routes
        version = self._catalog.placement_version()
        if (
            routes is not None
            and not force
            and version == routes.version
            and now - routes.read_at < LEASE_REFRESH_S
        ):
            with self._lock:
                self._polled_at = now
            return routes
        routes = self._read_routes()
        with self._lock:
            self._routes, self._polled_at = routes, now
            self._records = {}
        return routes

    def _read_routes(self) -> _Routes:
        catalog = self._catalog
        while True:
            version = catalog.placement_version()
            replicas: dict[int, list[ReplicaRecord]] = {}
            for replica in catalog.list_replicas():
                replicas.setdefault(replica.collection_id, []).append(replica)
            assignments: dict[tuple[int, int], list[SegmentAssignment]] = {}
            for assignment in catalog.list_assignments():
                assignments.setdefault((assignment.collection_id, assignment.replica_id), []).append(
                    assignment
                )
            workers = {w.worker_id: w for w in catalog.list_workers()}
            if catalog.placement_version() == version:  # nothing moved while we read
                return _Routes(
                    version,
                    self._clock(),
                    {cid: tuple(sorted(rs, key=lambda r: r.replica_id)) for cid, rs in replicas.items()},
                    {key: tuple(a) for key, a in assignments.items()},
                    workers,
                )

    def _complete(self, routes: _Routes, collection_id: int, excluded: frozenset[int]) -> list[Route]:
        """The complete replicas of the collection that use none of ``excluded``."""
        now = self._clock()
        out: list[Route] = []
        for replica in routes.replicas.get(collection_id, ()):
            assigned = routes.assignments.get((collection_id, replica.replica_id), ())
            if not all(a.loaded for a in assigned):
                continue
            needed = {a.worker_id for a in assigned} | ({replica.leader_id} if replica.leader_id else set())
            if not needed or needed & excluded:
                continue
            records = [routes.workers.get(w) for w in sorted(needed)]
            if any(r is None or r.expires_at <= now for r in records):
                continue
            addresses = {r.worker_id: r.address for r in records if r is not None}
            out.append(Route(collection_id, replica.replica_id, addresses, routes.version))
        return out

    def _choose(self, collection_id: int, excluded: frozenset[int], force: bool) -> Route | None:
        routes = self._current_routes(force=force)
        candidates = self._complete(routes, collection_id, excluded)
        if not candidates:
            return None
        with self._lock:
            turn = next(self._turns.setdefault(collection_id, itertools.count()))
        return candidates[turn % len(candidates)]

    def _read(self, db: str, record: CollectionRecord, operation: str, run: Callable[[_Fan], _T]) -> _T:
        """``run`` over one complete replica; again on another when one of its workers fails."""
        cid = record.collection_id
        metadata = CALL_METADATA.get()
        deadline = self._clock() + self._wait_s
        excluded: set[int] = set()
        failure: SheafError | None = None
        force = False
        while True:
            route = self._choose(cid, frozenset(excluded), force)
            if route is not None:
                try:
                    return run(_Fan(self, db, route, metadata))
                except WorkerFailed as failed:
                    excluded.add(failed.worker_id)
                    failure, force = failed.cause, True
                    continue
            if self._catalog.get_load_config(cid) is None:
                raise CollectionNotLoaded(f"failed to {operation}: collection not loaded[collection={cid}]")
            if self._clock() >= deadline:
                detail = f": {failure.message}" if failure is not None else ""
                raise ServiceUnavailable(
                    f"failed to {operation}: no available replica of collection {record.name}"
                    f"[collection={cid}]{detail}"
                )
            if self._complete(self._current_routes(force=True), cid, frozenset()) and excluded:
                excluded.clear()  # every complete replica failed once: try them all again
            time.sleep(RETRY_PAUSE_S)
            force = True

    def _send(
        self, address: str, worker_id: int, call: ReadCall, metadata: Sequence[tuple[str, str]]
    ) -> ReadAnswer:
        try:
            answer = self._client.read(address, call, metadata, self._call_timeout_s)
        except ReplicaNotAvailable as exc:
            raise WorkerFailed(worker_id, exc) from exc
        if answer.error_code == ReplicaNotAvailable.code:
            raise WorkerFailed(worker_id, ReplicaNotAvailable(answer.error_message or None))
        if answer.error_code:
            raise error_for_code(answer.error_code, answer.error_message)
        if answer.result is None:
            raise WorkerFailed(worker_id, ReplicaNotAvailable(f"query worker {address} answered no result"))
        return answer


class _Fan:
    """reduce.Fanout over one route: the call to each of its workers in parallel."""

    def __init__(
        self, reads: ClusterReads, db: str, route: Route, metadata: Sequence[tuple[str, str]]
    ) -> None:
        self._reads = reads
        self._db = db
        self._route = route
        self._metadata = metadata

    def __call__(self, method: str, request: SearchRequest | QueryRequest) -> list[WorkerAnswer]:
        route = self._route
        call = ReadCall(method, self._db, request, route.replica_id, route.placement_version)
        targets = sorted(route.addresses.items())
        send = self._reads._send
        futures: list[Future[ReadAnswer]] = [
            self._reads._pool.submit(send, address, worker_id, call, self._metadata)
            for worker_id, address in targets[1:]
        ]
        first_id, first_address = targets[0]
        answers: list[ReadAnswer] = []
        try:
            answers.append(send(first_address, first_id, call, self._metadata))
        finally:
            # Every call is waited for (and its error seen) before the read goes on or retries.
            errors: list[BaseException] = []
            for future in futures:
                try:
                    answers.append(future.result())
                except BaseException as exc:  # noqa: BLE001 - re-raised below, WorkerFailed first
                    errors.append(exc)
        if errors:
            failed = [e for e in errors if isinstance(e, WorkerFailed)]
            raise failed[0] if failed else errors[0]
        return [WorkerAnswer(cast(SearchResult | QueryResult, a.result), a.larger_is_better) for a in answers]
