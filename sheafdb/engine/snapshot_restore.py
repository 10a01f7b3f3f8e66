"""Restoring a snapshot into a new collection: an asynchronous job with a state and progress.

As Milvus's ``RestoreSnapshot``: the call checks its names, creates the target collection at
once (the snapshot's schema, properties, partitions and indexes; the name must be free) and
returns a job id; the job gives the target the snapshot's files, segment by segment
(``ObjectStore.link``: hard links on local disk, server-side copies on S3), progress being the
share of segments done, then registers every segment, index file and the deletes in ONE
catalog transaction and hands them to the runtime collection: the restored data appears whole
or not at all. The target holds exactly the snapshot's rows; index files come along (a
segment whose index the snapshot lacks is built as after a seal). A failed job drops the
target collection (Milvus rolls back the same way) and says why.

Deletes hide rows by partition id (``__scope``): the snapshot's deletes are rewritten with
the target's partition ids (a small file). Restored segments carry ``wal_lsn`` 0: the target's
own log starts at lsn 1, so recovery replays all of it past them.

Jobs are catalog rows (snapshot_rows.py); the last write marks the job completed in the same
transaction that registers its data. A restart resumes the jobs it cut short: their target is
still empty (the files they had linked are orphans, removed at the start) unless the target
or the snapshot is gone, which fails the job. Progress lives in memory. One worker thread runs
the jobs in order. Locks: ``_lock`` guards the job table and progress; ``_create_lock`` makes
"the target name is free" and its creation one step among restores.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.engine.collection import Collection
from sheafdb.engine.models import ConsistencyLevel
from sheafdb.engine.name_rules import check_collection_name
from sheafdb.engine.read.visibility import SCOPE_COLUMN
from sheafdb.engine.snapshot import DeleteFile, SealedSegment, SegmentColumns, SegmentIndexFile
from sheafdb.engine.write.index_builds import index_file_path
from sheafdb.engine.write.sealing import (
    DELETES_FILE,
    anchor_partition,
    read_delete_records,
    segment_directory,
    write_delete_records,
)
from sheafdb.errors import SheafError, invalid
from sheafdb.schema import CollectionSchema
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.records import SegmentIndexRecord, SegmentRecord
from sheafdb.storage.segment_files import ColumnFile
from sheafdb.storage.snapshot_rows import RestoreJobRecord, SnapshotRecord

log = logging.getLogger(__name__)


class RestoreState(IntEnum):
    """``milvus.RestoreSnapshotState``."""

    NONE = 0
    PENDING = 1
    EXECUTING = 2
    COMPLETED = 3
    FAILED = 4


@dataclass(frozen=True)
class RestoreJob:
    job_id: int
    snapshot_name: str
    db_name: str
    collection_name: str
    state: RestoreState
    progress: int
    reason: str
    start_ms: int
    time_cost_ms: int


class RestoreDdl(Protocol):
    """The facade calls a restore makes to create (or roll back) its target."""

    def has_collection(self, db: str, name: str) -> bool: ...
    def create_collection(
        self,
        db: str,
        name: str,
        schema: CollectionSchema,
        *,
        consistency_level: ConsistencyLevel = ...,
        num_partitions: int = ...,
        shards_num: int = ...,
        properties: Mapping[str, str] | None = ...,
    ) -> None: ...
    def create_partition(self, db: str, collection: str, partition: str) -> None: ...
    def create_index(
        self, db: str, collection: str, field_name: str, index_name: str, params: Mapping[str, str]
    ) -> None: ...
    def drop_collection(self, db: str, name: str) -> None: ...


class SnapshotRestores:
    def __init__(
        self,
        catalog: Catalog,
        store: ObjectStore,
        ddl: RestoreDdl,
        resolve: Callable[[str, str], Collection],
        on_restored: Callable[[Collection, tuple[SealedSegment, ...]], None],
        hold: Callable[[int, int], None],
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._ddl = ddl
        self._resolve = resolve
        self._on_restored = on_restored
        # hold(snapshot_id, +1 / -1): a snapshot being restored cannot be dropped.
        self._hold = hold
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()
        self._jobs = {r.job_id: r for r in catalog.list_restore_jobs()}
        self._progress: dict[int, int] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-restore")

    def resume(self) -> None:
        """Run again the jobs a stop cut short (their target holds none of their data)."""
        snapshots = {r.snapshot_id: r for r in self._catalog.list_snapshots()}
        for record in list(self._jobs.values()):
            if record.state not in (RestoreState.PENDING, RestoreState.EXECUTING):
                continue
            snapshot = snapshots.get(record.snapshot_id)
            try:
                target: Collection | None = self._resolve(record.db_name, record.collection_name)
            except SheafError:
                target = None
            if snapshot is None or target is None or target.collection_id != record.target_id:
                self._set(record.job_id, RestoreState.FAILED, "the snapshot or the target is gone")
                continue
            self._hold(snapshot.snapshot_id, 1)
            self._worker.submit(self._run, record.job_id, snapshot, target)

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    # -- the calls --------------------------------------------------------------------------
    def start(self, snapshot: SnapshotRecord, db: str, name: str) -> int:
        """Create the target collection now; copy the data in the background. Returns the job id."""
        check_collection_name(name)
        with self._create_lock:
            if self._ddl.has_collection(db, name):
                raise invalid(f"collection {name} already exists in database {db}, restore needs a new one")
            coll = self._create_target(snapshot.manifest, db, name)
        job = RestoreJobRecord(
            job_id=self._catalog.allocate_id(),
            snapshot_id=snapshot.snapshot_id,
            snapshot_name=snapshot.name,
            db_name=db,
            collection_name=name,
            target_id=coll.collection_id,
            state=int(RestoreState.PENDING),
            reason="",
            start_ms=int(time.time() * 1000),
            end_ms=0,
        )
        self._catalog.save_restore_job(job)
        with self._lock:
            self._jobs[job.job_id] = job
        self._hold(snapshot.snapshot_id, 1)
        self._worker.submit(self._run, job.job_id, snapshot, coll)
        return job.job_id

    def job(self, job_id: int) -> RestoreJob:
        with self._lock:
            found = self._jobs.get(job_id)
            if found is None:
                raise invalid(f"restore snapshot job not found[jobID={job_id}]")
            return self._view(found)

    def jobs(self, db: str, collection: str = "") -> list[RestoreJob]:
        """Jobs restoring into ``db`` (into ``collection`` when given), oldest first."""
        with self._lock:
            return [
                self._view(r)
                for r in sorted(self._jobs.values(), key=lambda j: j.job_id)
                if r.db_name == db and (not collection or r.collection_name == collection)
            ]

    def _view(self, r: RestoreJobRecord) -> RestoreJob:
        """The job as the API shows it; the caller holds ``_lock``."""
        end_ms = r.end_ms or int(time.time() * 1000)
        return RestoreJob(
            job_id=r.job_id,
            snapshot_name=r.snapshot_name,
            db_name=r.db_name,
            collection_name=r.collection_name,
            state=RestoreState(r.state),
            progress=100 if r.state == RestoreState.COMPLETED else self._progress.get(r.job_id, 0),
            reason=r.reason,
            start_ms=r.start_ms,
            time_cost_ms=end_ms - r.start_ms,
        )

    # -- the target -------------------------------------------------------------------------
    def _create_target(self, manifest: Mapping[str, Any], db: str, name: str) -> Collection:
        schema = CollectionSchema.from_dict(manifest["schema"])
        keyed = schema.partition_key_field is not None
        self._ddl.create_collection(
            db,
            name,
            schema,
            consistency_level=ConsistencyLevel(manifest["consistency_level"]),
            num_partitions=len(manifest["partitions"]) if keyed else 0,
            shards_num=manifest["shards_num"],
            properties=manifest["properties"],
        )
        try:
            if not keyed:
                for partition in manifest["partitions"]:
                    self._ddl.create_partition(db, name, partition)
            for index in manifest["indexes"]:
                self._ddl.create_index(db, name, index["field_name"], index["index_name"], index["params"])
        except BaseException:
            self._ddl.drop_collection(db, name)
            raise
        return self._resolve(db, name)

    # -- the job ----------------------------------------------------------------------------
    def _set(self, job_id: int, state: RestoreState, reason: str = "") -> None:
        """A new state, kept in the catalog (a failed job gets its end time)."""
        with self._lock:
            ended = int(time.time() * 1000) if state is RestoreState.FAILED else 0
            job = replace(self._jobs[job_id], state=int(state), reason=reason, end_ms=ended)
            self._jobs[job_id] = job
        self._catalog.save_restore_job(job)

    def _set_progress(self, job_id: int, progress: int) -> None:
        with self._lock:
            self._progress[job_id] = progress

    def _run(self, job_id: int, snapshot: SnapshotRecord, coll: Collection) -> None:
        self._set(job_id, RestoreState.EXECUTING)
        directories: list[str] = []
        try:
            segments, finished = self._restore(job_id, snapshot, coll, directories)
        except Exception as exc:  # noqa: BLE001 - the job reports it; the target is rolled back
            reason = exc.message if isinstance(exc, SheafError) else f"{type(exc).__name__}: {exc}"
            log.warning("restore of snapshot %s failed: %s", snapshot.name, reason)
            for directory in directories:
                self._store.delete_prefix(directory)
            try:
                self._ddl.drop_collection(coll.db_name, coll.name)
            except SheafError:
                log.exception("rollback of restore target %s failed", coll.name)
            self._set(job_id, RestoreState.FAILED, reason)
        else:
            with self._lock:
                self._jobs[job_id] = finished
            self._on_restored(coll, segments)
        finally:
            self._hold(snapshot.snapshot_id, -1)

    def _restore(
        self, job_id: int, snapshot: SnapshotRecord, coll: Collection, directories: list[str]
    ) -> tuple[tuple[SealedSegment, ...], RestoreJobRecord]:
        manifest = snapshot.manifest
        partitions = coll.partitions
        indexes = {i.field_name: i for i in coll.indexes}
        records: list[SegmentRecord] = []
        index_records: list[SegmentIndexRecord] = []
        restored: list[SealedSegment] = []
        entries: Sequence[Mapping[str, Any]] = manifest["segments"]
        for done, entry in enumerate(entries, start=1):
            segment_id = self._catalog.allocate_id()
            directory = segment_directory(coll.collection_id, segment_id)
            directories.append(directory)
            columns: dict[str, ColumnFile] = {}
            for column, (path, nbytes) in entry["columns"].items():
                target = f"{directory}/{path.rsplit('/', 1)[-1]}"
                self._store.link(path, target)
                columns[column] = ColumnFile(column, target, nbytes)
            segment = SealedSegment(
                segment_id=segment_id,
                partition_id=partitions[entry["partition"]],
                num_rows=entry["num_rows"],
                columns=SegmentColumns(columns),
                directory=directory,
            )
            index_files: dict[str, SegmentIndexFile] = {}
            for field, (_, path, nbytes) in entry["index_files"].items():
                index = indexes.get(field)
                if index is None:
                    continue
                target = index_file_path(segment, index)
                self._store.link(path, target)
                index_files[field] = SegmentIndexFile(
                    field, index.index_name, target, nbytes, dict(index.params)
                )
                index_records.append(SegmentIndexRecord(segment_id, index.index_id, field, target, nbytes))
            restored.append(replace(segment, index_files=index_files))
            records.append(
                SegmentRecord(
                    segment_id=segment_id,
                    collection_id=coll.collection_id,
                    partition_id=segment.partition_id,
                    num_rows=segment.num_rows,
                    directory=directory,
                    columns=columns,
                    wal_lsn=0,
                    max_ts=snapshot.created_ts,
                )
            )
            self._set_progress(job_id, min(99, done * 100 // max(len(entries), 1)))
        deletes, deletes_file = self._restore_deletes(
            manifest, coll, snapshot.created_ts, records, directories
        )
        with self._lock:
            finished = replace(
                self._jobs[job_id], state=int(RestoreState.COMPLETED), end_ms=int(time.time() * 1000)
            )
        self._catalog.add_segments(records, index_records, finished)
        sealed = tuple(restored)
        coll.add_restored(sealed, deletes, deletes_file, snapshot.created_ts)
        return sealed, finished

    def _restore_deletes(
        self,
        manifest: Mapping[str, Any],
        coll: Collection,
        max_ts: int,
        records: list[SegmentRecord],
        directories: list[str],
    ) -> tuple[pa.Table | None, DeleteFile | None]:
        """The snapshot's deletes, scoped to the target's partition ids, as a deletes segment."""
        if manifest["deletes"] is None:
            return None, None
        deletes = read_delete_records(self._store, manifest["deletes"]["path"])
        new_ids = coll.partitions
        old_to_new = {
            old: new_ids[name] for name, old in manifest["partition_ids"].items() if name in new_ids
        }
        scope = deletes.column(SCOPE_COLUMN)
        remapped = scope
        for old, new in old_to_new.items():
            remapped = pc.if_else(pc.equal(scope, old), pa.scalar(new, pa.int64()), remapped)
        deletes = deletes.set_column(deletes.schema.get_field_index(SCOPE_COLUMN), SCOPE_COLUMN, remapped)
        segment_id = self._catalog.allocate_id()
        directory = segment_directory(coll.collection_id, segment_id)
        directories.append(directory)
        path = f"{directory}/{DELETES_FILE}"
        write_delete_records(self._store, path, deletes)
        records.append(
            SegmentRecord(
                segment_id=segment_id,
                collection_id=coll.collection_id,
                partition_id=anchor_partition(new_ids),
                num_rows=0,
                directory=directory,
                columns={},
                wal_lsn=0,
                max_ts=max_ts,
                deletes_path=path,
            )
        )
        return deletes, DeleteFile(segment_id, directory, path, deletes.num_rows)
