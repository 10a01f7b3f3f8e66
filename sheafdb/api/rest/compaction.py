"""``/v2/vectordb/collections/compact`` and ``collections/get_compaction_state`` (Milvus's routes)."""

from __future__ import annotations

from typing import Any

from sheafdb.api.rest.envelope import Call, Endpoint
from sheafdb.engine.write.compaction_jobs import CompactionState

_STATE_NAMES = {
    CompactionState.UNDEFINED: "UndefiedState",  # sic: Milvus's enum name
    CompactionState.EXECUTING: "Executing",
    CompactionState.COMPLETED: "Completed",
}


def compact(call: Call) -> dict[str, Any]:
    job = call.engine.maintenance.start_compaction(call.db, call.text("collectionName"))
    return {"compactionID": job.job_id}


def get_compaction_state(call: Call) -> dict[str, Any]:
    job_id = int(call.get("jobID", 0))
    job = call.engine.maintenance.compaction(job_id)
    executing = job.state is CompactionState.EXECUTING
    failed = len(job.plans) if job.failure else 0
    return {
        "compactionID": job_id,
        "state": _STATE_NAMES[job.state],
        "executingPlanNumber": max(job.planned, 1) if executing else 0,
        "timeoutPlanNumber": 0,
        "completedPlanNumber": 0 if executing else len(job.plans) - failed,
    }


ENDPOINTS = (
    Endpoint("collections/compact", compact, "ManualCompaction"),
    Endpoint("collections/get_compaction_state", get_compaction_state, "GetCompactionState"),
)
