"""The load state machine of one collection and its partitions: the load *target*.

Each partition is NotLoad, Loading, Loaded or Releasing; the collection's state derives from
them (Milvus: "loaded if any or all of its partitions are loaded", Loading while any is still
loading). Partitions Loading or Loaded are the target: what the loader must hold. A load is a
job over some partitions; a release moves them to Releasing at once (cancelling the jobs that
touch them: the loader sees the cancel event between structures), so a read racing it gets
"not loaded", never half-freed data; once the loader has dropped their segments they are
NotLoad. Releasing is internal: the wire (``common.LoadState``) shows it as NotLoad.

``wait(timeout)`` blocks until the given partitions are no longer Loading: gRPC's short wait
after a load and REST's wait for a load both use it. This module is pure bookkeeping: no I/O.
The load manager drives it.
"""

from __future__ import annotations

import enum
import itertools
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sheafdb.engine.models import LoadState
from sheafdb.errors import CollectionNotLoaded, ParameterInvalid, PartitionNotLoaded

_job_ids = itertools.count(1)


@dataclass(frozen=True)
class LoadJob:
    """One background load over some partitions; ``cancel`` is set by a release."""

    job_id: int
    partition_ids: frozenset[int]
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()


class Phase(enum.Enum):
    """A partition's step; the wire knows all but RELEASING (shown as NotLoad)."""

    NOT_LOAD = "NotLoad"
    LOADING = "Loading"
    LOADED = "Loaded"
    RELEASING = "Releasing"

    @property
    def wire(self) -> LoadState:
        return _WIRE[self]


_WIRE = {
    Phase.NOT_LOAD: LoadState.NOT_LOAD,
    Phase.LOADING: LoadState.LOADING,
    Phase.LOADED: LoadState.LOADED,
    Phase.RELEASING: LoadState.NOT_LOAD,
}


@dataclass
class _PartitionLoad:
    state: Phase
    job: LoadJob | None = None
    planned_bytes: int = 0
    loaded_bytes: int = 0

    @property
    def progress(self) -> int:
        if self.state is Phase.LOADED:
            return 100
        if self.state is not Phase.LOADING:
            return 0
        if self.planned_bytes == 0:
            return 0  # nothing to read, but not finished either: 100 only when the job says so
        # Capped at 99: 100 means "searchable", which only finish() grants.
        return min(99, self.loaded_bytes * 100 // self.planned_bytes)


class CollectionLoadState:
    """State of one collection. Thread-safe: ``_lock`` (a condition: waiters of ``wait`` are
    told of every transition) guards every attribute below it. The load manager serializes
    the loads and releases that drive it, so a load never meets a partition Releasing."""

    def __init__(self, collection_id: int) -> None:
        self.collection_id = collection_id
        self._lock = threading.Condition(threading.Lock())
        self._partitions: dict[int, _PartitionLoad] = {}
        # The field list while anything is loaded or loading; None when nothing is.
        self._fields: tuple[str, ...] | None = None
        self._skip_dynamic = False
        # "collection": new partitions load automatically; "partition": only the listed ones.
        self._load_type = "collection"
        self._failure = ""
        self._refreshed = True

    # -- reads -----------------------------------------------------------------------------
    @property
    def fields(self) -> tuple[str, ...]:
        with self._lock:
            return self._fields or ()

    @property
    def load_type(self) -> str:
        with self._lock:
            return self._load_type

    @property
    def failure(self) -> str:
        with self._lock:
            return self._failure

    @property
    def refresh_progress(self) -> int:
        with self._lock:
            return 100 if self._refreshed else 0

    def state(self, partition_ids: Iterable[int] = ()) -> LoadState:
        with self._lock:
            return self._wire_state(list(partition_ids))

    def _wire_state(self, wanted: list[int]) -> LoadState:
        states = (
            [self._partition(p).state.wire for p in wanted]
            if wanted
            else [p.state.wire for p in self._partitions.values()]
        )
        if wanted and any(s is LoadState.NOT_LOAD for s in states):
            return LoadState.NOT_LOAD
        if any(s is LoadState.LOADING for s in states):
            return LoadState.LOADING
        if any(s is LoadState.LOADED for s in states):
            return LoadState.LOADED
        return LoadState.NOT_LOAD

    def wait(self, partition_ids: Iterable[int] = (), timeout: float | None = None) -> LoadState:
        """The state once the partitions (default: all) are no longer Loading, or at the timeout."""
        wanted = list(partition_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while (state := self._wire_state(wanted)) is LoadState.LOADING:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._lock.wait(left)
            return state

    def progress(self, partition_ids: Iterable[int] = ()) -> int:
        """0..100 over the given partitions (default: every partition loaded or loading)."""
        with self._lock:
            wanted = list(partition_ids)
            parts = (
                [self._partition(p) for p in wanted]
                if wanted
                else [p for p in self._partitions.values() if p.state.wire is not LoadState.NOT_LOAD]
            )
            if not parts or any(p.state.wire is LoadState.NOT_LOAD for p in parts):
                return 0
            planned = sum(p.planned_bytes for p in parts)
            if all(p.state is Phase.LOADED for p in parts):
                return 100
            loaded = sum(p.loaded_bytes if p.state is Phase.LOADING else p.planned_bytes for p in parts)
            return 0 if planned == 0 else min(99, loaded * 100 // planned)

    def loaded_partitions(self) -> frozenset[int]:
        with self._lock:
            return frozenset(pid for pid, p in self._partitions.items() if p.state is Phase.LOADED)

    def active_partitions(self) -> frozenset[int]:
        """Partitions loaded or loading: the target, whose data the loader must hold."""
        with self._lock:
            return frozenset(
                pid for pid, p in self._partitions.items() if p.state in (Phase.LOADING, Phase.LOADED)
            )

    def require_searchable(self, operation: str, partition_ids: Iterable[int] = ()) -> frozenset[int]:
        """The partitions a read may use; 101 when nothing is loaded, 201 when a named one is not."""
        with self._lock:
            loaded = frozenset(pid for pid, p in self._partitions.items() if p.state is Phase.LOADED)
            if not loaded:
                raise CollectionNotLoaded(
                    f"failed to {operation}: collection not loaded[collection={self.collection_id}]"
                )
            wanted = frozenset(partition_ids)
            missing = sorted(wanted - loaded)
            if missing:
                raise PartitionNotLoaded(
                    f"failed to {operation}: partition not loaded[partition={missing[0]}]"
                )
            return wanted or loaded

    def _partition(self, partition_id: int) -> _PartitionLoad:
        return self._partitions.setdefault(partition_id, _PartitionLoad(Phase.NOT_LOAD))

    # -- transitions -----------------------------------------------------------------------
    def check_fields(self, fields: tuple[str, ...], skip_dynamic: bool) -> None:
        """A load may not change the field list of something loaded or loading."""
        with self._lock:
            if self._fields is not None and (
                sorted(self._fields) != sorted(fields) or self._skip_dynamic != skip_dynamic
            ):
                # Milvus's query coordinator: a parameter error (1100), never an internal one.
                raise ParameterInvalid(
                    "call query coordinator LoadCollection: can't change the load field list for loaded "
                    f"collection: invalid parameter[expected={list(self._fields)}][actual={list(fields)}]"
                )

    def change_fields(self, fields: tuple[str, ...], skip_dynamic: bool) -> None:
        """An online load change: the loaded partitions stay Loaded with the new field list as
        their target (reads use the loader's view, which follows once the fields are in)."""
        with self._lock:
            self._fields = fields
            self._skip_dynamic = skip_dynamic
            self._lock.notify_all()

    def missing(self, partition_ids: Iterable[int]) -> frozenset[int]:
        """Of these partitions, the ones neither loaded nor loading."""
        with self._lock:
            return frozenset(p for p in partition_ids if self._partition(p).state is Phase.NOT_LOAD)

    def start(
        self,
        partition_ids: frozenset[int],
        fields: tuple[str, ...],
        skip_dynamic: bool,
        load_type: str,
        planned_bytes: dict[int, int],
    ) -> LoadJob:
        """NotLoad -> Loading for these partitions (the caller passes only missing ones)."""
        self.check_fields(fields, skip_dynamic)
        job = LoadJob(next(_job_ids), partition_ids)
        with self._lock:
            self._fields = fields
            self._skip_dynamic = skip_dynamic
            if load_type == "collection" or not any(
                p.state in (Phase.LOADING, Phase.LOADED) for p in self._partitions.values()
            ):
                self._load_type = load_type
            self._failure = ""
            for pid in partition_ids:
                self._partitions[pid] = _PartitionLoad(
                    Phase.LOADING, job=job, planned_bytes=planned_bytes.get(pid, 0)
                )
            self._lock.notify_all()
        return job

    def add_loaded(self, job: LoadJob, partition_id: int, nbytes: int) -> None:
        with self._lock:
            part = self._partitions.get(partition_id)
            if part is not None and part.job is job:
                part.loaded_bytes += nbytes

    def finish(self, job: LoadJob) -> bool:
        """Loading -> Loaded; False when a release cancelled the job first."""
        with self._lock:
            if job.cancelled:
                return False
            for pid in job.partition_ids:
                part = self._partitions.get(pid)
                if part is not None and part.job is job:
                    part.state = Phase.LOADED
                    part.job = None
            self._lock.notify_all()
            return True

    def fail(self, job: LoadJob, reason: str) -> None:
        """Loading -> NotLoad, keeping the reason for the next progress call."""
        with self._lock:
            for pid in job.partition_ids:
                part = self._partitions.get(pid)
                if part is not None and part.job is job:
                    self._partitions[pid] = _PartitionLoad(Phase.NOT_LOAD)
            self._failure = reason
            self._forget_fields_if_idle()
            self._lock.notify_all()

    def mark_refreshing(self) -> None:
        with self._lock:
            self._refreshed = False

    def mark_refreshed(self) -> None:
        with self._lock:
            self._refreshed = True

    def release(self, partition_ids: Iterable[int] | None = None) -> list[LoadJob]:
        """-> Releasing (``released`` ends it); returns the jobs it cancelled."""
        with self._lock:
            targets = list(self._partitions) if partition_ids is None else list(partition_ids)
            cancelled: list[LoadJob] = []
            for pid in targets:
                part = self._partitions.get(pid)
                if part is None:
                    continue
                if part.job is not None and part.job not in cancelled:
                    part.job.cancel.set()
                    cancelled.append(part.job)
                if part.state is not Phase.NOT_LOAD:
                    self._partitions[pid] = _PartitionLoad(Phase.RELEASING)
            # A job cancelled for some partitions gives up on all of them: its other
            # partitions are released too, never stuck at Loading.
            for pid, part in self._partitions.items():
                if part.job is not None and part.job.cancelled:
                    self._partitions[pid] = _PartitionLoad(Phase.RELEASING)
            self._lock.notify_all()
            return cancelled

    def released(self) -> None:
        """Releasing -> NotLoad: the loader holds nothing of these partitions any more."""
        with self._lock:
            for pid, part in self._partitions.items():
                if part.state is Phase.RELEASING:
                    self._partitions[pid] = _PartitionLoad(Phase.NOT_LOAD)
            self._forget_fields_if_idle()
            self._lock.notify_all()

    def adopt_partitions(self, partition_ids: Iterable[int]) -> None:
        """Partitions created while the whole collection is loaded are loaded too (Milvus)."""
        with self._lock:
            if self._load_type != "collection" or self._fields is None:
                return
            added = False
            for pid in partition_ids:
                if pid not in self._partitions:
                    self._partitions[pid] = _PartitionLoad(Phase.LOADED)
                    added = True
            if added:  # every read gets here: waiters are woken only by a change
                self._lock.notify_all()

    def forget_partition(self, partition_id: int) -> None:
        with self._lock:
            self._partitions.pop(partition_id, None)
            self._forget_fields_if_idle()
            self._lock.notify_all()

    def _forget_fields_if_idle(self) -> None:
        if all(p.state is Phase.NOT_LOAD for p in self._partitions.values()):
            self._fields = None
            self._skip_dynamic = False
            self._load_type = "collection"
            self._refreshed = True
