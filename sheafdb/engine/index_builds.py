"""Background index builds: one worker thread builds each sealed segment's vector indexes.

A job is (collection, segment, index definition). The worker reads the segment's vector column,
builds the index (``sheafdb.index.build_index``), saves it beside the segment files, records it
in the catalog and installs it on the collection's runtime segment. A segment compacted away or
an index dropped meanwhile just makes the job a no-op; a failed build is remembered per index
(``describe_indexes`` reports it as Failed with its reason).

Locks: ``_lock`` guards the queue of pending jobs and the failure table; the worker builds
without holding it. One worker: builds are CPU-heavy and the machine is small; it runs at the
lowest OS priority (nice 19) so foreground work is served first.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass

from sheafdb.engine.collection import Collection
from sheafdb.engine.snapshot import SealedSegment, SegmentIndexFile
from sheafdb.errors import SheafError
from sheafdb.index import build_index, parse_index_params, vectors_from_arrow
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.records import IndexRecord, SegmentIndexRecord
from sheafdb.storage.segment_files import read_column

log = logging.getLogger(__name__)

# Background builds yield the CPU to inserts, searches and loads (nice 19: the lowest priority).
BUILD_NICENESS = 19


@dataclass(frozen=True)
class BuildJob:
    collection: Collection
    segment: SealedSegment
    index: IndexRecord


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
        self._worker = threading.Thread(target=self._run, name="sheafdb-index-builds", daemon=True)
        self._worker.start()

    def submit(
        self, coll: Collection, segments: tuple[SealedSegment, ...], indexes: tuple[IndexRecord, ...]
    ) -> None:
        """Queue builds for every (segment, index) pair that has no index file yet."""
        for segment in segments:
            for index in indexes:
                if index.field_name not in segment.index_files:
                    with self._lock:
                        self._pending += 1
                    self._queue.put(BuildJob(coll, segment, index))

    def failure(self, index_id: int) -> str | None:
        with self._lock:
            return self._failures.get(index_id)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no build is queued or running (tests and flush-then-describe use it)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=30)

    def _run(self) -> None:
        _lower_this_thread_priority()
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._build(job)
            except Exception as e:  # noqa: BLE001 - a failed build must not kill the worker
                log.exception("index build failed for segment %s", job.segment.segment_id)
                with self._lock:
                    self._failures[job.index.index_id] = e.message if isinstance(e, SheafError) else str(e)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _build(self, job: BuildJob) -> None:
        coll, segment, index = job.collection, job.segment, job.index
        if index not in coll.indexes:
            return  # dropped or replaced since the job was queued
        field = coll.schema.field(index.field_name)
        if field is None or index.field_name not in segment.columns:
            return
        spec = parse_index_params(field, index.params)
        column = read_column(self._store, segment.columns[index.field_name].path)
        built = build_index(spec, vectors_from_arrow(field, column))
        path = index_file_path(segment, index)
        nbytes = built.save(self._store, path)
        try:
            self._catalog.add_segment_index(
                SegmentIndexRecord(segment.segment_id, index.index_id, index.field_name, path, nbytes)
            )
        except SheafError:
            self._store.delete(path)  # segment compacted away or index dropped meanwhile
            return
        coll.install_index(
            segment.segment_id,
            SegmentIndexFile(index.field_name, index.index_name, path, nbytes, dict(index.params)),
        )
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
