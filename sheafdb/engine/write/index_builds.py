"""Background index builds: one worker thread builds each sealed segment's indexes.

A job is (collection, segment, index definition). The worker reads the segment's column,
builds the index (``sheafdb.index.build_index`` for vectors; scalar_index_builds.py for scalar
and JSON path indexes), saves it beside the segment files, records it in the catalog and
installs it on the collection's runtime segment. A segment compacted away or
an index dropped meanwhile just makes the job a no-op; a failed build is remembered per index
(``describe_indexes`` reports it as Failed with its reason).

A compaction's merged segment is not in the catalog yet when its indexes are built
(``build_detached``): the worker only writes the file and hands it back through a Future; the
compactor registers it together with the swap, so no reader ever meets the segment unindexed.

Closing does not wait for builds (a server must stop within seconds; an HNSW build of a big
segment takes minutes and cannot be interrupted inside faiss): queued jobs are dropped (the next
start queues whatever is still missing), a detached build's Future fails with CancelledError so
a compaction waiting on it gives up, and a build already running finishes on its daemon thread
or dies with the process; its file is then an orphan the next start removes.

Locks: ``_lock`` guards the queue of pending jobs, the job running, the closed flag and the
failure table; the worker builds without holding it. One worker: builds are CPU-heavy and the
machine is small; it runs at the lowest OS priority (nice 19) so foreground work is served
first.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from concurrent.futures import CancelledError, Future, InvalidStateError
from dataclasses import dataclass

from sheafdb.engine.collection import Collection
from sheafdb.engine.snapshot import SealedSegment, SegmentIndexFile
from sheafdb.engine.write.scalar_index_builds import build_scalar_file, needs_build
from sheafdb.errors import SheafError
from sheafdb.index import build_index, parse_index_params, vectors_from_arrow
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.records import IndexRecord, SegmentIndexRecord
from sheafdb.storage.segment_files import read_column

log = logging.getLogger(__name__)

# Background builds yield the CPU to inserts, searches and loads (nice 19: the lowest priority).
BUILD_NICENESS = 19
# How long close() lets a running build finish before leaving it to its daemon thread.
CLOSE_WAIT_S = 1.0


@dataclass(frozen=True)
class BuildJob:
    collection: Collection
    segment: SealedSegment
    index: IndexRecord
    # Set for a detached build (a compaction's merged segment): the file is handed back here
    # instead of being registered; a failure goes here too, not to the failure table.
    result: Future[SegmentIndexFile | None] | None = None


def index_file_path(segment: SealedSegment, index: IndexRecord) -> str:
    return f"{segment.directory}/index_{index.index_id}.faiss"


class IndexBuilder:
    def __init__(self, store: ObjectStore, catalog: Catalog) -> None:
        self._store = store
        self._catalog = catalog
        self._lock = threading.Lock()
        self._queue: queue.Queue[BuildJob | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._failures: dict[int, str] = {}  # index id -> reason of its last failed build
        self._running: BuildJob | None = None
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="sheafdb-index-builds", daemon=True)
        self._worker.start()

    def submit(
        self, coll: Collection, segments: tuple[SealedSegment, ...], indexes: tuple[IndexRecord, ...]
    ) -> None:
        """Queue builds for every (segment, index) pair that has no index file yet."""
        for segment in segments:
            for index in indexes:
                if needs_build(coll.schema, segment, index):
                    with self._lock:
                        if self._closed:
                            return
                        self._pending += 1
                    self._queue.put(BuildJob(coll, segment, index))

    def build_detached(
        self, coll: Collection, segment: SealedSegment, index: IndexRecord
    ) -> Future[SegmentIndexFile | None]:
        """Build and save one index of a segment the catalog does not know yet, on the worker
        (low priority, one build at a time); the Future gives the file, None if there is
        nothing to build (index dropped meanwhile, field not in the segment)."""
        result: Future[SegmentIndexFile | None] = Future()
        with self._lock:
            if self._closed:
                _cancel(result)
                return result
            self._pending += 1
        self._queue.put(BuildJob(coll, segment, index, result))
        return result

    def failure(self, index_id: int) -> str | None:
        with self._lock:
            return self._failures.get(index_id)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no build is queued or running (tests and flush-then-describe use it)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Stop building without waiting for the builds (see the module docstring)."""
        with self._lock:
            self._closed = True
            running = self._running
        dropped = 0
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                dropped += 1
                if job.result is not None:
                    _cancel(job.result)
        if running is not None and running.result is not None:
            _cancel(running.result)
        with self._idle:
            self._pending -= dropped
            self._idle.notify_all()
        self._queue.put(None)
        self._worker.join(timeout=CLOSE_WAIT_S)

    def _run(self) -> None:
        _lower_this_thread_priority()
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._running = job
            try:
                if job.result is not None:
                    self._build_detached(job, job.result)
                else:
                    self._build_reporting_failures(job)
            finally:
                with self._idle:
                    self._running = None
                    self._pending -= 1
                    self._idle.notify_all()

    def _build_reporting_failures(self, job: BuildJob) -> None:
        try:
            self._build(job)
        except Exception as e:  # noqa: BLE001 - a failed build must not kill the worker
            log.exception("index build failed for segment %s", job.segment.segment_id)
            with self._lock:
                self._failures[job.index.index_id] = e.message if isinstance(e, SheafError) else str(e)

    def _build_detached(self, job: BuildJob, result: Future[SegmentIndexFile | None]) -> None:
        try:
            index_file = self._write_index_file(job)
        except Exception as e:  # noqa: BLE001 - the compactor decides what a failure means
            _settle(result, error=e)
            return
        _settle(result, value=index_file)

    def _write_index_file(self, job: BuildJob) -> SegmentIndexFile | None:
        """Build the index and save it beside the segment files; None if there is nothing to build."""
        coll, segment, index = job.collection, job.segment, job.index
        if index not in coll.indexes:
            return None  # dropped or replaced since the job was queued
        field = coll.schema.field(index.field_name)
        if field is not None and not field.is_vector:
            return build_scalar_file(self._store, coll.schema, segment, index)
        if field is None or index.field_name not in segment.columns:
            return None
        spec = parse_index_params(field, index.params)
        column = read_column(self._store, segment.columns[index.field_name].path)
        built = build_index(spec, vectors_from_arrow(field, column))
        path = index_file_path(segment, index)
        nbytes = built.save(self._store, path)
        return SegmentIndexFile(index.field_name, index.index_name, path, nbytes, dict(index.params))

    def _build(self, job: BuildJob) -> None:
        coll, segment, index = job.collection, job.segment, job.index
        if all(s.segment_id != segment.segment_id for s in coll.snapshot().sealed):
            return  # compacted away while queued: its merged segment gets its own build
        index_file = self._write_index_file(job)
        if index_file is None or self._closed:
            return  # after close the catalog may be gone: the next start removes the file
        try:
            self._catalog.add_segment_index(
                SegmentIndexRecord(
                    segment.segment_id, index.index_id, index.field_name, index_file.path, index_file.nbytes
                )
            )
        except SheafError:
            self._store.delete(index_file.path)  # segment compacted away or index dropped meanwhile
            return
        coll.install_index(segment.segment_id, index_file)
        with self._lock:
            self._failures.pop(index.index_id, None)


def _lower_this_thread_priority() -> None:
    """Run the calling thread at BUILD_NICENESS.

    An HNSW build can take a core for minutes; at normal priority it competes with the gRPC
    threads serving inserts and searches on a small machine. On Linux a thread is a task with
    its own nice value, so setpriority on the native thread id lowers only this thread (POSIX
    would renice the whole process). The build uses every core (index/faiss_threads.py): libgomp's
    team threads are created by this thread and inherit its nice value. Elsewhere, or when
    refused, builds simply keep the normal priority.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BUILD_NICENESS)
    except (AttributeError, OSError):
        log.debug("could not lower the index build thread's priority")


def _cancel(result: Future[SegmentIndexFile | None]) -> None:
    _settle(result, error=CancelledError("the index builder is closing"))


def _settle(
    result: Future[SegmentIndexFile | None],
    *,
    value: SegmentIndexFile | None = None,
    error: BaseException | None = None,
) -> None:
    """Set a detached build's outcome unless close() already cancelled it."""
    try:
        if error is not None:
            result.set_exception(error)
        else:
            result.set_result(value)
    except InvalidStateError:
        pass
