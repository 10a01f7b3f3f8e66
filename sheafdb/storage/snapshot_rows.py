"""The catalog rows of collection snapshots and of the pins that hold them.

A mixin of ``SqlCatalog`` (its one connection and transactions, in the SQL SQLite and
PostgreSQL share), kept apart because snapshots are a concept of their own. A snapshot row
names its collection by database and name (a snapshot outlives a dropped collection: it is
what a restore starts from) and carries its manifest as JSON: schema, partitions, indexes,
and the files of every captured segment (under ``snapshots/<snapshot_id>/``, the snapshot's
own names for them). Export jobs (snapshot_export.py) are rows too. Pins go with their
snapshot (ON DELETE CASCADE).

``add_segments`` registers a restored collection's segments and index files in one
transaction: a restore lands whole or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sheafdb.errors import CollectionNotFound, ParameterInvalid
from sheafdb.storage.records import SegmentIndexRecord, SegmentRecord

SNAPSHOT_TABLES = """
CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id INTEGER PRIMARY KEY, collection_id INTEGER NOT NULL, db_name TEXT NOT NULL,
    collection_name TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
    created_ts INTEGER NOT NULL, created_ms INTEGER NOT NULL, manifest TEXT NOT NULL,
    UNIQUE (collection_id, name));
CREATE TABLE IF NOT EXISTS snapshot_restores (
    job_id INTEGER PRIMARY KEY, snapshot_id INTEGER NOT NULL, snapshot_name TEXT NOT NULL,
    db_name TEXT NOT NULL, collection_name TEXT NOT NULL, target_id INTEGER NOT NULL,
    state INTEGER NOT NULL, reason TEXT NOT NULL, start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot_pins (
    pin_id INTEGER PRIMARY KEY,
    snapshot_id INTEGER NOT NULL REFERENCES snapshots ON DELETE CASCADE,
    expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot_exports (
    job_id INTEGER PRIMARY KEY, snapshot_id INTEGER NOT NULL, snapshot_name TEXT NOT NULL,
    db_name TEXT NOT NULL, collection_name TEXT NOT NULL, target_uri TEXT NOT NULL,
    state INTEGER NOT NULL, reason TEXT NOT NULL, start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL, total_files INTEGER NOT NULL, total_bytes INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class SnapshotRecord:
    snapshot_id: int
    # The collection it was taken of (no foreign key: a snapshot outlives its collection).
    collection_id: int
    db_name: str
    collection_name: str
    name: str
    description: str
    created_ts: int
    created_ms: int
    manifest: Mapping[str, Any]


@dataclass(frozen=True)
class RestoreJobRecord:
    """A restore job (states are ``milvus.RestoreSnapshotState`` numbers); ``end_ms`` 0 while
    it runs. Kept after its snapshot or target is dropped: it is history."""

    job_id: int
    snapshot_id: int
    snapshot_name: str
    db_name: str
    collection_name: str
    target_id: int
    state: int
    reason: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class ExportJobRecord:
    """An export job (states are ``milvus.ExportSnapshotState`` numbers); ``target_uri`` is
    where its manifest goes; ``end_ms`` 0 while it runs. Kept after its snapshot is dropped."""

    job_id: int
    snapshot_id: int
    snapshot_name: str
    db_name: str
    collection_name: str
    target_uri: str
    state: int
    reason: str
    start_ms: int
    end_ms: int
    total_files: int
    total_bytes: int


@dataclass(frozen=True)
class SnapshotPinRecord:
    pin_id: int
    snapshot_id: int
    expires_ms: int


class _Transactions(Protocol):
    integrity_error: type[Exception]

    def _tx(self) -> AbstractContextManager[Any]: ...
    def _read(self) -> AbstractContextManager[Any]: ...
    def _insert_segment(self, cur: Any, segment: SegmentRecord) -> None: ...


_JOB_COLUMNS = (
    "job_id, snapshot_id, snapshot_name, db_name, collection_name, target_id, state, reason, start_ms, end_ms"
)


def _upsert_job(cur: Any, job: RestoreJobRecord) -> None:
    cur.execute(
        f"INSERT INTO snapshot_restores ({_JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (job_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, "
        "end_ms = excluded.end_ms",
        (
            job.job_id,
            job.snapshot_id,
            job.snapshot_name,
            job.db_name,
            job.collection_name,
            job.target_id,
            job.state,
            job.reason,
            job.start_ms,
            job.end_ms,
        ),
    )


_EXPORT_COLUMNS = (
    "job_id, snapshot_id, snapshot_name, db_name, collection_name, target_uri, state, reason, "
    "start_ms, end_ms, total_files, total_bytes"
)


class SnapshotRows:
    def add_snapshot(self: _Transactions, record: SnapshotRecord) -> None:
        """ParameterInvalid if the collection already has a snapshot of that name."""
        with self._tx() as cur:
            try:
                cur.execute(
                    "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.snapshot_id,
                        record.collection_id,
                        record.db_name,
                        record.collection_name,
                        record.name,
                        record.description,
                        record.created_ts,
                        record.created_ms,
                        json.dumps(record.manifest, sort_keys=True),
                    ),
                )
            except self.integrity_error as exc:
                raise ParameterInvalid(f"snapshot already exists[snapshot={record.name}]") from exc

    def drop_snapshot(self: _Transactions, snapshot_id: int) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM snapshots WHERE snapshot_id = ?", (snapshot_id,))

    def list_snapshots(self: _Transactions) -> list[SnapshotRecord]:
        with self._read() as cur:
            rows = list(
                cur.execute(
                    "SELECT snapshot_id, collection_id, db_name, collection_name, name, description, "
                    "created_ts, created_ms, manifest FROM snapshots ORDER BY snapshot_id"
                )
            )
        return [
            SnapshotRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8])) for r in rows
        ]

    def add_snapshot_pin(self: _Transactions, record: SnapshotPinRecord) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO snapshot_pins VALUES (?, ?, ?)",
                (record.pin_id, record.snapshot_id, record.expires_ms),
            )

    def drop_snapshot_pin(self: _Transactions, pin_id: int) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM snapshot_pins WHERE pin_id = ?", (pin_id,))

    def list_snapshot_pins(self: _Transactions) -> list[SnapshotPinRecord]:
        with self._read() as cur:
            rows = list(cur.execute("SELECT pin_id, snapshot_id, expires_ms FROM snapshot_pins"))
        return [SnapshotPinRecord(*r) for r in rows]

    def save_restore_job(self: _Transactions, job: RestoreJobRecord) -> None:
        with self._tx() as cur:
            _upsert_job(cur, job)

    def list_restore_jobs(self: _Transactions) -> list[RestoreJobRecord]:
        with self._read() as cur:
            rows = list(cur.execute(f"SELECT {_JOB_COLUMNS} FROM snapshot_restores ORDER BY job_id"))
        return [RestoreJobRecord(*r) for r in rows]

    def save_export_job(self: _Transactions, job: ExportJobRecord) -> None:
        with self._tx() as cur:
            cur.execute(
                f"INSERT INTO snapshot_exports ({_EXPORT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (job_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, "
                "end_ms = excluded.end_ms, total_files = excluded.total_files, "
                "total_bytes = excluded.total_bytes",
                (
                    job.job_id,
                    job.snapshot_id,
                    job.snapshot_name,
                    job.db_name,
                    job.collection_name,
                    job.target_uri,
                    job.state,
                    job.reason,
                    job.start_ms,
                    job.end_ms,
                    job.total_files,
                    job.total_bytes,
                ),
            )

    def list_export_jobs(self: _Transactions) -> list[ExportJobRecord]:
        with self._read() as cur:
            rows = list(cur.execute(f"SELECT {_EXPORT_COLUMNS} FROM snapshot_exports ORDER BY job_id"))
        return [ExportJobRecord(*r) for r in rows]

    def add_segments(
        self: _Transactions,
        segments: Sequence[SegmentRecord],
        indexes: Sequence[SegmentIndexRecord],
        finished: RestoreJobRecord,
    ) -> None:
        """Register segments (files already written) and their index files, and mark the
        restore job that made them finished, in one transaction (a restart never runs a job
        whose data is in); CollectionNotFound (nothing written) if the collection is gone."""
        with self._tx() as cur:
            _upsert_job(cur, finished)
            try:
                for segment in segments:
                    self._insert_segment(cur, segment)
                for r in indexes:
                    cur.execute(
                        "INSERT INTO segment_indexes VALUES (?, ?, ?, ?, ?)",
                        (r.segment_id, r.index_id, r.field_name, r.path, r.nbytes),
                    )
            except self.integrity_error as exc:
                raise CollectionNotFound("the collection was dropped during the restore") from exc
