"""The load manager: load, release, and every read that needs a loaded collection.

A load call checks and prices the request, reserves the whole plan with the accountant
(refused at once, code 3, when it does not fit), moves its partitions to Loading and pokes the
loader (loader.py), which installs the segments on its pool and publishes each step as a new
immutable ``LoadedView``. A read checks the state, takes a snapshot of the collection and the
current view, and serves the snapshot's sealed segments from the view, or from memory while
they are handed off (view.py): reads never open a segment file and never reserve memory.
Seals, index builds and compactions poke the loader.

Locks: ``_lock`` guards the map of collection runtimes. A load (its checks, its plan and its
move to Loading) and a release (from Releasing to NotLoad) of one collection hold the runtime's
``transition`` lock throughout, so they are serialized: a load never sees a release half done
(nor its field list not yet forgotten), and two loads never both pass the field-list check.
The loader documents the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from sheafdb.engine.collection import Collection
from sheafdb.engine.load.load_plan import (
    changes_online,
    check_indexes,
    plan_load,
    resolve_load_fields,
)
from sheafdb.engine.load.load_state import CollectionLoadState
from sheafdb.engine.load.loaded_segment import LoadedSegment, added_bytes
from sheafdb.engine.load.loader import CollectionRuntime, Loader, LoadJobRun
from sheafdb.engine.load.memory import MemoryAccountant, MemoryKey, give_back_memory
from sheafdb.engine.load.residency import Resident, policy_of
from sheafdb.engine.load.target import LoadRequest
from sheafdb.engine.load.view import resolve_sources
from sheafdb.engine.models import (
    HybridSearchRequest,
    LoadProgress,
    LoadState,
    QueryRequest,
    QueryResult,
    SearchRequest,
    SearchResult,
)
from sheafdb.engine.read.expiry import expiry_of
from sheafdb.engine.read.query import execute_query
from sheafdb.engine.read.rerank import execute_hybrid_search
from sheafdb.engine.read.search import ReadContext, execute_search
from sheafdb.engine.read.superseded import SupersededVersions
from sheafdb.engine.snapshot import DataEvent
from sheafdb.errors import CollectionNotLoaded, PartitionNotFound, UnexpectedError, invalid
from sheafdb.storage.object_store import ObjectStore

# How long load() waits for its job before answering (see load()).
QUICK_LOAD_WAIT_S = 0.15
# A read whose view does not cover its snapshot (a swap between the two) takes both again;
# after this many tries it answers "not loaded" (only a storm of swaps gets there).
VIEW_ATTEMPTS = 50
# A read that loads a collection again (sheafdb.reload_on_read) waits this long for it.
RELOAD_ON_READ_WAIT_S = 600.0


class LoadManager:
    def __init__(
        self, accountant: MemoryAccountant, store: ObjectStore, *, share_pages: bool = False
    ) -> None:
        self.accountant = accountant
        self.store = store
        self.loader = Loader(accountant, store, share_pages=share_pages)
        self._lock = threading.Lock()
        self._runtimes: dict[int, CollectionRuntime] = {}
        self._superseded = SupersededVersions()

    def close(self) -> None:
        self.loader.close()

    def _runtime(self, coll: Collection) -> CollectionRuntime:
        with self._lock:
            runtime = self._runtimes.get(coll.collection_id)
            if runtime is None:
                runtime = CollectionRuntime(coll, CollectionLoadState(coll.collection_id))
                self._runtimes[coll.collection_id] = runtime
                coll.add_listener(lambda event: self._on_event(runtime, event))
        runtime.state.adopt_partitions(coll.partitions.values())
        return runtime

    # -- load ------------------------------------------------------------------------------
    def load(self, coll: Collection, request: LoadRequest, *, wait_s: float = QUICK_LOAD_WAIT_S) -> None:
        runtime = self._runtime(coll)
        if request.refresh:
            self._refresh(runtime)
            return
        with runtime.transition:
            started = self._start_load(runtime, request)
        # Loads stay asynchronous, as in Milvus, but a small one is done in milliseconds: a short
        # wait lets the client's first progress poll read 100, so pymilvus skips its 0.2 s sleep.
        if started and wait_s > 0:
            runtime.state.wait(started, wait_s)

    def _start_load(self, runtime: CollectionRuntime, request: LoadRequest) -> frozenset[int]:
        """Check, plan and reserve a load and move its partitions to Loading (under
        ``transition``); the partitions it started, empty when nothing was left to load."""
        coll = runtime.collection
        schema = coll.schema
        partitions = request.partitions
        if partitions is not None:
            if not partitions:
                raise UnexpectedError("failed to load partition, due to no partition specified")
            if schema.partition_key_field is not None:
                raise UnexpectedError("disable load partitions if partition key mode is used")
        fields = resolve_load_fields(schema, request.load_fields, request.skip_load_dynamic_field)
        check_indexes(coll.name, schema, coll.indexes, fields, for_partitions=partitions is not None)
        partition_ids = self._partition_ids(coll, partitions)
        state = runtime.state
        online = changes_online(coll.record.properties)
        if online and self._change_online(runtime, fields, request.skip_load_dynamic_field):
            runtime.request = request
            return frozenset()
        state.check_fields(fields, request.skip_load_dynamic_field)
        missing = state.missing(partition_ids)
        runtime.request = request
        runtime.released_by_policy = False
        runtime.last_read = time.monotonic()
        rescoped = runtime.scope != request.scope
        runtime.scope = request.scope
        if not missing:
            if rescoped:  # a worker's placement changed: install and retire segments in passes
                self.loader.poke(runtime)
            return missing  # already loaded or loading with the same fields: Milvus answers success
        mapped = self.loader.mapped(coll)
        plan = plan_load(runtime.snapshot().sealed, missing, fields, schema.primary_field.name, mapped)
        reservation = self.accountant.reserve(plan.total_bytes, f"loading collection {coll.name}")
        job = state.start(
            missing,
            fields,
            request.skip_load_dynamic_field,
            "partition" if partitions is not None else "collection",
            plan.bytes_by_partition(),
        )
        coll.hand_off(True)  # from now on seals keep their rows served until installed
        with runtime.lock:
            runtime.jobs = (*runtime.jobs, LoadJobRun(job, frozenset(plan.bytes_by_segment()), reservation))
        self.loader.poke(runtime)
        return missing

    def _change_online(self, runtime: CollectionRuntime, fields: tuple[str, ...], skip_dynamic: bool) -> bool:
        """``sheafdb.online_load_change``: a loaded collection takes a new field list (or a new
        mmap setting) while it serves; the loader swaps in the new view when it is ready.
        False when there is nothing loaded to change (an ordinary load follows)."""
        coll, state = runtime.collection, runtime.state
        if state.state() is not LoadState.LOADED:
            return False
        mapped = self.loader.mapped(coll)
        view = runtime.view
        if view.fields == fields and view.mapped == mapped and state.fields == fields:
            return False  # nothing changes: the ordinary path answers success
        current = {s.segment_id: s for s in runtime.snapshot().sealed}
        added = sum(
            added_bytes(old, current.get(sid, old.source), fields, mapped)
            for sid, old in view.segments.items()
        )
        if added > self.accountant.available_bytes:
            self.accountant.reserve(added, f"changing what collection {coll.name} holds")  # raises, code 3
        state.change_fields(fields, skip_dynamic)
        self.loader.poke(runtime)
        self.loader.wait_idle(QUICK_LOAD_WAIT_S)
        return True

    def _partition_ids(self, coll: Collection, partitions: Sequence[str] | None) -> frozenset[int]:
        known = coll.partitions
        if partitions is None:
            return frozenset(known.values())
        ids = []
        for name in partitions:
            if name not in known:
                raise PartitionNotFound(f"partition not found[partition={name}]")
            ids.append(known[name])
        return frozenset(ids)

    def _refresh(self, runtime: CollectionRuntime) -> None:
        state = runtime.state
        collection_id = runtime.collection.collection_id
        if state.state() is LoadState.NOT_LOAD:
            raise CollectionNotLoaded(f"collection not loaded[collection={collection_id}]")
        if state.state() is LoadState.LOADING:
            raise CollectionNotLoaded(
                f"collection not loaded[collection={collection_id}]: collection not fully loaded"
            )
        state.mark_refreshing()
        self.loader.reconcile(runtime)
        state.mark_refreshed()

    # -- events from the data plane --------------------------------------------------------
    def _on_event(self, runtime: CollectionRuntime, event: DataEvent) -> None:
        """A seal, an index build or a compaction: bring a loaded collection up to date."""
        if runtime.state.active_partitions():
            self.loader.poke(runtime)

    # -- release ---------------------------------------------------------------------------
    def release(
        self, coll: Collection, partitions: tuple[str, ...] | None = None, *, by_policy: bool = False
    ) -> int:
        runtime = self._runtime(coll)
        self._superseded.forget(coll.collection_id)
        if partitions is not None and not partitions:
            raise invalid("no partition specified")
        partition_ids = None if partitions is None else self._partition_ids(coll, partitions)
        with runtime.transition:
            runtime.released_by_policy = by_policy  # before Releasing: a racing read may reload
            runtime.state.release(partition_ids)  # Releasing: reads refused, the job cancelled
            with runtime.reconciling:  # a running pass stops at its next structure
                freed = self.loader.drop_inactive(runtime)
                runtime.state.released()
        give_back_memory()
        return freed

    def forget(self, coll: Collection) -> None:
        self.release(coll)
        self._superseded.forget(coll.collection_id)
        with self._lock:
            self._runtimes.pop(coll.collection_id, None)

    def forget_partition(self, coll: Collection, partition_id: int) -> None:
        runtime = self._runtime(coll)
        with runtime.transition:
            runtime.state.release([partition_id])
            with runtime.reconciling:
                self.loader.drop_inactive(runtime)
                runtime.state.released()
            runtime.state.forget_partition(partition_id)
        give_back_memory()

    # -- state -----------------------------------------------------------------------------
    def state(self, coll: Collection, partitions: tuple[str, ...] = ()) -> LoadState:
        ids = self._partition_ids(coll, partitions) if partitions else ()
        return self._runtime(coll).state.state(ids)

    def progress(self, coll: Collection, partitions: tuple[str, ...] = ()) -> LoadProgress:
        runtime = self._runtime(coll)
        state = runtime.state
        ids = self._partition_ids(coll, partitions) if partitions else frozenset()
        if state.state(ids) is LoadState.NOT_LOAD:
            reason = state.failure
            detail = f": {reason}" if reason else ""
            raise CollectionNotLoaded(f"collection not loaded[collection={coll.collection_id}]{detail}")
        progress = state.progress(ids)
        if progress == 100 and self._changing_online(runtime):
            progress = 99  # a client waiting for 100 waits until the new fields are usable
        return LoadProgress(progress=progress, refresh_progress=state.refresh_progress)

    def _changing_online(self, runtime: CollectionRuntime) -> bool:
        """An online load change the loader has not published yet (loader._reshape)."""
        coll, view = runtime.collection, runtime.view
        if not view.segments:
            return False
        mapped = self.loader.mapped(coll)
        return view.fields != runtime.state.fields or view.mapped != mapped

    def check_fields(self, coll: Collection, fields: tuple[str, ...], skip_dynamic: bool) -> None:
        """A load may not change the field list of what is loaded (a load preview checks it too),
        unless the collection changes what it holds online."""
        if changes_online(coll.record.properties):
            return
        self._runtime(coll).state.check_fields(fields, skip_dynamic)

    def wait(self, coll: Collection, partitions: tuple[str, ...], timeout: float) -> LoadState:
        ids = self._partition_ids(coll, partitions) if partitions else ()
        return self._runtime(coll).state.wait(ids, timeout)

    def is_loaded(self, coll: Collection) -> bool:
        return self._runtime(coll).state.state() is LoadState.LOADED

    def scope_coverage(self, coll: Collection) -> tuple[frozenset[int], frozenset[int]]:
        """Of the sealed segments in this process's scope, the ids installed and those not yet
        (a cluster worker acks the first and is not fully loaded while the second is not empty)."""
        runtime = self._runtime(coll)
        wanted = {
            s.segment_id
            for s in runtime.snapshot().sealed
            if s.partition_id in runtime.state.active_partitions()
        }
        installed = frozenset(runtime.view.segments) & wanted
        return frozenset(installed), frozenset(wanted - installed)

    def loaded_fields(self, coll: Collection) -> tuple[str, ...]:
        """What is loaded now (users asked for a way to read it back)."""
        return self._runtime(coll).state.fields

    # -- reads -----------------------------------------------------------------------------
    def read_context(
        self, coll: Collection, operation: str, partitions: Sequence[str], ignore_growing: bool = False
    ) -> ReadContext:
        """One consistent view: the state checked before and after, the snapshot's sealed
        segments all served by one published view (or handed off), its fields throughout."""
        runtime = self._runtime(coll)
        named = self._partition_ids(coll, tuple(partitions)) if partitions else frozenset()
        state = runtime.state
        runtime.last_read = time.monotonic()
        for _ in range(VIEW_ATTEMPTS):
            try:
                usable = state.require_searchable(operation, named)
            except CollectionNotLoaded:
                if not self._reload_for_read(runtime):
                    raise
                usable = state.require_searchable(operation, named)
            plans = coll.read_plans  # one schema for the whole read
            snapshot = runtime.snapshot()
            # Before the check below: an index dropped after a release that follows the check
            # must not vanish from under this read (its view still holds that index).
            indexes = coll.indexes
            view = runtime.view
            sources = resolve_sources(
                view, snapshot, usable, plans.schema, runtime.growing_json, ignore_growing=ignore_growing
            )
            # The check again: a release that raced the snapshot must not serve half-dropped data.
            if state.require_searchable(operation, named) != usable or sources is None or view.fields is None:
                continue
            runtime.growing_json.retain(
                [*snapshot.growing.values(), *(t for h in snapshot.handoff.values() for t in h.rows)]
            )
            return ReadContext(
                collection_id=coll.collection_id,
                schema=plans.schema,
                loaded_fields=view.fields,
                sources=sources,
                # Older versions of re-inserted keys are hidden like deleted rows (superseded.py).
                deletes=self._superseded.deletes_for(
                    coll.collection_id, plans.schema.primary_field.name, sources, snapshot.deletes
                ),
                indexes=indexes,
                plans=plans,
                expiry=expiry_of(coll.record.properties),
            )
        raise CollectionNotLoaded(
            f"failed to {operation}: collection not loaded[collection={coll.collection_id}]"
        )

    def _reload_for_read(self, runtime: CollectionRuntime) -> bool:
        """After a policy release with ``sheafdb.reload_on_read``: load again, wait, True."""
        coll, request = runtime.collection, runtime.request
        if not runtime.released_by_policy or request is None:
            return False
        if not policy_of(coll.record.properties).reload_on_read:
            return False
        self.load(coll, request, wait_s=0)
        runtime.released_by_policy = False
        runtime.state.wait(timeout=RELOAD_ON_READ_WAIT_S)
        return True

    # -- residency ---------------------------------------------------------------------------
    def residents(self) -> list[Resident]:
        """The loaded collections with their policies and how long each has been idle."""
        with self._lock:
            runtimes = list(self._runtimes.values())
        now = time.monotonic()
        return [
            Resident(
                rt.collection, policy_of(rt.collection.record.properties), now - rt.last_read, rt.last_read
            )
            for rt in runtimes
            if rt.state.state() is LoadState.LOADED
        ]

    def release_by_policy(self, coll: Collection) -> int:
        """A residency policy's release; a read may load it again (``sheafdb.reload_on_read``)."""
        return self.release(coll, by_policy=True)

    def search(self, coll: Collection, req: SearchRequest) -> SearchResult:
        ctx = self.read_context(coll, "search", req.partition_names, req.ignore_growing)
        try:
            return execute_search(ctx, req)
        finally:
            self._account_caches(coll, ctx)

    def hybrid_search(self, coll: Collection, req: HybridSearchRequest) -> SearchResult:
        ctx = self.read_context(coll, "search", req.partition_names)
        try:
            return execute_hybrid_search(ctx, req)
        finally:
            self._account_caches(coll, ctx)

    def query(self, coll: Collection, req: QueryRequest) -> QueryResult:
        ctx = self.read_context(coll, "query", req.partition_names, req.ignore_growing)
        try:
            return execute_query(ctx, req)
        finally:
            self._account_caches(coll, ctx)

    def _account_caches(self, coll: Collection, ctx: ReadContext) -> None:
        """Register what a read added to segment caches (JSON projections, filter masks)."""
        # Most reads add nothing: those skip the lock and the size sums.
        loaded = [s for s in ctx.sources if isinstance(s, LoadedSegment) and s.caches_changed()]
        if not loaded:
            return
        runtime = self._runtime(coll)
        with runtime.lock:  # a segment retired meanwhile must not be registered again
            for source in loaded:
                if runtime.view.segments.get(source.segment_id) is not source:
                    continue
                for (kind, name), nbytes in source.cache_growth().items():
                    key = MemoryKey(coll.collection_id, source.partition_id, source.segment_id, kind, name)
                    self.accountant.register(key, nbytes)

    def memory_report(self) -> Mapping[str, object]:
        return self.accountant.report()
