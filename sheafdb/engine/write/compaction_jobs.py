"""Manual compactions as Milvus reports them: a job id now, the real compaction in the background.

``start`` answers at once with a job (Milvus's ``compactionID``) and runs the engine's manual
compaction (``Compactor``, which merges every partition's small segments and drops deleted
rows) on a thread of its own; its state goes Executing -> Completed. Each partition whose
segments were merged becomes one plan (Milvus's ``CompactionMergeInfo``: source segment ids ->
target segment ids), found by comparing the sealed segments before and after. A job that failed
is Completed with its plans failed, as Milvus counts it. The last ``KEPT_JOBS`` jobs are kept;
an unknown id reads as Completed with no plans, as in Milvus (a trigger with no tasks).

Lock: ``_lock`` guards the jobs map; the compaction itself runs outside it.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from sheafdb.engine.collection import Collection
from sheafdb.errors import SheafError

log = logging.getLogger(__name__)

KEPT_JOBS = 256


class CompactionState(enum.IntEnum):
    """``common.CompactionState`` numbers."""

    UNDEFINED = 0
    EXECUTING = 1
    COMPLETED = 2


@dataclass(frozen=True)
class MergePlan:
    plan_id: int
    partition_id: int
    sources: tuple[int, ...]
    targets: tuple[int, ...]


@dataclass(frozen=True)
class CompactionJob:
    job_id: int
    collection_id: int
    state: CompactionState
    # Partitions with segments to merge when the job started (Milvus's compactionPlanCount).
    planned: int
    plans: tuple[MergePlan, ...] = ()
    failure: str = ""


def _segments_by_partition(coll: Collection) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for seg in coll.snapshot().sealed:
        out.setdefault(seg.partition_id, set()).add(seg.segment_id)
    return out


class CompactionJobs:
    def __init__(self, allocate_id: Callable[[], int], compact: Callable[[Collection], int]) -> None:
        self._allocate_id = allocate_id
        self._compact = compact
        self._lock = threading.Lock()
        self._jobs: dict[int, CompactionJob] = {}

    def start(self, coll: Collection) -> CompactionJob:
        before = _segments_by_partition(coll)
        job = CompactionJob(
            self._allocate_id(),
            coll.collection_id,
            CompactionState.EXECUTING,
            planned=sum(1 for ids in before.values() if len(ids) > 1),
        )
        with self._lock:
            self._jobs[job.job_id] = job
            while len(self._jobs) > KEPT_JOBS:
                del self._jobs[next(iter(self._jobs))]
        threading.Thread(
            target=self._run, args=(coll, job, before), name=f"manual-compaction-{job.job_id}", daemon=True
        ).start()
        return job

    def _run(self, coll: Collection, job: CompactionJob, before: dict[int, set[int]]) -> None:
        failure = ""
        try:
            self._compact(coll)
        except SheafError as exc:
            failure = exc.message
            log.warning("manual compaction %d of %s failed: %s", job.job_id, coll.name, failure)
        after = _segments_by_partition(coll)
        plans = []
        for partition_id, old in sorted(before.items()):
            new = after.get(partition_id, set())
            gone, added = old - new, new - old
            if gone:
                plans.append(
                    MergePlan(self._allocate_id(), partition_id, tuple(sorted(gone)), tuple(sorted(added)))
                )
        with self._lock:
            self._jobs[job.job_id] = replace(
                job, state=CompactionState.COMPLETED, plans=tuple(plans), failure=failure
            )

    def get(self, job_id: int) -> CompactionJob:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None else CompactionJob(job_id, 0, CompactionState.COMPLETED, planned=0)

    def of_collection(self, collection_id: int) -> list[CompactionJob]:
        with self._lock:
            return [j for j in self._jobs.values() if j.collection_id == collection_id]
