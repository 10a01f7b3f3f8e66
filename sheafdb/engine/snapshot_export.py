"""Exporting a snapshot out of the server: an asynchronous job that copies its files and a manifest.

As Milvus's ``ExportSnapshot``: the call checks the snapshot and the target
(``target_s3_path``, confined by storage/export_target.py) and returns a job id and the URI the
manifest will have; ``GetExportSnapshotState`` tells the state, the files and bytes copied so
far, and why a job failed. The job copies every file of the snapshot (segment columns, index
files, the captured deletes) to the target under the names the manifest gives them, checks
each copy's size, and writes ``manifest.json`` last: the schema, properties, partitions,
indexes, every segment with its files, the snapshot's timestamp, and the list of files with
their sizes. A target without a manifest is not an export (a failed job leaves no manifest).

Jobs are catalog rows (snapshot_rows.py). A restart runs again the jobs it cut short (copies
overwrite what a previous run wrote), unless their snapshot is gone or their target cannot be
written by this deployment any more, which fails them with that reason. Copied-file counts
live in memory. One worker thread runs the jobs in order. Lock: ``_lock`` guards the job table
and the counts. While a job runs its snapshot cannot be dropped (``hold``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path
from typing import Any

from sheafdb.engine.snapshots import snapshot_directory, snapshot_not_found
from sheafdb.errors import SheafError, invalid
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.export_target import ExportTarget, ExportTargetError, open_export_target
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.snapshot_rows import ExportJobRecord, SnapshotRecord

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "sheafdb-snapshot-export/1"


class ExportState(IntEnum):
    """``milvus.ExportSnapshotState``."""

    NONE = 0
    PENDING = 1
    EXECUTING = 2
    COMPLETED = 3
    FAILED = 4


@dataclass(frozen=True)
class ExportJob:
    job_id: int
    snapshot_name: str
    db_name: str
    collection_name: str
    state: ExportState
    progress: int
    reason: str
    start_ms: int
    time_cost_ms: int
    total_files: int
    copied_files: int
    manifest_uri: str
    total_bytes: int


@dataclass(frozen=True)
class _File:
    source: str  # the snapshot's object path
    relative: str  # its name under the target
    nbytes: int


def _relative(snapshot: SnapshotRecord, path: str) -> str:
    return path.removeprefix(f"{snapshot_directory(snapshot.snapshot_id)}/")


def _files(snapshot: SnapshotRecord, store: ObjectStore) -> list[_File]:
    """Every file of the snapshot with its size in the store (what the copy must match)."""
    manifest = snapshot.manifest
    paths: list[str] = []
    for entry in manifest["segments"]:
        paths.extend(path for path, _ in entry["columns"].values())
        paths.extend(path for _, path, _ in entry["index_files"].values())
    if manifest["deletes"] is not None:
        paths.append(manifest["deletes"]["path"])
    return [_File(path, _relative(snapshot, path), store.size(path)) for path in paths]


def export_manifest(snapshot: SnapshotRecord, files: list[_File]) -> dict[str, Any]:
    """What ``manifest.json`` says: enough to know the collection and find every file."""
    manifest = snapshot.manifest
    return {
        "format": MANIFEST_FORMAT,
        "snapshot_name": snapshot.name,
        "description": snapshot.description,
        "db_name": snapshot.db_name,
        "collection_name": snapshot.collection_name,
        "create_ts": snapshot.created_ts,
        "create_time_ms": snapshot.created_ms,
        "schema": manifest["schema"],
        "properties": manifest["properties"],
        "consistency_level": manifest["consistency_level"],
        "shards_num": manifest["shards_num"],
        "partitions": manifest["partitions"],
        "indexes": manifest["indexes"],
        "segments": [
            {
                "segment_id": entry["segment_id"],
                "partition": entry["partition"],
                "num_rows": entry["num_rows"],
                "columns": {name: _relative(snapshot, path) for name, (path, _) in entry["columns"].items()},
                "index_files": {
                    field: {"index_name": index_name, "path": _relative(snapshot, path)}
                    for field, (index_name, path, _) in entry["index_files"].items()
                },
            }
            for entry in manifest["segments"]
        ],
        "deletes": None
        if manifest["deletes"] is None
        else {
            "path": _relative(snapshot, manifest["deletes"]["path"]),
            "count": manifest["deletes"]["count"],
        },
        "files": [{"path": f.relative, "size": f.nbytes} for f in files],
    }


class SnapshotExports:
    def __init__(
        self,
        catalog: Catalog,
        store: ObjectStore,
        open_target: Callable[[str], ExportTarget],
        hold: Callable[[int, int], None],
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._open_target = open_target
        # hold(snapshot_id, +1 / -1): a snapshot being exported cannot be dropped.
        self._hold = hold
        self._lock = threading.Lock()
        self._jobs = {r.job_id: r for r in catalog.list_export_jobs()}
        self._copied: dict[int, int] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-export")

    @staticmethod
    def target_opener(
        objects_url: str | None, import_root: Path, data_dir: Path
    ) -> Callable[[str], ExportTarget]:
        return lambda target: open_export_target(target, objects_url, import_root, data_dir)

    def resume(self) -> None:
        """Run again the jobs a stop cut short, or fail them when they cannot run any more."""
        snapshots = {r.snapshot_id: r for r in self._catalog.list_snapshots()}
        for record in list(self._jobs.values()):
            if record.state not in (ExportState.PENDING, ExportState.EXECUTING):
                continue
            snapshot = snapshots.get(record.snapshot_id)
            if snapshot is None:
                self._set(
                    record.job_id, ExportState.FAILED, "the snapshot was dropped before the export ended"
                )
                continue
            try:
                target = self._open_target(record.target_uri)
            except ExportTargetError as exc:
                self._set(record.job_id, ExportState.FAILED, f"the export target is refused now: {exc}")
                continue
            self._hold(snapshot.snapshot_id, 1)
            self._worker.submit(self._run, record.job_id, snapshot, target)

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    # -- the calls --------------------------------------------------------------------------
    def start(self, snapshot: SnapshotRecord, target_path: str) -> tuple[int, str]:
        """Check the target and start copying; returns the job id and the manifest's URI."""
        try:
            target = self._open_target(target_path)
        except ExportTargetError as exc:
            raise invalid(str(exc)) from exc
        if target.exists(MANIFEST_FILE):
            raise invalid(f"export path {target.uri} already holds an exported snapshot, choose another")
        # Held from here, the snapshot cannot be dropped; one dropped just before is gone.
        self._hold(snapshot.snapshot_id, 1)
        try:
            if all(r.snapshot_id != snapshot.snapshot_id for r in self._catalog.list_snapshots()):
                raise snapshot_not_found(snapshot.name)
            job = self._register(snapshot, target)
        except BaseException:
            self._hold(snapshot.snapshot_id, -1)
            raise
        self._worker.submit(self._run, job.job_id, snapshot, target)
        return job.job_id, target.uri_of(MANIFEST_FILE)

    def _register(self, snapshot: SnapshotRecord, target: ExportTarget) -> ExportJobRecord:
        files = _files(snapshot, self._store)
        job = ExportJobRecord(
            job_id=self._catalog.allocate_id(),
            snapshot_id=snapshot.snapshot_id,
            snapshot_name=snapshot.name,
            db_name=snapshot.db_name,
            collection_name=snapshot.collection_name,
            target_uri=target.uri,
            state=int(ExportState.PENDING),
            reason="",
            start_ms=int(time.time() * 1000),
            end_ms=0,
            total_files=len(files) + 1,  # and the manifest
            total_bytes=sum(f.nbytes for f in files),
        )
        with self._lock:
            if any(
                r.target_uri == target.uri and r.state in (ExportState.PENDING, ExportState.EXECUTING)
                for r in self._jobs.values()
            ):
                raise invalid(f"export path {target.uri} is being written by another export job")
            self._jobs[job.job_id] = job
        self._catalog.save_export_job(job)
        return job

    def job(self, job_id: int) -> ExportJob:
        with self._lock:
            found = self._jobs.get(job_id)
            if found is None:
                raise invalid(f"export snapshot job not found[jobID={job_id}]")
            end_ms = found.end_ms or int(time.time() * 1000)
            done = found.state == ExportState.COMPLETED
            copied = found.total_files if done else self._copied.get(job_id, 0)
            return ExportJob(
                job_id=found.job_id,
                snapshot_name=found.snapshot_name,
                db_name=found.db_name,
                collection_name=found.collection_name,
                state=ExportState(found.state),
                progress=100 if done else min(99, copied * 100 // max(found.total_files, 1)),
                reason=found.reason,
                start_ms=found.start_ms,
                time_cost_ms=end_ms - found.start_ms,
                total_files=found.total_files,
                copied_files=copied,
                manifest_uri=f"{found.target_uri}/{MANIFEST_FILE}",
                total_bytes=found.total_bytes,
            )

    # -- the job ----------------------------------------------------------------------------
    def _set(self, job_id: int, state: ExportState, reason: str = "") -> None:
        with self._lock:
            ended = int(time.time() * 1000) if state in (ExportState.FAILED, ExportState.COMPLETED) else 0
            job = replace(self._jobs[job_id], state=int(state), reason=reason, end_ms=ended)
            self._jobs[job_id] = job
        self._catalog.save_export_job(job)

    def _run(self, job_id: int, snapshot: SnapshotRecord, target: ExportTarget) -> None:
        self._set(job_id, ExportState.EXECUTING)
        with self._lock:
            self._copied[job_id] = 0
        try:
            self._export(job_id, snapshot, target)
        except Exception as exc:  # noqa: BLE001 - the job reports it
            reason = exc.message if isinstance(exc, SheafError) else f"{type(exc).__name__}: {exc}"
            log.warning("export of snapshot %s to %s failed: %s", snapshot.name, target.uri, reason)
            self._set(job_id, ExportState.FAILED, reason)
        else:
            self._set(job_id, ExportState.COMPLETED)
        finally:
            self._hold(snapshot.snapshot_id, -1)
            with self._lock:
                self._copied.pop(job_id, None)

    def _export(self, job_id: int, snapshot: SnapshotRecord, target: ExportTarget) -> None:
        files = _files(snapshot, self._store)
        for file in files:
            with self._store.open_mapped(file.source) as source:
                written = target.copy_from(file.relative, source)
            if written != file.nbytes or target.size(file.relative) != file.nbytes:
                raise OSError(
                    f"copy of {file.relative} has {written} bytes, the snapshot's has {file.nbytes}"
                )
            with self._lock:
                self._copied[job_id] += 1
        manifest = json.dumps(export_manifest(snapshot, files), indent=1, sort_keys=True).encode()
        target.write_bytes(MANIFEST_FILE, manifest)
