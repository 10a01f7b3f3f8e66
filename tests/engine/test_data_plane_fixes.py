"""Deletes files, orphan removal, auto ids across restarts, partition-scoped deletes, upsert on
auto_id collections and background compaction: each against a real engine on disk."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from sheafdb.engine.engine import Engine
from sheafdb.schema import DataType, FieldSchema


def test_deletes_survive_dropping_the_partition_sealed_with_them(
    open_engine: Callable[..., Engine], kit
) -> None:
    e = open_engine(compaction_min_segments=None)
    e.create_collection("default", "c", kit.basic_schema())
    e.create_partition("default", "c", "p1")
    e.insert("default", "c", kit.make_rows(range(10)))
    e.flush("default", ["c"])
    # Only p1 has growing rows when the delete of a _default row is sealed.
    e.insert("default", "c", kit.make_rows(range(100, 105)), partition="p1")
    e.delete("default", "c", "id in [3]")
    e.flush("default", ["c"])
    e.drop_partition("default", "c", "p1")
    expected = [i for i in range(10) if i != 3]
    assert kit.visible_ids(e, "c") == expected
    e.close()
    assert kit.visible_ids(open_engine(compaction_min_segments=None), "c") == expected


def test_flush_of_deletes_only_persists_them_and_trims_the_log(
    open_engine: Callable[..., Engine], kit
) -> None:
    e = open_engine(compaction_min_segments=None)
    e.create_collection("default", "c", kit.basic_schema())
    e.insert("default", "c", kit.make_rows(range(10)))
    e.flush("default", ["c"])
    e.delete("default", "c", "id in [2, 7]")
    e.flush("default", ["c"])
    coll = e._resolve("default", "c")
    assert sum(p.stat().st_size for p in coll.wal.files()) == 0, "the log still holds the deletes"
    assert len(coll.delete_files) == 1
    e.close()
    e2 = open_engine(compaction_min_segments=None)
    assert kit.visible_ids(e2, "c") == [0, 1, 3, 4, 5, 6, 8, 9]
    assert e2.collection_row_count("default", "c") == 8


def test_auto_ids_never_repeat_across_restarts_even_when_the_clock_steps_back(
    open_engine: Callable[..., Engine], kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    e = open_engine(compaction_min_segments=None)
    e.create_collection("default", "c", kit.basic_schema(auto_id=True))
    batches = [e.insert("default", "c", kit.make_rows(range(3000), with_ids=False)).ids.to_pylist()]
    e.close()
    # An NTP step back of a minute: the persisted timestamps are now in the future.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 60.0)
    for _ in range(2):  # restart right after a big batch, twice
        e = open_engine(compaction_min_segments=None)
        batches.append(e.insert("default", "c", kit.make_rows(range(3000), with_ids=False)).ids.to_pylist())
        e.close()
    all_ids = [i for batch in batches for i in batch]
    assert len(set(all_ids)) == len(all_ids) == 9000
    assert len(set(kit.visible_ids(open_engine(compaction_min_segments=None), "c"))) == 9000


def test_startup_removes_unregistered_segment_files(open_engine: Callable[..., Engine], kit) -> None:
    e = open_engine(compaction_min_segments=None)
    e.create_collection("default", "c", kit.basic_schema())
    e.insert("default", "c", kit.make_rows(range(10)))
    e.flush("default", ["c"])
    coll = e._resolve("default", "c")
    segment_dir = coll.snapshot().sealed[0].directory
    cid = coll.collection_id
    e.close()
    store = e._store
    # What crashes leave: a never-registered segment, a torn write_segment, a stray index file,
    # and the files and log of a collection dropped just before a crash.
    store.write_bytes(f"collections/{cid}/segments/999/id.arrow", b"x")
    store.write_bytes(f"collections/{cid}/segments/998.0123abcd.tmp/id.arrow", b"x")
    (store.root / f"collections/{cid}/segments/997.4567.tmp").mkdir()
    store.write_bytes(f"{segment_dir}/index_12345.faiss", b"x")
    store.write_bytes("collections/424242/segments/1/id.arrow", b"x")
    (store.root / "wal" / "424242").mkdir(parents=True)
    e2 = open_engine(compaction_min_segments=None)
    left = set(e2._store.list("collections"))
    assert left == {c.path for c in e2._resolve("default", "c").snapshot().sealed[0].columns.values()}
    assert not (store.root / f"collections/{cid}/segments/997.4567.tmp").exists()
    assert not (store.root / "wal" / "424242").exists()
    assert kit.visible_ids(e2, "c") == list(range(10))


def test_delete_with_a_partition_deletes_only_there(engine: Engine, kit) -> None:
    engine.create_collection("default", "c", kit.basic_schema())
    engine.create_partition("default", "c", "p1")
    engine.insert("default", "c", kit.make_rows([1, 2]))
    engine.insert("default", "c", kit.make_rows([10, 11]), partition="p1")
    engine.flush("default", ["c"])
    engine.insert("default", "c", kit.make_rows([12]), partition="p1")
    engine.delete("default", "c", "id in [1, 10, 12]", partition="p1")
    assert kit.visible_ids(engine, "c") == [1, 2, 11]
    assert engine.partition_row_count("default", "c", "p1") == 1
    engine.delete("default", "c", "id in [1]")  # no partition: everywhere
    assert kit.visible_ids(engine, "c") == [2, 11]


def test_upsert_on_auto_id_replaces_the_key_with_a_generated_one(
    open_engine: Callable[..., Engine], kit
) -> None:
    e = open_engine(compaction_min_segments=None)
    e.create_collection("default", "c", kit.basic_schema(auto_id=True))
    ids = e.insert("default", "c", kit.make_rows(range(3), with_ids=False)).ids.to_pylist()
    result = e.upsert("default", "c", kit.make_rows([ids[0], 777]))
    new_ids = result.ids.to_pylist()
    assert result.count == 2 and not set(new_ids) & {ids[0], 777, *ids}
    expected = sorted([ids[1], ids[2], *new_ids])
    assert kit.visible_ids(e, "c") == expected
    e.close()
    assert kit.visible_ids(open_engine(compaction_min_segments=None), "c") == expected


def test_background_compaction_merges_small_segments_and_stops_on_close(
    open_engine: Callable[..., Engine], kit
) -> None:
    e = open_engine(compaction_min_segments=3, compaction_interval_s=0.05)
    e.create_collection("default", "c", kit.basic_schema())
    for start in range(0, 30, 10):
        e.insert("default", "c", kit.make_rows(range(start, start + 10)))
        e.flush("default", ["c"])
    coll = e._resolve("default", "c")
    deadline = time.monotonic() + 60
    while len(coll.snapshot().sealed) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(coll.snapshot().sealed) == 1
    assert kit.visible_ids(e, "c") == list(range(30))
    thread = e._background._thread if e._background is not None else None
    e.close()
    assert thread is not None and not thread.is_alive()


def test_restart_replays_rows_logged_before_a_field_was_added(
    open_engine: Callable[..., Engine], kit
) -> None:
    e = open_engine(compaction_min_segments=None)
    e.create_collection("default", "c", kit.basic_schema())
    e.insert("default", "c", kit.make_rows(range(5)))
    e.add_collection_field("default", "c", FieldSchema("extra", DataType.INT64, nullable=True))
    e.insert("default", "c", kit.make_rows(range(5, 8)))
    e.close()
    e2 = open_engine(compaction_min_segments=None)
    table = kit.visible_table(e2, "default", "c")
    assert sorted(table.column("id").to_pylist()) == list(range(8))
    assert table.column("extra").null_count == 8
    e2.flush("default", ["c"])
    assert kit.visible_ids(e2, "c") == list(range(8))
