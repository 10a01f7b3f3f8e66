"""Snapshots at the engine: restores of any schema, after the source is gone, failures rolled
back, and files no catalog row names removed at the next start."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pyarrow as pa
import pytest

from sheafdb.engine.engine import Engine
from sheafdb.engine.snapshot_restore import RestoreJob, RestoreState
from sheafdb.engine.snapshots import SNAPSHOTS_ROOT, snapshot_directory
from sheafdb.errors import ParameterInvalid
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.snapshot_rows import RestoreJobRecord

DB = "default"
FLAT = {"index_type": "FLAT", "metric_type": "L2"}


def _wait(engine: Engine, job_id: int) -> RestoreJob:
    for _ in range(3000):  # bounded: a job that never ends fails the test
        job = engine.restores.job(job_id)
        if job.state in (RestoreState.COMPLETED, RestoreState.FAILED):
            return job
        time.sleep(0.01)
    raise AssertionError(f"restore job {job_id} never ended: {engine.restores.job(job_id)}")


def _wait_indexed(engine: Engine, name: str) -> None:
    for _ in range(3000):  # bounded
        if all(seg.index_files for seg in engine._resolve(DB, name).snapshot().sealed):
            return
        time.sleep(0.01)
    raise AssertionError(f"the segments of {name} were never indexed")


def _keyed_schema(kit) -> CollectionSchema:
    return CollectionSchema(
        fields=(
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=kit.DIM),
            FieldSchema("tag", DataType.VARCHAR, max_length=16, is_partition_key=True),
        ),
        enable_dynamic_field=True,
    )


def test_a_partition_key_collection_is_restored_after_the_source_is_dropped(engine: Engine, kit) -> None:
    engine.create_collection(DB, "src", _keyed_schema(kit), num_partitions=4)
    engine.create_index(DB, "src", "vec", "", FLAT)
    rows = kit.make_rows(range(40))
    rows = rows.append_column("$meta", pa.array([json.dumps({"n": i}) for i in range(40)]))
    engine.insert(DB, "src", rows)
    engine.delete(DB, "src", "id in [3, 4]")
    engine.flush(DB, ["src"])
    _wait_indexed(engine, "src")
    engine.snapshots.create(DB, "src", "s", "before the drop")
    before = kit.visible_table(engine, DB, "src").sort_by("id")
    engine.drop_collection(DB, "src")

    assert engine.snapshots.list(DB) == ["s"]
    snapshot = engine.snapshots.find(DB, "src", "s")
    job = _wait(engine, engine.restores.start(snapshot, DB, "back"))
    assert (job.state, job.progress, job.collection_name) == (RestoreState.COMPLETED, 100, "back")
    after = kit.visible_table(engine, DB, "back").sort_by("id")
    assert after.column("id").to_pylist() == [i for i in range(40) if i not in (3, 4)]
    assert after.equals(before)
    assert len(engine.list_partitions(DB, "back")) == 4
    (index,) = engine.describe_indexes(DB, "back")
    assert index.params["index_type"] == "FLAT"
    # The index files came along: no segment of the target waits for a build.
    assert all("vec" in seg.index_files for seg in engine._resolve(DB, "back").snapshot().sealed)


def test_a_failed_restore_says_why_and_drops_its_target(engine: Engine, kit) -> None:
    engine.create_collection(DB, "src", kit.basic_schema())
    engine.insert(DB, "src", kit.make_rows(range(10)))
    engine.flush(DB, ["src"])
    engine.snapshots.create(DB, "src", "s", "")
    snapshot = engine.snapshots.find(DB, "src", "s")
    lost = snapshot.manifest["segments"][0]["columns"]["vec"][0]
    engine._store.delete(lost)  # the storage lost a file behind the snapshot's back

    job = _wait(engine, engine.restores.start(snapshot, DB, "back"))
    assert job.state is RestoreState.FAILED and job.reason
    assert not engine.has_collection(DB, "back")
    source = f"collections/{engine._resolve(DB, 'src').collection_id}/"
    assert all(p.startswith(source) for p in engine._store.list("collections"))


def test_a_pinned_snapshot_is_not_dropped_and_names_are_checked(engine: Engine, kit) -> None:
    engine.create_collection(DB, "src", kit.basic_schema())
    engine.snapshots.create(DB, "src", "s", "")
    pin = engine.snapshots.pin(DB, "src", "s", 0)
    with pytest.raises(ParameterInvalid, match="pinned"):
        engine.snapshots.drop(DB, "src", "s")
    engine.snapshots.unpin(pin)
    engine.snapshots.drop(DB, "src", "s")
    with pytest.raises(ParameterInvalid, match="snapshot name can only contain"):
        engine.snapshots.create(DB, "src", "a-b", "")
    with pytest.raises(ParameterInvalid, match="should not be empty"):
        engine.snapshots.create(DB, "src", "", "")


def test_a_snapshot_cut_short_leaves_nothing_after_a_restart(open_engine: Callable[..., Engine], kit) -> None:
    engine = open_engine()
    engine.create_collection(DB, "src", kit.basic_schema())
    engine.insert(DB, "src", kit.make_rows(range(5)))
    engine.flush(DB, ["src"])
    engine.snapshots.create(DB, "src", "kept", "")
    kept = snapshot_directory(engine.snapshots.find(DB, "src", "kept").snapshot_id)
    engine._store.write_bytes(f"{SNAPSHOTS_ROOT}/999999/1/vec.arrow", b"half a create")
    engine.close()

    engine = open_engine()
    assert {p.split("/")[1] for p in engine._store.list(SNAPSHOTS_ROOT)} == {kept.split("/")[1]}
    assert engine.snapshots.list(DB, "src") == ["kept"]


def test_a_restore_cut_short_by_a_stop_is_resumed_at_the_next_start(
    open_engine: Callable[..., Engine], kit
) -> None:
    engine = open_engine()
    engine.create_collection(DB, "src", kit.basic_schema())
    engine.insert(DB, "src", kit.make_rows(range(30)))
    engine.delete(DB, "src", "id in [7]")
    engine.flush(DB, ["src"])
    engine.snapshots.create(DB, "src", "s", "")
    snapshot = engine.snapshots.find(DB, "src", "s")
    # What a stop in the middle of a job leaves: the target made, the job row not finished.
    target = engine.restores._create_target(snapshot.manifest, DB, "back")
    job = RestoreJobRecord(
        job_id=engine._catalog.allocate_id(),
        snapshot_id=snapshot.snapshot_id,
        snapshot_name="s",
        db_name=DB,
        collection_name="back",
        target_id=target.collection_id,
        state=int(RestoreState.EXECUTING),
        reason="",
        start_ms=int(time.time() * 1000),
        end_ms=0,
    )
    engine._catalog.save_restore_job(job)
    engine._store.write_bytes(
        f"collections/{target.collection_id}/segments/1/id.arrow", b"linked before the stop"
    )
    engine.close()

    engine = open_engine()
    assert _wait(engine, job.job_id).state is RestoreState.COMPLETED
    assert kit.visible_ids(engine, "back") == [i for i in range(30) if i != 7]
    engine.close()
    engine = open_engine()  # a finished job is not run again
    assert engine.restores.job(job.job_id).state is RestoreState.COMPLETED
    assert kit.visible_ids(engine, "back") == [i for i in range(30) if i != 7]


def test_snapshots_follow_their_collection_through_a_rename(engine: Engine, kit) -> None:
    engine.create_collection(DB, "src", kit.basic_schema())
    engine.snapshots.create(DB, "src", "s", "")
    engine.rename_collection(DB, "src", "renamed")
    assert engine.snapshots.list(DB, "renamed") == ["s"]
    assert engine.snapshots.list(DB, "src") == []
    engine.create_collection(DB, "src", kit.basic_schema())
    engine.snapshots.create(DB, "src", "s", "")  # another collection: the name is free there
    assert engine.snapshots.list(DB) == ["s", "s"]
