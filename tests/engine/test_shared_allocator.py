"""Two writer engines on one PostgreSQL catalog, each writing its own collection at the same
time (what writers owning different collections do): the auto ids and the write timestamps
they hand out never collide, because both come from the catalog (allocate_ids, and the shared
timestamp oracle, engine/write/timestamp_source.py); a writer that opens later recovers both
collections whole and stamps above everything written before."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState, QueryRequest

DB = "default"
BATCHES = 30
ROWS = 20


@pytest.mark.cluster
def test_two_writers_never_share_an_id_or_a_timestamp(tmp_path: Path, postgres_database: str, kit) -> None:  # type: ignore[no-untyped-def]
    def engine(name: str) -> Engine:
        return Engine(EngineConfig(tmp_path / name, catalog_url=postgres_database, restore_loads=False))

    first = engine("a")
    for name in ("a", "b"):
        first.create_collection(DB, name, kit.basic_schema(auto_id=True))
        first.create_index(DB, name, "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
    second = engine("b")
    acked: dict[str, list[tuple[list[int], int]]] = {"a": [], "b": []}
    try:

        def write(owner: Engine, name: str) -> None:
            for batch in range(BATCHES):
                result = owner.insert(DB, name, kit.make_rows(range(ROWS), with_ids=False, seed=batch))
                acked[name].append((result.ids.to_pylist(), result.timestamp))

        threads = [
            threading.Thread(target=write, args=(first, "a")),
            threading.Thread(target=write, args=(second, "b")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        second.close()
        first.close()
    ids = {name: [i for batch, _ in acked[name] for i in batch] for name in acked}
    timestamps = [ts for name in acked for _, ts in acked[name]]
    assert len(ids["a"]) == len(ids["b"]) == BATCHES * ROWS
    assert not set(ids["a"]) & set(ids["b"])
    assert len(set(ids["a"] + ids["b"])) == 2 * BATCHES * ROWS
    assert len(set(timestamps)) == len(timestamps) == 2 * BATCHES
    for name in acked:
        mine = [ts for _, ts in acked[name]]
        assert mine == sorted(mine)

    successor = engine("c")
    try:
        for name in ("a", "b"):
            successor.load_collection(DB, name)
            assert successor.wait_for_load(DB, name, timeout=60) is LoadState.LOADED
            got = successor.query(
                DB, QueryRequest(name, filter="id >= 0", output_fields=("id",), limit=16384)
            )
            assert sorted(got.table.column("id").to_pylist()) == sorted(ids[name])
        later = successor.insert(DB, "a", kit.make_rows(range(1), with_ids=False))
        assert later.timestamp > max(timestamps)
    finally:
        successor.close()


@pytest.mark.cluster
def test_alloc_timestamp_is_issued_by_the_catalog_and_a_reply_stamp_is_not_below_a_write(
    tmp_path: Path, postgres_database: str, kit
) -> None:  # type: ignore[no-untyped-def]
    first = Engine(EngineConfig(tmp_path / "a", catalog_url=postgres_database, restore_loads=False))
    second = Engine(EngineConfig(tmp_path / "b", catalog_url=postgres_database, restore_loads=False))
    try:
        first.create_collection(DB, "c", kit.basic_schema())
        issued = [first.issue_timestamp(), second.issue_timestamp(), first.issue_timestamp()]
        # Unique across writers, increasing per writer (each issues from its own reserved block).
        assert len(set(issued)) == 3 and issued[0] < issued[2]
        written = first.insert(DB, "c", kit.make_rows(range(3))).timestamp
        assert written > issued[-1]
        assert first.allocate_timestamp() >= written  # a read reply's stamp
        assert first.issue_timestamp() > written
    finally:
        second.close()
        first.close()
