"""The loader: brings what is installed in line with what should be loaded, on a bounded pool.

Per collection a ``CollectionRuntime`` holds the target (the state machine: partitions x
fields), the published ``LoadedView`` and the running load job. ``Loader.poke`` asks for a
reconcile of one collection (coalesced: many pokes while one is queued make one pass);
``LOADER_THREADS`` threads run them. A pass, against a fresh snapshot of the collection:

1. installs every sealed segment of a target partition that the view lacks (reading its
   loaded columns and indexes), drawing its bytes from the load job's reservation when the
   job planned it, else reserving them (a handoff: a refusal is logged and the segment stays
   served from memory until a later pass fits), then ends its handoff;
2. adds indexes built since a segment was installed;
3. retires installed segments no longer in the snapshot (compacted, dropped) once nothing
   hands off to them, and segments of partitions no longer in the target;
4. finishes the load job (Loading -> Loaded) when every segment of its partitions is in.

Each install or retirement publishes a new view (one assignment under ``CollectionRuntime.lock``,
together with the accountant's registration). Memory limit errors come only from here and
from the load call itself, never from a read.

Locks, in order: ``CollectionRuntime.transition`` (the load manager's: one load or release
of a collection at a time), ``CollectionRuntime.reconciling`` (one pass at a time per
collection; a release holds it to drop segments, after its cancel made the pass stop between
structures),
then ``CollectionRuntime.lock`` (the view, the job, the poke flags), then the state machine's
and the accountant's own.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType

from sheafdb.engine.collection import Collection
from sheafdb.engine.load.load_plan import mapped_fields, segment_plan
from sheafdb.engine.load.load_state import CollectionLoadState, LoadJob
from sheafdb.engine.load.loaded_segment import (
    LoadCancelled,
    LoadedSegment,
    added_bytes,
    load_segment,
    open_index,
    reshape_segment,
)
from sheafdb.engine.load.memory import MemoryAccountant, MemoryKey, Reservation, give_back_memory
from sheafdb.engine.load.scalar_indexes import wanted_files
from sheafdb.engine.load.target import EVERYTHING, LoadRequest, SegmentScope
from sheafdb.engine.load.view import NOTHING_LOADED, LoadedView
from sheafdb.engine.read.growing_json import GrowingJsonCache
from sheafdb.engine.snapshot import DataSnapshot, SealedSegment, SegmentIndexFile
from sheafdb.errors import MemoryLimitExceeded
from sheafdb.index.scalar import load_scalar_index
from sheafdb.storage.object_store import ObjectStore

log = logging.getLogger(__name__)

# Reconciles run on this many threads: loads of different collections overlap, and a burst of
# seals or loads never starts more threads than this.
LOADER_THREADS = 2


@dataclass
class LoadJobRun:
    """A load call's job, the segments it planned, and the bytes reserved for them."""

    job: LoadJob
    planned: frozenset[int]
    reservation: Reservation


@dataclass(eq=False)
class CollectionRuntime:
    collection: Collection
    state: CollectionLoadState
    # Replaced whole, never changed (reads take it without a lock).
    view: LoadedView = NOTHING_LOADED
    # Loads and releases of this collection one at a time (load_manager.py): each sees the
    # state the previous one left, never a release half done or a field list half set.
    transition: threading.Lock = field(default_factory=threading.Lock)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reconciling: threading.Lock = field(default_factory=threading.Lock)
    # The load jobs running (a partition load may start while another runs).
    jobs: tuple[LoadJobRun, ...] = ()
    # The last load asked for, when the last read was (monotonic), and whether a residency
    # policy released the collection (a read may then load it again). Plain attributes: one
    # writer at a time per field, readers tolerate a stale value for one tick.
    request: LoadRequest | None = None
    last_read: float = 0.0
    released_by_policy: bool = False
    # A pass is wanted / a task is queued or running (under ``lock``).
    dirty: bool = False
    queued: bool = False
    # Parsed JSON of growing batches (its own lock); pruned on reads.
    growing_json: GrowingJsonCache = field(default_factory=GrowingJsonCache)
    # Which of the collection's rows are served here (a cluster worker's placed segments);
    # replaced whole by a load (under ``transition``), read by passes and reads without a lock.
    scope: SegmentScope = EVERYTHING

    def snapshot(self) -> DataSnapshot:
        """The collection's snapshot, narrowed to what this process serves."""
        return self.scope.restrict(self.collection.snapshot())


class Loader:
    def __init__(
        self, accountant: MemoryAccountant, store: ObjectStore, *, share_pages: bool = False
    ) -> None:
        self.accountant = accountant
        self.store = store
        # ``serve --workers N``: every column file and faiss index is mapped, so the processes
        # serving the same segments share their pages (load_plan.mapped_fields).
        self.share_pages = share_pages
        self._pool = ThreadPoolExecutor(LOADER_THREADS, thread_name_prefix="sheafdb-loader")
        self._closed = threading.Event()
        # How many collections have a pass queued or running; _idle tells wait_idle.
        self._busy = 0
        self._idle = threading.Condition()

    def mapped(self, coll: Collection) -> frozenset[str]:
        return mapped_fields(coll.schema, coll.record.properties, everything=self.share_pages)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no pass is queued or running (tests, benchmarks); False at the timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def close(self) -> None:
        """Stop: running passes end at their next structure, queued ones do nothing."""
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- scheduling --------------------------------------------------------------------------
    def poke(self, runtime: CollectionRuntime) -> None:
        with runtime.lock:
            runtime.dirty = True
            if runtime.queued or self._closed.is_set():
                return
            runtime.queued = True
        with self._idle:
            self._busy += 1
        self._pool.submit(self._run, runtime)

    def _run(self, runtime: CollectionRuntime) -> None:
        while True:
            with runtime.lock:
                if not runtime.dirty or self._closed.is_set():
                    runtime.queued = False
                    break
                runtime.dirty = False
            try:
                self.reconcile(runtime)
            except Exception:  # noqa: BLE001 - a pool thread must survive any pass; the job
                # (if any) was failed inside with its reason, the rest is logged.
                log.exception("load reconcile of collection %s failed", runtime.collection.name)
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    # -- one pass ------------------------------------------------------------------------------
    def reconcile(self, runtime: CollectionRuntime) -> None:
        with runtime.reconciling:
            self._reconcile(runtime)

    def _reconcile(self, runtime: CollectionRuntime) -> None:
        coll, state = runtime.collection, runtime.state
        target = state.active_partitions()
        fields = state.fields
        if not target:
            return  # a release drops what is installed, under ``reconciling``
        mapped = self.mapped(coll)
        with runtime.lock:
            view = runtime.view
            if view.fields is None or not view.segments:
                runtime.view = LoadedView(fields, mapped=mapped)  # a fresh load
            runs = runtime.jobs
        snapshot = runtime.snapshot()
        if view.segments and (view.fields != fields or view.mapped != mapped):
            self._reshape(runtime, snapshot, fields, mapped)  # an online load change
        waiting: set[int] = set()  # partitions with a segment not installed
        for segment in snapshot.sealed:
            if segment.partition_id not in target or segment.segment_id in runtime.view.segments:
                continue
            run = next((r for r in runs if segment.partition_id in r.job.partition_ids), None)
            if not self._install(runtime, segment, fields, run):
                waiting.add(segment.partition_id)
        self._add_indexes(runtime, snapshot, fields)
        # Afresh: the installs above ended handoffs, freeing the segments they stood in for.
        self._retire(runtime, runtime.snapshot(), target)
        everything = coll.snapshot()
        coll.end_handoff(
            [
                sid
                for sid in everything.handoff
                if _partition(everything, sid) not in target or not runtime.scope.holds(sid)
            ]
        )
        for run in runs:
            # Loaded only when every segment of the job's partitions (planned or sealed since) is in.
            if not waiting & run.job.partition_ids and state.finish(run.job):
                self._end_job(runtime, run)

    def _install(
        self,
        runtime: CollectionRuntime,
        segment: SealedSegment,
        fields: tuple[str, ...],
        run: LoadJobRun | None,
    ) -> bool:
        """Load one segment and publish it; False when it must wait (over budget, cancelled)."""
        coll, state = runtime.collection, runtime.state
        mapped = self.mapped(coll)  # fixed while loaded (104)
        in_job = run is not None and segment.partition_id in run.job.partition_ids
        planned = in_job and run is not None and segment.segment_id in run.planned
        try:
            if planned:
                assert run is not None
                reservation = run.reservation
                owned = False
            else:
                items = [
                    item
                    for item in segment_plan(segment, fields, coll.schema.primary_field.name, mapped)
                    if item.kind != "mapped"
                ]
                reservation = self.accountant.reserve(
                    sum(i.nbytes for i in items),
                    f"the handoff of segment {segment.segment_id} of {coll.name}",
                )
                owned = True
        except MemoryLimitExceeded as exc:
            if in_job and run is not None:
                self._fail_job(runtime, run, exc.message)
            else:
                log.warning(
                    "handoff of segment %s of %s waits (served from memory meanwhile): %s",
                    segment.segment_id,
                    coll.name,
                    exc.message,
                )
            return False
        try:

            def cancelled() -> bool:
                return self._closed.is_set() or segment.partition_id not in state.active_partitions()

            def on_bytes(nbytes: int) -> None:
                if in_job and run is not None:
                    state.add_loaded(run.job, segment.partition_id, nbytes)

            try:
                loaded = load_segment(
                    self.store,
                    coll.schema,
                    segment,
                    fields,
                    mapped,
                    cancelled=cancelled,
                    on_bytes=on_bytes,
                    map_indexes=self.share_pages,
                )
            except LoadCancelled:
                return False
            except Exception as exc:  # noqa: BLE001 - a bad file must end the load with its reason
                if in_job and run is not None:
                    self._fail_job(runtime, run, f"load segment failed: {exc}")
                    return False
                raise
            with runtime.lock:
                # A release may have come while the files were read: then nothing is installed.
                if cancelled() or runtime.view.fields != fields:
                    return False
                runtime.view = runtime.view.with_segment(loaded)
                self._register(coll.collection_id, loaded, reservation)
        finally:
            if owned:
                reservation.close()
        coll.end_handoff([segment.segment_id])
        return True

    def _reshape(
        self,
        runtime: CollectionRuntime,
        snapshot: DataSnapshot,
        fields: tuple[str, ...],
        mapped: frozenset[str],
    ) -> None:
        """Every installed segment to the new field list (and mapping), published as one new
        view: reads keep the old view until then, so none fails in between."""
        coll = runtime.collection
        view = runtime.view
        current = {s.segment_id: s for s in snapshot.sealed}
        pairs = [(old, current.get(sid, old.source)) for sid, old in view.segments.items()]
        needed = sum(added_bytes(old, segment, fields, mapped) for old, segment in pairs)
        try:
            reservation = self.accountant.reserve(needed, f"the load change of collection {coll.name}")
        except MemoryLimitExceeded as exc:
            log.warning("load change of %s waits: %s", coll.name, exc.message)
            return
        with reservation:
            reshaped = [
                reshape_segment(self.store, coll.schema, old, seg, fields, mapped) for old, seg in pairs
            ]
            with runtime.lock:
                if runtime.view is not view:
                    return  # released or retired meanwhile: the next pass starts again
                for old in view.segments.values():
                    self._unregister(coll.collection_id, old)
                for new in reshaped:
                    self._register(coll.collection_id, new, reservation)
                runtime.view = LoadedView(
                    fields, MappingProxyType({s.segment_id: s for s in reshaped}), mapped
                )
        log.info("collection %s now holds %s", coll.name, list(fields))
        give_back_memory()  # the removed fields' columns, once the reads on the old view finish

    def _add_indexes(
        self, runtime: CollectionRuntime, snapshot: DataSnapshot, fields: tuple[str, ...]
    ) -> None:
        coll = runtime.collection
        for segment in snapshot.sealed:
            loaded = runtime.view.segments.get(segment.segment_id)
            if loaded is None:
                continue
            for name, index_file in segment.index_files.items():
                if name not in fields or loaded.index(name) is not None:
                    continue
                try:
                    reservation = self.accountant.reserve(
                        index_file.nbytes, f"the index of segment {segment.segment_id} of {coll.name}"
                    )
                except MemoryLimitExceeded as exc:
                    log.warning(
                        "index of segment %s not loaded (searched exactly): %s",
                        segment.segment_id,
                        exc.message,
                    )
                    continue
                with reservation:
                    index = open_index(
                        self.store,
                        coll.schema,
                        name,
                        index_file.path,
                        index_file.params,
                        mmap=self.share_pages,
                    )
                    with runtime.lock:
                        # Retired meanwhile: registering now would leak the whole footprint.
                        if runtime.view.segments.get(segment.segment_id) is not loaded:
                            continue
                        loaded.add_index(name, index)
                        self._register(coll.collection_id, loaded, reservation)
            for index_file in wanted_files(segment, fields):
                if index_file.index_name not in loaded.scalar.loaded:
                    self._add_scalar_index(runtime, loaded, index_file)

    def _add_scalar_index(
        self, runtime: CollectionRuntime, loaded: LoadedSegment, index_file: SegmentIndexFile
    ) -> None:
        """A scalar index built after the segment was installed: read, accounted, swapped in."""
        coll = runtime.collection
        try:
            reservation = self.accountant.reserve(
                index_file.nbytes, f"the index of segment {loaded.segment_id} of {coll.name}"
            )
        except MemoryLimitExceeded as exc:
            log.warning("index of segment %s not loaded (filters scan): %s", loaded.segment_id, exc.message)
            return
        with reservation:
            structure = load_scalar_index(self.store, index_file.path)
            with runtime.lock:
                if runtime.view.segments.get(loaded.segment_id) is not loaded:
                    return  # retired meanwhile
                loaded.add_scalar_indexes(coll.schema, [(index_file, structure)])
                self._register(coll.collection_id, loaded, reservation)

    def _retire(self, runtime: CollectionRuntime, snapshot: DataSnapshot, target: frozenset[int]) -> None:
        """Drop installed segments nothing needs: compacted away (once no handoff serves from
        them) or of partitions left out of the target."""
        live = {s.segment_id for s in snapshot.sealed}
        standing_in = {p.segment_id for h in snapshot.handoff.values() for p in h.predecessors}
        with runtime.lock:
            gone = {
                sid
                for sid, seg in runtime.view.segments.items()
                if seg.partition_id not in target or (sid not in live and sid not in standing_in)
            }
            if not gone:
                return
            dropped = [runtime.view.segments[sid] for sid in gone]
            runtime.view = runtime.view.without(gone)
            for seg in dropped:
                self._unregister(runtime.collection.collection_id, seg)
        del dropped  # their memory leaves once the reads holding an older view finish
        give_back_memory()

    # -- jobs ----------------------------------------------------------------------------------
    def _fail_job(self, runtime: CollectionRuntime, run: LoadJobRun, reason: str) -> None:
        log.warning("load of collection %s failed: %s", runtime.collection.name, reason)
        runtime.state.fail(run.job, reason)
        self._end_job(runtime, run)
        self.drop_inactive(runtime)
        give_back_memory()  # what the failed load had read is garbage now

    def _end_job(self, runtime: CollectionRuntime, run: LoadJobRun) -> None:
        with runtime.lock:
            runtime.jobs = tuple(r for r in runtime.jobs if r is not run)
        run.reservation.close()

    def drop_inactive(self, runtime: CollectionRuntime) -> int:
        """Retire every installed segment outside the target; the bytes unregistered.

        The caller holds ``reconciling`` (or is the pass itself)."""
        active = runtime.state.active_partitions()
        coll = runtime.collection
        with runtime.lock:
            for run in runtime.jobs:
                if run.job.cancelled:
                    run.reservation.close()
            runtime.jobs = tuple(r for r in runtime.jobs if not r.job.cancelled)
            if not active:
                runtime.view = NOTHING_LOADED
            else:
                runtime.view = runtime.view.without(
                    {sid for sid, seg in runtime.view.segments.items() if seg.partition_id not in active}
                )
            freed = self.accountant.unregister_except(coll.collection_id, keep=active)
        if not active:
            coll.hand_off(False)
            runtime.growing_json.clear()
        else:  # a partition release: its segments' rows need not stay served from memory
            snapshot = coll.snapshot()
            coll.end_handoff([sid for sid in snapshot.handoff if _partition(snapshot, sid) not in active])
        return freed

    def _register(self, collection_id: int, loaded: LoadedSegment, reservation: Reservation | None) -> None:
        for (kind, name), nbytes in loaded.footprint.items():
            key = MemoryKey(collection_id, loaded.partition_id, loaded.segment_id, kind, name)
            self.accountant.register(key, nbytes, reservation)

    def _unregister(self, collection_id: int, loaded: LoadedSegment) -> None:
        for kind, name in loaded.footprint:
            self.accountant.unregister(
                MemoryKey(collection_id, loaded.partition_id, loaded.segment_id, kind, name)
            )


def _partition(snapshot: DataSnapshot, segment_id: int) -> int | None:
    for segment in snapshot.sealed:
        if segment.segment_id == segment_id:
            return segment.partition_id
    return None
