"""Snapshot exports at the engine: a job a stop cut short runs again at the next start, one
whose snapshot is gone fails with the reason; targets are confined to the import root."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sheafdb.engine.engine import Engine
from sheafdb.engine.snapshot_export import MANIFEST_FILE, ExportJob, ExportState
from sheafdb.errors import ParameterInvalid
from sheafdb.storage.export_target import ExportTargetError, open_export_target
from sheafdb.storage.snapshot_rows import ExportJobRecord

DB = "default"
# A bucket URL as --objects takes it; nothing here connects to it.
OBJECTS = "s3://b/deploy?endpoint_override=127.0.0.1:9&scheme=http&region=us-east-1"


def _wait(engine: Engine, job_id: int) -> ExportJob:
    for _ in range(3000):  # bounded: a job that never ends fails the test
        job = engine.exports.job(job_id)
        if job.state in (ExportState.COMPLETED, ExportState.FAILED):
            return job
        time.sleep(0.01)
    raise AssertionError(f"export job {job_id} never ended: {engine.exports.job(job_id)}")


def _cut_short(engine: Engine, target: Path) -> ExportJobRecord:
    """What a stop in the middle of a job leaves: the row executing, part of the files copied."""
    snapshot = engine.snapshots.find(DB, "src", "s")
    job = ExportJobRecord(
        job_id=engine._catalog.allocate_id(),
        snapshot_id=snapshot.snapshot_id,
        snapshot_name="s",
        db_name=DB,
        collection_name="src",
        target_uri=str(target),
        state=int(ExportState.EXECUTING),
        reason="",
        start_ms=int(time.time() * 1000),
        end_ms=0,
        total_files=99,
        total_bytes=0,
    )
    engine._catalog.save_export_job(job)
    target.mkdir(parents=True)
    (target / "half-copied.arrow").write_bytes(b"cut short")
    return job


def _source(engine: Engine, kit) -> None:
    engine.create_collection(DB, "src", kit.basic_schema())
    engine.insert(DB, "src", kit.make_rows(range(30)))
    engine.delete(DB, "src", "id in [7]")
    engine.flush(DB, ["src"])
    engine.snapshots.create(DB, "src", "s", "")


def test_an_export_cut_short_by_a_stop_runs_again_at_the_next_start(
    open_engine: Callable[..., Engine], kit, tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    engine = open_engine(import_root=root)
    _source(engine, kit)
    job = _cut_short(engine, root / "one")
    engine.close()

    engine = open_engine(import_root=root)
    done = _wait(engine, job.job_id)
    assert done.state is ExportState.COMPLETED, done.reason
    manifest = json.loads((root / "one" / MANIFEST_FILE).read_text())
    assert sum(s["num_rows"] for s in manifest["segments"]) == 30
    assert manifest["deletes"]["count"] == 1
    for entry in manifest["files"]:
        assert (root / "one" / entry["path"]).stat().st_size == entry["size"]
    engine.close()
    engine = open_engine(import_root=root)  # a finished job is not run again
    assert engine.exports.job(job.job_id).state is ExportState.COMPLETED


def test_an_export_whose_snapshot_was_dropped_fails_at_the_next_start(
    open_engine: Callable[..., Engine], kit, tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    engine = open_engine(import_root=root)
    _source(engine, kit)
    job = _cut_short(engine, root / "one")
    engine.snapshots.drop(DB, "src", "s")
    engine.close()

    engine = open_engine(import_root=root)
    failed = engine.exports.job(job.job_id)
    assert failed.state is ExportState.FAILED
    assert failed.reason == "the snapshot was dropped before the export ended"
    assert not (root / "one" / MANIFEST_FILE).exists()


def test_an_export_that_cannot_write_fails_with_the_reason_and_no_manifest(
    open_engine: Callable[..., Engine], kit, tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    engine = open_engine(import_root=root)
    _source(engine, kit)
    snapshot = engine.snapshots.find(DB, "src", "s")
    first_segment = snapshot.manifest["segments"][0]["segment_id"]
    (root / "one").mkdir(parents=True)
    (root / "one" / str(first_segment)).write_bytes(b"a file where a directory must go")
    job_id, uri = engine.exports.start(snapshot, "one")
    assert uri == str((root / "one" / MANIFEST_FILE).resolve())
    failed = _wait(engine, job_id)
    assert failed.state is ExportState.FAILED
    assert str(first_segment) in failed.reason
    assert failed.copied_files == 0 and failed.progress < 100
    assert not (root / "one" / MANIFEST_FILE).exists()
    engine.snapshots.drop(DB, "src", "s")  # the failed job holds it no more


def test_two_exports_to_one_target_at_once_are_refused(engine: Engine, kit) -> None:
    _source(engine, kit)
    snapshot = engine.snapshots.find(DB, "src", "s")
    engine.exports._worker.submit(time.sleep, 0.5)  # the worker busy: the first job stays pending
    first, _ = engine.exports.start(snapshot, "exports/one")
    with pytest.raises(ParameterInvalid, match="being written by another export job"):
        engine.exports.start(snapshot, "exports/one")
    assert _wait(engine, first).state is ExportState.COMPLETED


def test_a_snapshot_being_exported_cannot_be_dropped(engine: Engine, kit) -> None:
    _source(engine, kit)
    engine.snapshots.hold(engine.snapshots.find(DB, "src", "s").snapshot_id, 1)
    with pytest.raises(ParameterInvalid, match="being restored or exported"):
        engine.snapshots.drop(DB, "src", "s")


@pytest.mark.parametrize(
    ("target", "text"),
    [
        ("", "target_s3_path is empty"),
        ("../escape", "outside the import root"),
        ("/etc/sheafdb", "outside the import root"),
        ("file:///etc/sheafdb", "outside the import root"),
        ("s3://bucket/key", "needs object storage"),
        ("gs://bucket/key", "needs object storage"),
        ("data/snapshots/x", "inside the server's own files"),
        ("data", "inside the server's own files"),
    ],
)
def test_local_targets_outside_the_root_or_in_the_servers_files_are_refused(
    tmp_path: Path, target: str, text: str
) -> None:
    with pytest.raises(ExportTargetError, match=text):
        open_export_target(target, None, tmp_path, tmp_path / "data")


@pytest.mark.parametrize(
    ("target", "text"),
    [
        ("s3://other/key", "this server writes only to bucket b"),
        ("/abs/path", "is a local path"),
        ("s3://b/deploy/x", "inside the server's own objects"),
        ("deploy", "inside the server's own objects"),
        ("s3://b/", "needs a key prefix"),
        ("s3://b/a/../deploy", "invalid export path"),
        ("http://b/key", "not in the server's object storage"),
    ],
)
def test_bucket_targets_outside_the_bucket_or_in_the_deployment_are_refused(
    tmp_path: Path, target: str, text: str
) -> None:
    with pytest.raises(ExportTargetError, match=text):
        open_export_target(target, OBJECTS, tmp_path, tmp_path / "data")
