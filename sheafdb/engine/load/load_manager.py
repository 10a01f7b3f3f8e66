"""The load manager: load, release, and every read that needs a loaded collection.

Per collection it keeps a ``CollectionLoadState`` (the state machine) and the loaded sealed
segments. A load validates the request, plans it, reserves its bytes with the accountant
(refused at once if they do not fit), then a background thread reads segment by segment,
registering each one's bytes. Reads take a snapshot of the collection, use the loaded
segments it lists, load on the spot any sealed segment that appeared since (a seal moves rows
out of the growing table, so it must be visible at once), and search growing rows directly.

Locks (always taken in this order; never held while reading files):
- ``_lock``: the map of collection runtimes.
- ``_Runtime.lock``: one collection's loaded segments and its load thread handles. Load
  threads take it only to install a finished segment.
- the state machine's own lock (``CollectionLoadState``).
- the accountant's lock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sheafdb.engine.collection import Collection
from sheafdb.engine.load.load_plan import check_indexes, plan_load, resolve_load_fields, segment_plan
from sheafdb.engine.load.load_state import CollectionLoadState, LoadJob
from sheafdb.engine.load.loaded_segment import (
    GrowingRows,
    LoadCancelled,
    LoadedSegment,
    RowSource,
    load_segment,
    open_index,
)
from sheafdb.engine.load.memory import MemoryAccountant, MemoryKey, Reservation, give_back_memory
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
from sheafdb.engine.read.growing_json import GrowingJsonCache
from sheafdb.engine.read.query import execute_query
from sheafdb.engine.read.rerank import execute_hybrid_search
from sheafdb.engine.read.search import ReadContext, execute_search
from sheafdb.engine.read.superseded import SupersededVersions
from sheafdb.engine.snapshot import DataEvent, DataSnapshot, SealedSegment
from sheafdb.errors import CollectionNotLoaded, PartitionNotFound, SheafError, UnexpectedError, invalid
from sheafdb.storage.object_store import ObjectStore

# How long load() waits for its background job before answering (see load()).
QUICK_LOAD_WAIT_S = 0.15


@dataclass(eq=False)
class _Runtime:
    collection_id: int
    state: CollectionLoadState
    lock: threading.Lock = field(default_factory=threading.Lock)
    segments: dict[int, LoadedSegment] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)
    # Parsed JSON of growing batches (its own lock); pruned to the snapshot on every read.
    growing_json: GrowingJsonCache = field(default_factory=GrowingJsonCache)
    # What the last complete _sync_segments saw: (sealed tuple, loaded partitions, fields).
    # A read whose snapshot and state match it has nothing to sync. ``drops`` counts drops: a
    # sync that a drop overlapped records nothing. Both read and written under ``lock``.
    synced: tuple[object, frozenset[int], tuple[str, ...]] | None = None
    drops: int = 0


class LoadManager:
    def __init__(self, accountant: MemoryAccountant, store: ObjectStore) -> None:
        self.accountant = accountant
        self.store = store
        self._lock = threading.Lock()
        self._runtimes: dict[int, _Runtime] = {}
        self._superseded = SupersededVersions()

    def _runtime(self, coll: Collection) -> _Runtime:
        with self._lock:
            runtime = self._runtimes.get(coll.collection_id)
            if runtime is None:
                runtime = _Runtime(coll.collection_id, CollectionLoadState(coll.collection_id))
                self._runtimes[coll.collection_id] = runtime
                coll.add_listener(lambda event: self._on_event(coll, event))
        runtime.state.adopt_partitions(coll.partitions.values())
        return runtime

    # -- load ------------------------------------------------------------------------------
    def load(
        self,
        coll: Collection,
        *,
        partitions: tuple[str, ...] | None,
        load_fields: tuple[str, ...],
        skip_load_dynamic_field: bool,
        replica_number: int,
        refresh: bool,
    ) -> None:
        runtime = self._runtime(coll)
        if refresh:
            self._refresh(coll, runtime)
            return
        schema = coll.schema
        if partitions is not None:
            if not partitions:
                raise UnexpectedError("failed to load partition, due to no partition specified")
            if schema.partition_key_field is not None:
                raise UnexpectedError("disable load partitions if partition key mode is used")
        fields = resolve_load_fields(schema, load_fields, skip_load_dynamic_field)
        check_indexes(coll.name, schema, coll.indexes, fields, for_partitions=partitions is not None)
        partition_ids = self._partition_ids(coll, partitions)
        state = runtime.state
        state.check_fields(fields, skip_load_dynamic_field)
        missing = state.missing(partition_ids)
        if not missing:
            return  # already loaded or loading with the same fields: Milvus answers success
        snapshot = coll.snapshot()
        plan = plan_load(snapshot.sealed, missing, fields, schema.primary_field.name)
        reservation = self.accountant.reserve(plan.total_bytes)
        job = state.start(
            missing,
            fields,
            skip_load_dynamic_field,
            "partition" if partitions is not None else "collection",
            plan.bytes_by_partition(),
        )
        thread = threading.Thread(
            target=self._run_load,
            args=(coll, runtime, job, snapshot, fields, reservation),
            name=f"load-{coll.collection_id}-{job.job_id}",
            daemon=True,
        )
        with runtime.lock:  # started under the lock: a release never sees it unstarted
            runtime.threads = [t for t in runtime.threads if t.is_alive()] + [thread]
            thread.start()
        # Loads stay asynchronous, as in Milvus, but a small one is done in milliseconds: a short
        # wait lets the client's first progress poll read 100, so pymilvus skips its 0.2 s sleep.
        thread.join(QUICK_LOAD_WAIT_S)

    def _partition_ids(self, coll: Collection, partitions: tuple[str, ...] | None) -> frozenset[int]:
        known = coll.partitions
        if partitions is None:
            return frozenset(known.values())
        ids = []
        for name in partitions:
            if name not in known:
                raise PartitionNotFound(f"partition not found[partition={name}]")
            ids.append(known[name])
        return frozenset(ids)

    def _run_load(
        self,
        coll: Collection,
        runtime: _Runtime,
        job: LoadJob,
        snapshot: DataSnapshot,
        fields: tuple[str, ...],
        reservation: Reservation,
    ) -> None:
        try:
            for segment in snapshot.sealed:
                if segment.partition_id not in job.partition_ids:
                    continue
                if job.cancelled:
                    raise LoadCancelled
                self._load_one(coll, runtime, segment, fields, reservation, job)
            if not runtime.state.finish(job):
                self._drop(runtime)
        except LoadCancelled:
            self._drop(runtime)
        except Exception as exc:  # noqa: BLE001 - a thread boundary: any failure must end the load,
            # never leave it "stuck at 74%"; the reason is kept for the next progress call.
            runtime.state.fail(job, f"load segment failed: {exc}")
            self._drop(runtime)
            give_back_memory()  # what the failed load had read is garbage now
        finally:
            reservation.close()

    def _load_one(
        self,
        coll: Collection,
        runtime: _Runtime,
        segment: SealedSegment,
        fields: tuple[str, ...],
        reservation: Reservation | None,
        job: LoadJob | None,
    ) -> LoadedSegment | None:
        with runtime.lock:
            existing = runtime.segments.get(segment.segment_id)
        if existing is not None:
            return existing

        def on_bytes(nbytes: int) -> None:
            if job is not None:
                runtime.state.add_loaded(job, segment.partition_id, nbytes)

        cancelled = (lambda: job.cancelled) if job is not None else (lambda: False)
        loaded = load_segment(
            self.store, coll.schema, segment, fields, cancelled=cancelled, on_bytes=on_bytes
        )
        with runtime.lock:
            # A release may have come between the read and now: then the segment is dropped.
            if (
                job is not None and job.cancelled
            ) or segment.partition_id not in runtime.state.active_partitions():
                return None
            current = runtime.segments.setdefault(segment.segment_id, loaded)
            if current is loaded:
                self._register(coll.collection_id, loaded, reservation)
            return current

    def _register(self, collection_id: int, loaded: LoadedSegment, reservation: Reservation | None) -> None:
        for (kind, name), nbytes in loaded.footprint.items():
            key = MemoryKey(collection_id, loaded.partition_id, loaded.segment_id, kind, name)
            self.accountant.register(key, nbytes, reservation)

    def _refresh(self, coll: Collection, runtime: _Runtime) -> None:
        state = runtime.state
        if state.state() is LoadState.NOT_LOAD:
            raise CollectionNotLoaded(f"collection not loaded[collection={coll.collection_id}]")
        if state.state() is LoadState.LOADING:
            raise CollectionNotLoaded(
                f"collection not loaded[collection={coll.collection_id}]: collection not fully loaded"
            )
        state.mark_refreshing()
        self._catch_up(coll, runtime)
        state.mark_refreshed()

    # -- events from the data plane --------------------------------------------------------
    def _on_event(self, coll: Collection, event: DataEvent) -> None:
        """A seal, an index build or a compaction: bring a loaded collection up to date."""
        with self._lock:
            runtime = self._runtimes.get(coll.collection_id)
        if runtime is None or not runtime.state.active_partitions():
            return
        threading.Thread(target=self._catch_up_quietly, args=(coll, runtime), daemon=True).start()

    def _catch_up_quietly(self, coll: Collection, runtime: _Runtime) -> None:
        try:
            self._catch_up(coll, runtime)
        except SheafError:
            pass  # e.g. over budget: reads still serve the segment exactly from the snapshot

    def _catch_up(self, coll: Collection, runtime: _Runtime) -> None:
        snapshot = coll.snapshot()
        self._sync_segments(coll, runtime, snapshot)
        fields = runtime.state.fields
        for segment in snapshot.sealed:
            with runtime.lock:
                loaded = runtime.segments.get(segment.segment_id)
            if loaded is None:
                continue
            for name, index_file in segment.index_files.items():
                if name in fields and loaded.index(name) is None:
                    with self.accountant.reserve(index_file.nbytes) as reservation:
                        index = open_index(self.store, coll.schema, name, index_file.path, index_file.params)
                        with runtime.lock:
                            # Released meanwhile: registering now would leak the whole footprint.
                            if runtime.segments.get(segment.segment_id) is not loaded:
                                continue
                            loaded.add_index(name, index)
                            self._register(coll.collection_id, loaded, reservation)

    def _sync_segments(self, coll: Collection, runtime: _Runtime, snapshot: DataSnapshot) -> None:
        """Drop loaded segments a compaction replaced; load the sealed ones not loaded yet."""
        loaded_partitions = frozenset(runtime.state.loaded_partitions())
        fields = runtime.state.fields
        seen = (snapshot.sealed, loaded_partitions, fields)
        with runtime.lock:
            last = runtime.synced
            if last is not None and last[0] is seen[0] and last[1:] == seen[1:]:
                return
            drops = runtime.drops
        live = {s.segment_id for s in snapshot.sealed}
        with runtime.lock:
            gone = [runtime.segments.pop(sid) for sid in list(runtime.segments) if sid not in live]
        for dropped in gone:
            for kind, name in dropped.footprint:
                self.accountant.unregister(
                    MemoryKey(coll.collection_id, dropped.partition_id, dropped.segment_id, kind, name)
                )
        if gone:
            # A compaction replaced them: their memory leaves once the reads using them finish.
            del gone, dropped
            give_back_memory()
        for segment in snapshot.sealed:
            if segment.partition_id not in loaded_partitions or segment.segment_id in runtime.segments:
                continue
            items = segment_plan(segment, fields, coll.schema.primary_field.name)
            with self.accountant.reserve(sum(i.nbytes for i in items)) as reservation:
                self._load_one(coll, runtime, segment, fields, reservation, None)
        with runtime.lock:
            if runtime.drops == drops:
                runtime.synced = seen

    # -- release ---------------------------------------------------------------------------
    def release(self, coll: Collection, partitions: tuple[str, ...] | None = None) -> int:
        runtime = self._runtime(coll)
        self._superseded.forget(coll.collection_id)
        if partitions is not None and not partitions:
            raise invalid("no partition specified")
        partition_ids = None if partitions is None else self._partition_ids(coll, partitions)
        cancelled = runtime.state.release(partition_ids)
        with runtime.lock:
            threads = list(runtime.threads)
        current = threading.current_thread()
        for thread in threads:
            if thread is not current and cancelled:
                thread.join()
        freed = self._drop(runtime)
        give_back_memory()
        return freed

    def _drop(self, runtime: _Runtime, partition_ids: frozenset[int] | None = None) -> int:
        """Forget loaded segments of partitions no longer loaded or loading; returns the bytes."""
        active = runtime.state.active_partitions()
        with runtime.lock:
            runtime.synced = None
            runtime.drops += 1
            for sid in [sid for sid, seg in runtime.segments.items() if seg.partition_id not in active]:
                del runtime.segments[sid]
        if not active:
            runtime.growing_json.clear()
        return self.accountant.unregister_except(runtime.collection_id, keep=active)

    def forget(self, coll: Collection) -> None:
        self.release(coll)
        self._superseded.forget(coll.collection_id)
        with self._lock:
            self._runtimes.pop(coll.collection_id, None)

    def forget_partition(self, coll: Collection, partition_id: int) -> None:
        runtime = self._runtime(coll)
        runtime.state.release([partition_id])
        self._drop(runtime)
        runtime.state.forget_partition(partition_id)
        give_back_memory()

    # -- state -----------------------------------------------------------------------------
    def state(self, coll: Collection, partitions: tuple[str, ...] = ()) -> LoadState:
        ids = self._partition_ids(coll, partitions) if partitions else ()
        return self._runtime(coll).state.state(ids)

    def progress(self, coll: Collection, partitions: tuple[str, ...] = ()) -> LoadProgress:
        state = self._runtime(coll).state
        ids = self._partition_ids(coll, partitions) if partitions else frozenset()
        if state.state(ids) is LoadState.NOT_LOAD:
            reason = state.failure
            detail = f": {reason}" if reason else ""
            raise CollectionNotLoaded(f"collection not loaded[collection={coll.collection_id}]{detail}")
        return LoadProgress(progress=state.progress(ids), refresh_progress=state.refresh_progress)

    def is_loaded(self, coll: Collection) -> bool:
        return self._runtime(coll).state.state() is LoadState.LOADED

    def loaded_fields(self, coll: Collection) -> tuple[str, ...]:
        """What is loaded now (users asked for a way to read it back)."""
        return self._runtime(coll).state.fields

    # -- reads -----------------------------------------------------------------------------
    def read_context(
        self, coll: Collection, operation: str, partitions: Sequence[str], ignore_growing: bool = False
    ) -> ReadContext:
        runtime = self._runtime(coll)
        named = self._partition_ids(coll, tuple(partitions)) if partitions else frozenset()
        usable = runtime.state.require_searchable(operation, named)
        snapshot = coll.snapshot()
        self._sync_segments(coll, runtime, snapshot)
        sources: list[RowSource] = []
        with runtime.lock:
            for segment in snapshot.sealed:
                loaded = runtime.segments.get(segment.segment_id)
                if segment.partition_id in usable and loaded is not None:
                    sources.append(loaded)
        runtime.growing_json.retain(snapshot.growing.values())
        if not ignore_growing:
            fields = runtime.state.fields
            for pid, table in snapshot.growing.items():
                if pid in usable and table.num_rows:
                    columns = [c for c in table.column_names if c in fields or c == "__ts"]
                    sources.append(GrowingRows(pid, table.select(columns), runtime.growing_json, coll.schema))
        # The check again: a release that raced the snapshot must not serve half-dropped data.
        runtime.state.require_searchable(operation, named)
        return ReadContext(
            collection_id=coll.collection_id,
            schema=coll.schema,
            loaded_fields=runtime.state.fields,
            sources=tuple(sources),
            # Older versions of re-inserted keys are hidden like deleted rows (superseded.py).
            deletes=self._superseded.deletes_for(
                coll.collection_id, coll.schema.primary_field.name, sources, snapshot.deletes
            ),
            indexes=coll.indexes,
            expiry=expiry_of(coll.record.properties),
        )

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
        with runtime.lock:  # a segment released meanwhile must not be registered again
            for source in loaded:
                if runtime.segments.get(source.segment_id) is not source:
                    continue
                for (kind, name), nbytes in source.cache_growth().items():
                    key = MemoryKey(coll.collection_id, source.partition_id, source.segment_id, kind, name)
                    self.accountant.register(key, nbytes)

    def memory_report(self) -> Mapping[str, object]:
        return self.accountant.report()
