"""The writer election (engine/write/writer_lease.py) on a real catalog, and an engine fenced by
its lease on a real PostgreSQL: once another writer took over, its writes fail with
WriterFenced and commit nothing, and the new writer recovers every acknowledged row. A writer
whose commit answer was lost (a real relay loses it) steps down, and its successor serves what
PostgreSQL holds."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState, QueryRequest
from sheafdb.engine.write.writer_lease import WriterElection, advertised_address
from sheafdb.errors import CommitOutcomeUnknown, MetaStoreUnavailable, UnexpectedError, WriterFenced
from sheafdb.storage.catalog import CATALOG_FILE, open_catalog
from sheafdb.storage.lease_rows import WRITER_LEASE
from tests.net_faults import Relay

DB = "default"


def _election(tmp_path: Path, holder: str, **kwargs: object) -> WriterElection:
    return WriterElection(open_catalog(None, tmp_path), holder, **kwargs)  # type: ignore[arg-type]


def test_a_standby_waits_and_takes_over_when_the_writer_gives_the_lease_up(tmp_path: Path) -> None:
    first = _election(tmp_path, "a:1", ttl_s=60)
    lease = first.wait_until_leader()
    assert lease is not None and lease.token == 1
    second = _election(tmp_path, "b:1", ttl_s=60)
    took: list[object] = []
    waiting = threading.Thread(target=lambda: took.append(second.wait_until_leader()))
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive() and not took  # a standby while the first holds it
    first.close()  # gives it up at once
    waiting.join(60)
    assert not waiting.is_alive()
    (taken,) = took
    assert taken is not None and taken == second.lease
    assert (second.lease.holder, second.lease.token) == ("b:1", 2)
    second.close()


def test_a_standby_asked_to_stop_returns_none(tmp_path: Path) -> None:
    first = _election(tmp_path, "a:1", ttl_s=60)
    assert first.wait_until_leader() is not None
    second = _election(tmp_path, "b:1", ttl_s=60)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    assert second.wait_until_leader(cancel) is None
    second.close()
    first.close()


def test_a_writer_whose_lease_was_taken_sets_lost(tmp_path: Path) -> None:
    lost = threading.Event()
    election = _election(tmp_path, "a:1", ttl_s=0.4, on_lost=lost.set)
    assert election.wait_until_leader() is not None
    # Another server took the lease over while this one could not renew (a pause).
    with sqlite3.connect(tmp_path / CATALOG_FILE) as raw:
        raw.execute("UPDATE leases SET holder = 'b:1', token = token + 1 WHERE name = ?", (WRITER_LEASE,))
    assert lost.wait(60) and election.lost.is_set()
    election.close()
    current = open_catalog(None, tmp_path).current_lease(WRITER_LEASE)
    assert current is not None and current.holder == "b:1"  # a lost lease is not given up


def test_the_advertised_address_names_this_machine_for_a_wildcard_bind() -> None:
    assert advertised_address("10.0.0.5", 19530) == "10.0.0.5:19530"
    host, port = advertised_address("0.0.0.0", 19530).rsplit(":", 1)
    assert host not in ("", "0.0.0.0") and port == "19530"


@pytest.mark.cluster
def test_a_deposed_engine_is_fenced_and_the_new_one_has_every_acknowledged_row(
    tmp_path: Path, postgres_database: str, kit
) -> None:  # type: ignore[no-untyped-def]
    leases = open_catalog(postgres_database, tmp_path)
    old = leases.try_acquire_lease(WRITER_LEASE, "old:1", ttl_s=0)  # never renewed: expires at once
    assert old is not None

    def config(name: str, lease: object) -> EngineConfig:
        return EngineConfig(
            tmp_path / name, catalog_url=postgres_database, writer_lease=lease, restore_loads=False
        )  # type: ignore[arg-type]

    engine = Engine(config("old", old))
    try:
        engine.create_collection(DB, "c", kit.basic_schema())
        engine.create_index(DB, "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
        engine.insert(DB, "c", kit.make_rows(range(10)))
        new = leases.try_acquire_lease(WRITER_LEASE, "new:1", ttl_s=60)
        assert new is not None
        with pytest.raises(WriterFenced) as fenced:
            engine.insert(DB, "c", kit.make_rows(range(10, 20)))
        assert fenced.value.code == 2  # Milvus's "service unavailable": retry elsewhere
        with pytest.raises(WriterFenced):
            engine.create_collection(DB, "d", kit.basic_schema())
    finally:
        engine.close()
    successor = Engine(config("new", new))
    try:
        assert [c.name for c in successor._catalog.list_collections()] == ["c"]
        successor.load_collection(DB, "c")
        assert successor.wait_for_load(DB, "c", timeout=60) is LoadState.LOADED
        got = successor.query(DB, QueryRequest("c", output_fields=("count(*)",)))
        assert got.table.column(0)[0].as_py() == 10
    finally:
        successor.close()
        leases.close()


@pytest.mark.cluster
def test_without_shared_objects_a_writer_on_another_data_dir_is_refused(
    tmp_path: Path, postgres_database: str, kit
) -> None:  # type: ignore[no-untyped-def]
    """The log is in PostgreSQL, but without --objects the segment files are in the data dir
    that sealed them: another data dir would serve a collection without its sealed rows."""
    engine = Engine(EngineConfig(tmp_path / "a", catalog_url=postgres_database, restore_loads=False))
    try:
        engine.create_collection(DB, "c", kit.basic_schema())
        engine.insert(DB, "c", kit.make_rows(range(10)))
        engine.flush(DB, ["c"])
    finally:
        engine.close()
    with pytest.raises(UnexpectedError, match="segment files of collection c are not in this data dir"):
        Engine(EngineConfig(tmp_path / "b", catalog_url=postgres_database, restore_loads=False))
    # Its own data dir still opens, with the log's rows and the sealed ones.
    again = Engine(EngineConfig(tmp_path / "a", catalog_url=postgres_database, restore_loads=False))
    again.close()


@pytest.mark.cluster
def test_a_writer_whose_renewal_hangs_steps_down_when_its_lease_ends(
    tmp_path: Path, postgres_database: str
) -> None:
    """A network that neither answers nor resets holds a renewal for as long as TCP waits: the
    writer must still stop once its lease ran out, since a standby may take it then."""
    url = psycopg.conninfo.conninfo_to_dict(postgres_database)
    link = Relay((str(url["host"]), int(str(url["port"]))))
    open_catalog(postgres_database, tmp_path).close()  # the tables, made on a direct connection
    lost = threading.Event()
    catalog = open_catalog(postgres_database.replace(f":{url['port']}/", f":{link.port}/"), tmp_path)
    election = WriterElection(catalog, "a:1", ttl_s=1.0, on_lost=lost.set)
    try:
        assert election.wait_until_leader() is not None
        link.freeze()
        assert lost.wait(60) and election.lost.is_set()
    finally:
        link.cut()  # the hung renewal fails now, and gives the catalog back
        election.close()
        link.close()


@pytest.mark.cluster
@pytest.mark.parametrize("lost", ["log append", "catalog write"])
def test_a_writer_whose_commit_answer_was_lost_steps_down_and_its_successor_serves_the_truth(
    tmp_path: Path, postgres_database: str, kit, lost: str
) -> None:  # type: ignore[no-untyped-def]
    url = psycopg.conninfo.conninfo_to_dict(postgres_database)
    link = Relay((str(url["host"]), int(str(url["port"]))))
    relayed = postgres_database.replace(f":{url['port']}/", f":{link.port}/")
    open_catalog(postgres_database, tmp_path).close()  # the tables, made on a direct connection
    stepped_down = threading.Event()
    election = WriterElection(
        open_catalog(postgres_database, tmp_path), "a:1", ttl_s=60, on_lost=stepped_down.set
    )
    lease = election.wait_until_leader()
    assert lease is not None
    engine = Engine(
        EngineConfig(
            tmp_path / "old",
            catalog_url=relayed,
            writer_lease=lease,
            on_commit_unknown=election.step_down,
            restore_loads=False,
        )
    )
    try:
        engine.create_collection(DB, "c", kit.basic_schema())
        engine.create_index(DB, "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
        engine.insert(DB, "c", kit.make_rows(range(10)))
        if lost == "log append":
            link.lose_reply(b"INSERT INTO log_records", b"INSERT 0 1")
            with pytest.raises(MetaStoreUnavailable) as unanswered:
                engine.insert(DB, "c", kit.make_rows(range(10, 20)))
            assert not isinstance(unanswered.value, CommitOutcomeUnknown)
            assert not election.lost.is_set()  # unknown until settled: it may not have committed
            # The next append settles it: committed, unacknowledged.
            with pytest.raises(CommitOutcomeUnknown):
                engine.insert(DB, "c", kit.make_rows(range(20, 30)))
            expected = (["c"], 20)
        else:
            link.lose_reply(b"INSERT INTO collections", b"COMMIT\x00")
            with pytest.raises(CommitOutcomeUnknown) as unknown:
                engine.create_collection(DB, "d", kit.basic_schema())
            assert unknown.value.code == 2
            expected = (["c", "d"], 10)
        assert stepped_down.wait(60) and election.lost.is_set()
        # The lease was resigned: this writer's token is fenced at once.
        with pytest.raises(WriterFenced):
            engine.create_collection(DB, "e", kit.basic_schema())
    finally:
        engine.close()
        election.close()
        link.close()
    standby = WriterElection(open_catalog(postgres_database, tmp_path), "b:1", ttl_s=60)
    new = standby.wait_until_leader()  # at once: the lease was given up, not left to expire
    assert new is not None and new.token == lease.token + 2
    successor = Engine(
        EngineConfig(tmp_path / "new", catalog_url=postgres_database, writer_lease=new, restore_loads=False)
    )
    try:
        assert sorted(c.name for c in successor._catalog.list_collections()) == expected[0]
        successor.load_collection(DB, "c")
        assert successor.wait_for_load(DB, "c", timeout=60) is LoadState.LOADED
        got = successor.query(DB, QueryRequest("c", output_fields=("count(*)",)))
        assert got.table.column(0)[0].as_py() == expected[1]  # the lost append's rows, once
    finally:
        successor.close()
        standby.close()
