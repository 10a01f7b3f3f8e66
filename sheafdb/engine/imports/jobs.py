"""Bulk import jobs, as Milvus runs and reports them (``Import`` / ``jobs/import/...``).

``submit`` checks the request as Milvus's proxy does (the collection and partition, the file
groups and their formats) and answers at once with a job id; the job then runs in the
background, one at a time, on the ``import-jobs`` thread: Pending -> PreImporting (every file
read and checked by the insert rules) -> Importing (the rows written as one write-ahead-log
record, then sealed into segments) -> Completed, or Failed with the reason. Every row is
validated before the first is written, and the write is one log record, so a failed job
imports nothing.

Bounds: at most ``MAX_FILES`` file groups per job (Milvus's limit), ``max_bytes`` of files per
job (the job holds its rows in memory while it checks them), ``MAX_UNFINISHED`` jobs queued or
running (Milvus's "too many jobs" answer beyond). Jobs live in memory (the last ``KEPT_JOBS``
finished ones are kept): a restart forgets the job records, never the imported rows.

Lock: ``_lock`` guards the jobs map and each job's mutable fields; files are read and rows
written outside it.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from sheafdb.engine.collection import Collection
from sheafdb.engine.imports.readers import file_format, read_group
from sheafdb.engine.models import MutationResult
from sheafdb.errors import CollectionNotFound, ImportFailed, PartitionNotFound, SheafError
from sheafdb.storage.import_files import ImportFileError, ImportFiles

log = logging.getLogger(__name__)

MAX_FILES = 1024
MAX_UNFINISHED = 64
KEPT_JOBS = 1024
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024


class ImportJobState(enum.IntEnum):
    """Milvus's ``internal.ImportJobState`` (its names are what REST shows)."""

    Pending = 1
    PreImporting = 2
    Importing = 3
    Failed = 4
    Completed = 5


@dataclass
class ImportFileProgress:
    paths: tuple[str, ...]
    size: int = 0
    rows: int = 0
    done: bool = False


@dataclass
class ImportJob:
    job_id: int
    db_name: str
    collection_name: str
    collection_id: int
    partition_name: str
    groups: tuple[ImportFileProgress, ...]
    options: Mapping[str, str]
    create_time: float
    state: ImportJobState = ImportJobState.Pending
    reason: str = ""
    imported_rows: int = 0
    total_rows: int = 0
    complete_time: float | None = None
    segment_ids: tuple[int, ...] = ()
    ids: pa.Array | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in (ImportJobState.Completed, ImportJobState.Failed)

    @property
    def progress(self) -> int:
        """Percent, as Milvus counts it: reading is the first half, writing the rest."""
        if self.state is ImportJobState.Completed:
            return 100
        if self.state in (ImportJobState.Pending, ImportJobState.Failed):
            return 0
        if self.state is ImportJobState.Importing:
            return 90
        read = sum(1 for g in self.groups if g.done)
        return 10 + (50 * read) // max(1, len(self.groups))


@dataclass(frozen=True)
class ImportJobView:
    """A consistent copy of a job for the API (taken under the lock)."""

    job_id: int
    db_name: str
    collection_name: str
    collection_id: int
    partition_name: str
    state: ImportJobState
    reason: str
    progress: int
    imported_rows: int
    total_rows: int
    create_time: float
    complete_time: float | None
    files: tuple[ImportFileProgress, ...]
    segment_ids: tuple[int, ...]


@dataclass(frozen=True)
class ImportCollaborators:
    files: ImportFiles
    resolve: Callable[[str, str, Sequence[str]], Collection]
    allocate_id: Callable[[], int]
    write: Callable[[Collection, Sequence[pa.Table], str], MutationResult]
    seal: Callable[[Collection], tuple[object, ...]]
    is_dropped: Callable[[Collection], bool]


class ImportJobs:
    def __init__(self, parts: ImportCollaborators, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._parts = parts
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._jobs: dict[int, ImportJob] = {}
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="import-jobs", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop: queued jobs and the one running (at its next step) fail; none is left half
        written, since a job writes its rows in one log record or not at all."""
        self._closing.set()
        self._queue.put(None)
        self._thread.join(timeout=10)

    # -- requests ----------------------------------------------------------------------------
    def submit(
        self,
        db: str,
        collection: str,
        partition: str,
        groups: Sequence[Sequence[str]],
        options: Mapping[str, str],
    ) -> int:
        coll = self._parts.resolve(db, collection, (partition,) if partition else ())
        if not groups:
            raise ImportFailed("import request is empty")
        if len(groups) > MAX_FILES:
            raise ImportFailed(
                f"The max number of import files should not exceed {MAX_FILES}, but got {len(groups)}"
            )
        if options.get("backup", "").lower() == "true":
            raise ImportFailed("importing Milvus backup (binlog) files is not supported by SheafDB")
        if coll.schema.partition_key_field is not None and partition:
            raise ImportFailed("not allow to set partition name for collection with partition key")
        if partition and partition not in coll.partitions:
            raise PartitionNotFound(f"partition not found[partition={partition}]")
        for paths in groups:
            file_format(paths)
        job = ImportJob(
            job_id=self._parts.allocate_id(),
            db_name=coll.db_name,
            collection_name=coll.name,
            collection_id=coll.collection_id,
            partition_name=partition,
            groups=tuple(ImportFileProgress(tuple(p)) for p in groups),
            options=dict(options),
            create_time=time.time(),
        )
        with self._lock:
            if sum(1 for j in self._jobs.values() if not j.finished) >= MAX_UNFINISHED:
                raise ImportFailed(
                    "The number of jobs has reached the limit, please try again later, "
                    f"limit={MAX_UNFINISHED}"
                )
            self._jobs[job.job_id] = job
            self._forget_old()
        self._queue.put(job.job_id)
        return job.job_id

    def get(self, job_id: int) -> ImportJobView:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise ImportFailed(f"import job does not exist, jobID={job_id}")
            return self._view(job)

    def list(self, db: str, collection: str = "", limit: int = 0) -> list[ImportJobView]:
        """The jobs of a database (of one collection when named), oldest first; the newest
        ``limit`` when it is positive."""
        collection_id = None
        if collection:
            collection_id = self._parts.resolve(db, collection, ()).collection_id
        with self._lock:
            jobs = [
                self._view(j)
                for j in sorted(self._jobs.values(), key=lambda j: j.job_id)
                if j.db_name == db and (collection_id is None or j.collection_id == collection_id)
            ]
        return jobs[-limit:] if limit > 0 else jobs

    def wait(self, job_id: int, timeout: float) -> ImportJobView:
        """The job once finished, or as it is at the timeout (tests and the CLI)."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.get(job_id)
            if view.state in (ImportJobState.Completed, ImportJobState.Failed):
                return view
            if time.monotonic() >= deadline:
                return view
            time.sleep(0.02)

    @staticmethod
    def _view(job: ImportJob) -> ImportJobView:
        return ImportJobView(
            job_id=job.job_id,
            db_name=job.db_name,
            collection_name=job.collection_name,
            collection_id=job.collection_id,
            partition_name=job.partition_name,
            state=job.state,
            reason=job.reason,
            progress=job.progress,
            imported_rows=job.imported_rows,
            total_rows=job.total_rows,
            create_time=job.create_time,
            complete_time=job.complete_time,
            files=tuple(ImportFileProgress(g.paths, g.size, g.rows, g.done) for g in job.groups),
            segment_ids=job.segment_ids,
        )

    def _forget_old(self) -> None:
        finished = [j.job_id for j in self._jobs.values() if j.finished]
        for job_id in sorted(finished)[: max(0, len(finished) - KEPT_JOBS)]:
            del self._jobs[job_id]

    # -- the worker --------------------------------------------------------------------------
    def _run(self) -> None:
        while (job_id := self._queue.get()) is not None:
            with self._lock:
                job = self._jobs.get(job_id)
            if job is None:
                continue
            try:
                self._execute(job)
            except SheafError as err:
                self._finish(job, ImportJobState.Failed, err.message)
            except ImportFileError as err:
                self._finish(job, ImportJobState.Failed, ImportFailed(str(err)).message)
            except Exception as err:  # a reader's surprise fails the job, never the thread
                log.exception("import job %d failed", job.job_id)
                self._finish(job, ImportJobState.Failed, ImportFailed(f"{type(err).__name__}: {err}").message)

    def _check_running(self) -> None:
        if self._closing.is_set():
            raise ImportFailed("the server stopped before the import job finished")

    def _execute(self, job: ImportJob) -> None:
        self._check_running()
        coll = self._parts.resolve(job.db_name, job.collection_name, ())
        if coll.collection_id != job.collection_id:
            raise CollectionNotFound(f"collection not found[collection={job.collection_id}]")
        with self._lock:
            job.state = ImportJobState.PreImporting
        total = 0
        for group in job.groups:
            size = sum(self._parts.files.size(p) for p in group.paths)
            total += size
            with self._lock:
                group.size = size
            if total > self._max_bytes:
                raise ImportFailed(
                    f"the files of an import job are {total} bytes or more, over SheafDB's limit "
                    f"of {self._max_bytes} bytes per job (split the files into several jobs)"
                )
        tables = []
        for group in job.groups:
            self._check_running()
            table = read_group(self._parts.files, group.paths, coll.schema, job.options)
            tables.append(table)
            with self._lock:
                group.rows = table.num_rows
                group.done = True
                job.total_rows += table.num_rows
        with self._lock:
            job.state = ImportJobState.Importing
        self._check_running()
        if self._parts.is_dropped(coll):
            raise CollectionNotFound(f"collection not found[collection={job.collection_id}]")
        result = self._parts.write(coll, tables, job.partition_name)
        segments = self._parts.seal(coll)
        with self._lock:
            job.imported_rows = result.count
            job.ids = result.ids
            job.segment_ids = tuple(int(getattr(s, "segment_id", 0)) for s in segments)
        self._finish(job, ImportJobState.Completed, "")

    def _finish(self, job: ImportJob, state: ImportJobState, reason: str) -> None:
        with self._lock:
            job.state = state
            job.reason = reason
            job.complete_time = time.time()
        if state is ImportJobState.Failed:
            log.warning("import job %d into %s failed: %s", job.job_id, job.collection_name, reason)
        else:
            log.info("import job %d: %d rows into %s", job.job_id, job.imported_rows, job.collection_name)
