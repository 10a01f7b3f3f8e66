"""A cluster query worker's data: the follower's, narrowed to the segments placed on it.

The worker follows the catalog and the log like any follower (follower.py: Strong reads by
catching up with the log before each read). What it loads of a collection is the writer's
load (its persisted fields) narrowed by the placement (CLUSTER.md, Contract B):

- the sealed segments assigned to this worker in the one replica of the collection it
  belongs to (a worker serves at most one replica of a collection);
- when it leads that replica, also the growing rows and the sealed segments the coordinator
  has not assigned to any worker of the replica yet (a seal just made): Milvus's shard
  leader. Deletes apply everywhere: every worker follows the whole log.

``apply_placement`` takes the placement again when its version moved (the runtime polls it)
and reloads what changed: new segments are installed, moved-away ones retired, in the
loader's passes. ``unacked`` lists the assigned segments installed but not yet acked.

A ``ReadCall`` is answered over this worker's segments of the named replica, or refused with
``ReplicaNotAvailable`` when this worker does not hold that replica, has not installed all of
its segments of it (after a short wait), or serves it as a placement version other than the
caller's says: it has not applied the caller's version yet (after a short catch-up), or what
it serves of the collection changed after the caller's version. So every worker of a replica
answers from one placement: no row twice, none missed. The proxy then tries another replica
(or reads the placement again).

Locks: the follower's (``_refresh_lock`` then ``_gate`` exclusive while a placement is
applied, as when the catalog is taken); ``_placement_lock`` makes one thread read the
placement rows at a time. ``_placed``, ``_changed_at`` and ``_applied_version`` are replaced
whole.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace

from sheafdb.engine.collection import Collection
from sheafdb.engine.distribution.read_calls import ReadAnswer, ReadCall
from sheafdb.engine.follower import Follower, FollowerConfig
from sheafdb.engine.load.target import LoadRequest, SegmentScope
from sheafdb.engine.models import HybridSearchRequest, LoadState, QueryRequest, SearchRequest
from sheafdb.errors import CollectionNotLoaded, ReplicaNotAvailable, SheafError, UnexpectedError
from sheafdb.index.metrics import higher_is_better
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.records import CollectionRecord

log = logging.getLogger(__name__)

# A call naming a placement version this worker has not applied waits this long for it.
PLACEMENT_CATCH_UP_S = 1.0
_CATCH_UP_POLL_S = 0.02
# A read waits this long for this worker's own (re)load before answering "not available".
WORKER_LOAD_WAIT_S = 0.5
# A read call waits this long for this worker's part of the replica to be installed (a seal
# reopens a followed collection; a segment moved here is being installed).
READ_LOAD_WAIT_S = 2.0


@dataclass(frozen=True)
class Placed:
    """This worker's part of one collection's placement."""

    replica_id: int
    leader: bool
    # Segment id -> acked, for the segments assigned to this worker.
    assigned: dict[int, bool]
    # Every segment assigned to any worker of the replica (the leader serves the others).
    replica_segments: frozenset[int]

    @property
    def served(self) -> tuple[int, bool, frozenset[int], frozenset[int]]:
        """What decides the rows served here (the acks do not)."""
        return self.replica_id, self.leader, frozenset(self.assigned), self.replica_segments


def placement_of(catalog: Catalog, worker_id: int) -> dict[int, Placed]:
    """Collection id -> this worker's part of its placement (collections without it: absent)."""
    mine = {r.collection_id: r for r in catalog.list_replicas() if worker_id in r.worker_ids}
    placed: dict[int, Placed] = {}
    for cid, replica in mine.items():
        rows = [a for a in catalog.list_assignments(collection_id=cid) if a.replica_id == replica.replica_id]
        placed[cid] = Placed(
            replica.replica_id,
            replica.leader_id == worker_id,
            {a.segment_id: a.loaded for a in rows if a.worker_id == worker_id},
            frozenset(a.segment_id for a in rows),
        )
    return placed


class WorkerView(Follower):
    # A worker answers "not available" rather than keep a proxy waiting for its load.
    load_wait_s = WORKER_LOAD_WAIT_S

    def __init__(
        self, config: FollowerConfig, placement: Catalog, worker_id: int, *, budget_bytes: int | None = None
    ) -> None:
        # Set before the follower's first catalog take, which asks _load_request and loads.
        self.budget_bytes = budget_bytes
        self._placement = placement
        self.worker_id = worker_id
        self._placement_lock = threading.Lock()
        self._applied_version, self._placed = self._read_placement()
        # Collection id -> the placement version at which what this worker serves of it last
        # changed: a caller that chose the workers from an older version is refused.
        self._changed_at = dict.fromkeys(self._placed, self._applied_version)
        super().__init__(config)

    def _read_placement(self) -> tuple[int, dict[int, Placed]]:
        """This worker's placement and the version it is exactly (read again when a change
        committed between the rows and the version: every change bumps the version)."""
        while True:
            version = self._placement.placement_version()
            placed = placement_of(self._placement, self.worker_id)
            if self._placement.placement_version() == version:
                return version, placed

    # -- what to load ------------------------------------------------------------------------
    def _scope(self, collection_id: int) -> SegmentScope | None:
        placed = self._placed.get(collection_id)
        if placed is None:
            return None
        segments = set(placed.assigned)
        if placed.leader:
            sealed = {s.segment_id for s in self._catalog.list_segments(collection_id)}
            segments |= sealed - placed.replica_segments
        return SegmentScope(frozenset(segments), growing=placed.leader)

    def _load_request(self, record: CollectionRecord) -> LoadRequest | None:
        request = super()._load_request(record)
        scope = self._scope(record.collection_id)
        if request is None or scope is None:
            return None
        return replace(request, scope=scope)

    @property
    def applied_version(self) -> int:
        return self._applied_version

    def apply_placement(self) -> bool:
        """Take the placement again if its version moved; True when it did."""
        with self._placement_lock:
            if self._placement.placement_version() == self._applied_version:
                return False
            version, placed = self._read_placement()
            with self._refresh_lock, self._gate.exclusive():
                old = self._placed
                self._changed_at = {
                    cid: self._changed_at.get(cid, version)
                    if cid in old and old[cid].served == now.served
                    else version
                    for cid, now in placed.items()
                }
                self._placed = placed
                for followed in self._followed.values():
                    request = self._load_request(followed.fingerprint.record)
                    if request == followed.request:
                        continue
                    followed.request = request
                    self._reload(followed.collection, request)
                self._applied_version = version
            return True

    def _reload(self, coll: Collection, request: LoadRequest | None) -> None:
        try:
            if request is None:
                self._loads.release(coll)
            else:
                self._loads.load(coll, request, wait_s=0)
        except Exception:  # noqa: BLE001 - reads then answer "not available"; the next change retries
            log.exception("worker %s could not follow the placement of %s", self.worker_id, coll.name)

    def unacked(self) -> list[tuple[int, int, int]]:
        """(collection id, replica id, segment id) installed here but not acked yet."""
        self._sync_catalog()
        out: list[tuple[int, int, int]] = []
        with self._gate.shared():
            for cid, placed in self._placed.items():
                followed = self._followed.get(cid)
                if followed is None or followed.request is None:
                    continue
                installed, _missing = self._loads.scope_coverage(followed.collection)
                out.extend(
                    (cid, placed.replica_id, sid)
                    for sid, acked in placed.assigned.items()
                    if not acked and sid in installed
                )
        return out

    def used_bytes(self) -> int:
        return self._loads.accountant.used_bytes

    # -- reads -------------------------------------------------------------------------------
    def read(self, call: ReadCall) -> ReadAnswer:
        """Answer a proxy's call; every refusal is an answer, never an exception."""
        try:
            self._catch_up_placement(call.placement_version)
            request = call.request
            checked: list[Collection] = []

            def check() -> None:  # the replica check, in each attempt of the follower's read
                checked[:] = [self.check_replica(call, request.collection)]

            try:
                if call.method == "search" and isinstance(request, SearchRequest):
                    result = self.search(call.db, request, check=check)
                    return ReadAnswer(result, larger_is_better=self._larger_is_better(checked[0], request))
                if call.method == "hybrid_search" and isinstance(request, HybridSearchRequest):
                    return ReadAnswer(self.hybrid_search(call.db, request, check=check))
                if call.method == "query" and isinstance(request, QueryRequest):
                    return ReadAnswer(self.query(call.db, request, check=check))
            except CollectionNotLoaded as exc:
                # Placed here and checked, then reopened under the read (a seal, a DDL): this
                # worker is reloading, another replica may answer.
                raise ReplicaNotAvailable(f"replica not available: {exc.message}") from None
            raise UnexpectedError(f"unknown read call {call.method!r}")
        except SheafError as exc:
            return ReadAnswer(None, exc.code, exc.message)

    def _catch_up_placement(self, wanted: int) -> None:
        deadline = time.monotonic() + PLACEMENT_CATCH_UP_S
        while self._applied_version < wanted:
            self.apply_placement()
            if self._applied_version >= wanted:
                return
            if time.monotonic() >= deadline:
                raise ReplicaNotAvailable(
                    f"replica not available: worker {self.worker_id} has placement version "
                    f"{self._applied_version}, the call {wanted}"
                )
            time.sleep(_CATCH_UP_POLL_S)

    def check_replica(self, call: ReadCall, name: str) -> Collection:
        """The collection, if this worker serves all of its part of ``call.replica_id`` as the
        placement of ``call.placement_version`` has it; a (re)load in progress (a seal reopens
        the collection, a moved segment is installed) is waited for a moment, following the
        catalog. The first look is on the catalog as last taken: the read it runs in
        (``Follower._reading``) then checks in the same round trip as the log tail that it
        was current, and starts over if not."""
        unavailable = f"replica not available[replica={call.replica_id}][worker={self.worker_id}]"
        deadline = time.monotonic() + READ_LOAD_WAIT_S
        first = True
        while True:
            if not first:  # the read checks the catalog it first ran on (follower._reading)
                self._sync_catalog()
            first = False
            coll = self._names.resolve_checked(call.db, name)
            placed = self._placed.get(coll.collection_id)
            if placed is None or placed.replica_id != call.replica_id:
                raise ReplicaNotAvailable(f"{unavailable}: not held here")
            changed_at = self._changed_at.get(coll.collection_id, 0)
            if call.placement_version < changed_at:
                # Served as a newer placement says: with the caller's older one, rows could be
                # answered twice or not at all across the replica's workers.
                raise ReplicaNotAvailable(
                    f"{unavailable}: placement changed at version {changed_at}, "
                    f"the call has {call.placement_version}"
                )
            left = deadline - time.monotonic()
            state = self._loads.wait(coll, (), max(left, 0))
            _installed, missing = self._loads.scope_coverage(coll)
            if state is LoadState.LOADED and not missing:
                return coll
            if left <= 0:
                reason = (
                    "still loading"
                    if state is not LoadState.LOADED
                    else f"{len(missing)} segments not loaded yet"
                )
                raise ReplicaNotAvailable(f"{unavailable}: {reason}")
            time.sleep(_CATCH_UP_POLL_S)

    @staticmethod
    def _larger_is_better(coll: Collection, request: SearchRequest) -> bool:
        metric = request.metric_type
        if not metric:
            vectors = [f.name for f in coll.schema.vector_fields]
            field = request.anns_field or (vectors[0] if len(vectors) == 1 else "")
            record = next((ix for ix in coll.indexes if ix.field_name == field), None)
            metric = "" if record is None else record.params.get("metric_type", "")
        return higher_is_better(metric) if metric else True
