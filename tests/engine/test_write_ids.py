"""Relayed writes applied once (engine/write/write_ids.py) on a real PostgreSQL log: a retried
insert or upsert whose first try was logged answers with that try's keys and writes nothing,
on the same writer and on one that took over; an untagged or never-logged write writes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState, MutationResult, QueryRequest
from sheafdb.engine.write.write_ids import WriteTag

pytestmark = pytest.mark.cluster

DB = "default"


def _engine(tmp_path: Path, url: str, name: str) -> Engine:
    return Engine(EngineConfig(tmp_path / name, catalog_url=url, restore_loads=False))


def _keys(engine: Engine, collection: str) -> list[int]:
    engine.load_collection(DB, collection)
    assert engine.wait_for_load(DB, collection, timeout=60) is LoadState.LOADED
    got = engine.query(DB, QueryRequest(collection, filter="id >= 0", output_fields=("id",), limit=16384))
    return sorted(got.table.column("id").to_pylist())


def _same(a: MutationResult, b: MutationResult) -> bool:
    return (a.ids.to_pylist(), a.count, a.timestamp) == (b.ids.to_pylist(), b.count, b.timestamp)


def test_a_retried_insert_is_answered_from_the_log_by_the_writer_that_took_over(
    tmp_path: Path, postgres_database: str, kit
) -> None:  # type: ignore[no-untyped-def]
    first = _engine(tmp_path, postgres_database, "a")
    try:
        first.create_collection(DB, "c", kit.basic_schema(auto_id=True))
        first.create_index(DB, "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
        # The first try commits, but its answer never reaches the proxy (the writer dies).
        acked = first.insert(DB, "c", kit.make_rows(range(5), with_ids=False), tag=WriteTag("call-1", False))
    finally:
        first.close()
    successor = _engine(tmp_path, postgres_database, "b")
    try:
        retried = successor.insert(
            DB, "c", kit.make_rows(range(5), with_ids=False), tag=WriteTag("call-1", True)
        )
        assert _same(retried, acked)
        # A retry whose first try never got logged (the writer died before) writes.
        fresh = successor.insert(
            DB, "c", kit.make_rows(range(3), with_ids=False), tag=WriteTag("call-2", True)
        )
        assert fresh.count == 3 and not set(fresh.ids.to_pylist()) & set(acked.ids.to_pylist())
        # Without a tag (a client's own call) every call writes.
        successor.insert(DB, "c", kit.make_rows(range(2), with_ids=False))
        keys = _keys(successor, "c")
        assert len(keys) == 10 and set(acked.ids.to_pylist()) <= set(keys)
    finally:
        successor.close()


def test_tries_of_one_call_on_one_writer_write_once_whichever_comes_first(
    tmp_path: Path, postgres_database: str, kit
) -> None:  # type: ignore[no-untyped-def]
    engine = _engine(tmp_path, postgres_database, "a")
    try:
        engine.create_collection(DB, "c", kit.basic_schema(auto_id=True))
        engine.create_index(DB, "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
        rows = kit.make_rows(range(4), with_ids=False)
        # A retry that overtook its first try, then the first try: one write, one answer.
        retry = engine.insert(DB, "c", rows, tag=WriteTag("call-1", True))
        assert _same(engine.insert(DB, "c", rows, tag=WriteTag("call-1", False)), retry)
        # Tries racing on threads.
        results: list[MutationResult] = []
        tries = [
            threading.Thread(
                target=lambda retried=retried: results.append(
                    engine.insert(DB, "c", rows, tag=WriteTag("call-2", retried))
                )
            )
            for retried in (False, True, True)
        ]
        for thread in tries:
            thread.start()
        for thread in tries:
            thread.join()
        assert len(results) == 3 and all(_same(r, results[0]) for r in results)
        # An upsert of an auto_id collection makes new keys: its retry keeps the first ones.
        upserted = engine.upsert(DB, "c", kit.make_rows(retry.ids.to_pylist()), tag=WriteTag("call-3", False))
        again = engine.upsert(DB, "c", kit.make_rows(retry.ids.to_pylist()), tag=WriteTag("call-3", True))
        assert _same(again, upserted)
        assert len(_keys(engine, "c")) == 8
    finally:
        engine.close()
