"""``/v2/vectordb/jobs/import/create | describe (get_progress) | list``: bulk import jobs, in
the shapes Milvus 2.6's REST handlers give them (pymilvus's ``bulk_import``,
``get_import_progress`` and ``list_import_jobs`` call these)."""

from __future__ import annotations

import time
from typing import Any

from sheafdb.api.rest.envelope import Call, Endpoint
from sheafdb.engine.imports.jobs import ImportJobState, ImportJobView
from sheafdb.errors import ImportFailed, invalid


def _time_text(seconds: float | None) -> str:
    return "" if seconds is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _file_groups(call: Call) -> list[list[str]]:
    files = call.required("files")
    if not isinstance(files, list) or not all(
        isinstance(group, list) and all(isinstance(p, str) for p in group) for group in files
    ):
        raise invalid("files must be a list of lists of file paths")
    return files


def create(call: Call) -> dict[str, Any]:
    options = call.get("options", {})
    if not isinstance(options, dict):
        raise invalid("options must be an object of strings")
    job_id = call.engine.imports.submit(
        call.db,
        call.text("collectionName"),
        str(call.get("partitionName", "")),
        _file_groups(call),
        {str(k): str(v) for k, v in options.items()},
    )
    return {"jobId": str(job_id)}


def _file_state(job: ImportJobView, done: bool) -> str:
    if job.state is ImportJobState.Failed:
        return "Failed"
    if job.state is ImportJobState.Completed:
        return "Completed"
    return "InProgress" if done else "Pending"


def describe(call: Call) -> dict[str, Any]:
    text = str(call.required("jobId"))
    try:
        job_id = int(text)
    except ValueError:
        raise ImportFailed(
            f'parse job id failed, err=strconv.ParseInt: parsing "{text}": invalid syntax'
        ) from None
    job = call.engine.imports.get(job_id)
    finished = job.state in (ImportJobState.Completed, ImportJobState.Failed)
    details = []
    for f in job.files:
        detail: dict[str, Any] = {
            "fileName": ",".join(f.paths),
            "fileSize": f.size,
            "progress": 100 if job.state is ImportJobState.Completed else (50 if f.done else 0),
            "completeTime": _time_text(job.complete_time) if finished else "",
            "state": _file_state(job, f.done),
            "importedRows": f.rows if job.state is ImportJobState.Completed else 0,
            "totalRows": f.rows,
        }
        if job.reason:
            detail["reason"] = job.reason
        details.append(detail)
    reply: dict[str, Any] = {
        "jobId": str(job.job_id),
        "collectionName": job.collection_name,
        "completeTime": _time_text(job.complete_time),
        "state": job.state.name,
        "progress": job.progress,
        "importedRows": job.imported_rows,
        "totalRows": job.total_rows,
        "fileSize": sum(f.size for f in job.files),
        "details": details,
    }
    if job.reason:
        reply["reason"] = job.reason
    return reply


def list_jobs(call: Call) -> dict[str, Any]:
    records = []
    for job in call.engine.imports.list(call.db, str(call.get("collectionName", ""))):
        record: dict[str, Any] = {
            "jobId": str(job.job_id),
            "collectionName": job.collection_name,
            "state": job.state.name,
            "progress": job.progress,
        }
        if job.reason:
            record["reason"] = job.reason
        records.append(record)
    return {"records": records}


ENDPOINTS = (
    Endpoint("jobs/import/create", create, "Import"),
    Endpoint("jobs/import/describe", describe, "Import", object_key=""),
    Endpoint("jobs/import/get_progress", describe, "Import", object_key=""),
    Endpoint("jobs/import/list", list_jobs, "Import"),
)
