"""The cluster coordinator follows its collections' logs (engine/write/log_following.py): a
cluster-mode Engine on a real PostgreSQL applies what another process appends to a
collection's log (as its log owner does), counts it, seals it on flush and trims the log, seals
in the background past seal_bytes, and a coordinator restarted on the same database has it all.
With real ShardWriters (the log owners): the Engine's inserts, upserts and deletes are its
attached writer's, and its own records (truncate, bulk import) take the log lease over and are
applied once; a drop takes the lease from its owner and deletes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sheafdb.engine.collection import Collection
from sheafdb.engine.engine import Engine
from sheafdb.engine.imports.jobs import ImportJobState
from sheafdb.engine.read.visibility import delete_records
from sheafdb.engine.write.shard_writer import ShardWriter
from sheafdb.engine.write.timestamp_source import writer_oracle
from sheafdb.engine.write.write_validation import with_timestamp
from sheafdb.engine.write.writes import Writer
from sheafdb.errors import NotLogOwner, ServiceUnavailable, WriterFenced
from sheafdb.storage.catalog import open_catalog
from sheafdb.storage.lease_rows import log_lease_name
from sheafdb.storage.pg_log import PgLogs
from tests.engine.conftest import DIM
from tests.engine.log_owners import open_log_owner

pytestmark = pytest.mark.cluster

DB = "default"
DEADLINE_S = 60.0

OpenCoordinator = Callable[..., Engine]


@pytest.fixture
def open_coordinator(open_engine: Callable[..., Engine], postgres_database: str) -> OpenCoordinator:
    """Opens cluster-mode engines on the database (reopen after close = a restart); segment
    files stay in the data dir (no object store)."""

    def _open(**overrides: object) -> Engine:
        settings: dict[str, object] = {"fsync": False, "compaction_min_segments": None, **overrides}
        return open_engine(catalog_url=postgres_database, cluster=True, **settings)

    return _open


class LogAppender:
    """Another process's appends to a collection's log, as its log owner makes them: the
    real write path (writes.Writer) over the collection as the catalog has it, its records
    appended to a PgLogs store of its own and applied nowhere."""

    def __init__(self, url: str, root: Path, name: str) -> None:
        self.catalog = open_catalog(url, root)
        self.logs = PgLogs(url)
        record = self.catalog.get_collection(DB, name)
        parts = {p.name: p.partition_id for p in self.catalog.list_partitions(record.collection_id)}
        self.coll = Collection(record, parts, (), None)
        self.log = log = self.logs.open(record.collection_id)
        self.writer = Writer(
            writer_oracle(self.catalog, url, 0),
            self.catalog.allocate_ids,
            1 << 60,
            seal=lambda coll: None,
            is_loaded=lambda coll: False,
            query=lambda coll, request: pa.table({}),
            write=lambda coll, kind, pid, ts, batch, write_id: log.append(kind, pid, ts, batch, write_id),
        )

    def close(self) -> None:
        self.logs.close()
        self.catalog.close()


@pytest.fixture
def appenders(tmp_path: Path, postgres_database: str) -> Iterator[Callable[[str], LogAppender]]:
    made: list[LogAppender] = []

    def _make(name: str) -> LogAppender:
        made.append(LogAppender(postgres_database, tmp_path / f"owner{len(made)}", name))
        return made[-1]

    yield _make
    for appender in made:
        appender.close()


@pytest.fixture
def open_writer(tmp_path: Path, postgres_database: str) -> Iterator[Callable[[str], ShardWriter]]:
    """Log owner members ("host:port"), each with its own connections and ownership loop."""
    opened: list[ShardWriter] = []

    def open_one(holder: str) -> ShardWriter:
        opened.append(open_log_owner(postgres_database, tmp_path / holder.replace(":", "-"), holder))
        return opened[-1]

    yield open_one
    for writer in opened:
        writer.close()


def log_records(url: str, collection_id: int) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM log_records WHERE collection_id = %s", (collection_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def test_the_coordinator_applies_what_the_log_owner_appends_and_flush_seals_it(
    open_coordinator: OpenCoordinator, appenders: Callable[[str], LogAppender], postgres_database: str, kit
) -> None:  # type: ignore[no-untyped-def]
    engine = open_coordinator()
    engine.create_collection(DB, "c", kit.basic_schema())
    with pytest.raises(ServiceUnavailable):  # no log writer attached: nothing appends here
        engine.insert(DB, "c", kit.make_rows(range(3)))
    owner = appenders("c")
    owner.writer.insert(owner.coll, kit.make_rows(range(10)), "")
    owner.writer.upsert(owner.coll, kit.make_rows(range(8, 12), seed=1), "")
    owner.writer.delete(owner.coll, "id in [2, 3, 4]", None, "")
    assert engine.partition_row_count(DB, "c", "_default") == 9
    assert engine.collection_row_count(DB, "c") == 9
    assert kit.visible_ids(engine, "c") == [0, 1, 5, 6, 7, 8, 9, 10, 11]

    cid = engine.describe_collection(DB, "c").collection_id
    assert log_records(postgres_database, cid) == 3
    engine.flush(DB, ["c"])
    assert engine.maintenance.persistent_segments(DB, "c")
    assert log_records(postgres_database, cid) == 0  # sealed, then trimmed
    owner.writer.delete(owner.coll, "id in [0]", None, "")
    assert engine.collection_row_count(DB, "c") == 8
    assert kit.visible_ids(engine, "c") == [1, 5, 6, 7, 8, 9, 10, 11]


def test_the_background_thread_follows_and_seals_past_seal_bytes(
    open_coordinator: OpenCoordinator, appenders: Callable[[str], LogAppender], kit
) -> None:  # type: ignore[no-untyped-def]
    engine = open_coordinator(seal_bytes=2048)
    engine.create_collection(DB, "c", kit.basic_schema())
    owner = appenders("c")
    owner.writer.insert(owner.coll, kit.make_rows(range(200)), "")
    # Nothing is asked of the engine: its own thread catches up and seals.
    wait_for(lambda: bool(engine.maintenance.persistent_segments(DB, "c")), "a seal past seal_bytes")
    assert sum(s.num_rows for s in engine.maintenance.persistent_segments(DB, "c")) == 200


def test_a_restarted_coordinator_has_what_it_followed_sealed_or_not_and_what_came_after(
    open_coordinator: OpenCoordinator, appenders: Callable[[str], LogAppender], kit
) -> None:  # type: ignore[no-untyped-def]
    engine = open_coordinator()
    engine.create_collection(DB, "c", kit.basic_schema())
    owner = appenders("c")
    owner.writer.insert(owner.coll, kit.make_rows(range(10)), "")
    engine.flush(DB, ["c"])
    owner.writer.insert(owner.coll, kit.make_rows(range(10, 20)), "")
    assert engine.collection_row_count(DB, "c") == 20
    engine.close()  # its following thread stops with it
    assert not [t for t in threading.enumerate() if t.name == "sheafdb-log-following"]
    owner.writer.delete(owner.coll, "id in [0, 15]", None, "")  # while no coordinator runs
    restarted = open_coordinator()
    assert restarted.collection_row_count(DB, "c") == 18
    owner.writer.insert(owner.coll, kit.make_rows(range(20, 25)), "")
    assert restarted.collection_row_count(DB, "c") == 23
    restarted.flush(DB, ["c"])
    assert kit.visible_ids(restarted, "c") == [i for i in range(25) if i not in (0, 15)]


def test_a_drop_takes_the_log_lease_from_its_owner_and_deletes_it(
    open_coordinator: OpenCoordinator, postgres_database: str, tmp_path: Path, kit
) -> None:  # type: ignore[no-untyped-def]
    engine = open_coordinator()
    engine.create_collection(DB, "c", kit.basic_schema())
    cid = engine.describe_collection(DB, "c").collection_id
    catalog = open_catalog(postgres_database, tmp_path / "owner")
    logs = PgLogs(postgres_database)
    try:
        lease = catalog.try_acquire_lease(log_lease_name(cid), "owner:1", ttl_s=600)
        assert lease is not None
        log = logs.open(cid, fence=lease)
        log.append("delete", 0, 1, delete_records(pa.array([1]), 1))
        engine.drop_collection(DB, "c")
        assert catalog.current_lease(log_lease_name(cid)) is None
        assert log_records(postgres_database, cid) == 0
        with pytest.raises(WriterFenced):  # the owner appends nothing after the drop
            log.append("delete", 0, 2, delete_records(pa.array([2]), 2))
    finally:
        logs.close()
        catalog.close()


def _parquet(path: Path, ids: range) -> None:
    vectors = np.random.default_rng(ids.start).random((len(ids), DIM), dtype=np.float32)
    pq.write_table(
        pa.table(
            {
                "id": pa.array(ids, type=pa.int64()),
                "vec": pa.array(list(vectors), type=pa.list_(pa.float32())),
                "tag": pa.array([f"t{i % 5}" for i in ids]),
            }
        ),
        path,
    )


def test_writes_go_to_the_log_owner_and_the_coordinators_own_records_take_its_lease_over(
    open_coordinator: OpenCoordinator,
    open_writer: Callable[[str], ShardWriter],
    postgres_database: str,
    tmp_path: Path,
    kit,
) -> None:  # type: ignore[no-untyped-def]
    files = tmp_path / "files"
    files.mkdir()
    _parquet(files / "a.parquet", range(1000, 1050))
    engine = open_coordinator(import_root=files)
    engine.create_collection(DB, "c", kit.basic_schema())
    cid = engine.describe_collection(DB, "c").collection_id
    owner = open_writer("127.0.0.1:2")  # another member: it owns the log
    owner.ownership.take(cid)
    engine.attach_log_writer(open_writer("127.0.0.1:1"))  # the coordinator's process's member
    with pytest.raises(NotLogOwner):  # the proxy sends writes to the owner
        engine.insert(DB, "c", kit.make_rows(range(3)))
    owner.insert(DB, "c", kit.make_rows(range(10)))
    owner.upsert(DB, "c", kit.make_rows(range(8, 12), seed=1))
    owner.delete(DB, "c", "id in [0]")
    assert engine.collection_row_count(DB, "c") == 11

    # The truncate record is appended by the coordinator's member, which takes the lease.
    engine.truncate_collection(DB, "c")
    assert engine.collection_row_count(DB, "c") == 0
    with pytest.raises(NotLogOwner):  # fenced: the lease is the coordinator's member's now
        owner.insert(DB, "c", kit.make_rows(range(20, 22)))
    engine.insert(DB, "c", kit.make_rows(range(100, 106)))
    engine.upsert(DB, "c", kit.make_rows(range(104, 108), seed=2))
    engine.delete(DB, "c", "id in [100]")
    job = engine.imports.submit(DB, "c", "", [["a.parquet"]], {})
    assert engine.imports.wait(job, DEADLINE_S).state is ImportJobState.Completed
    expected = [*range(101, 108), *range(1000, 1050)]
    assert engine.collection_row_count(DB, "c") == len(expected)
    assert kit.visible_ids(engine, "c") == expected

    engine.close()  # a coordinator restarted on the same database replays the log
    restarted = open_coordinator(import_root=files)
    assert restarted.collection_row_count(DB, "c") == len(expected)
    restarted.flush(DB, ["c"])
    assert kit.visible_ids(restarted, "c") == expected
    assert log_records(postgres_database, cid) == 0


def test_rows_appended_while_the_coordinator_seals_are_sealed_once_each(
    open_coordinator: OpenCoordinator, open_writer: Callable[[str], ShardWriter], kit
) -> None:  # type: ignore[no-untyped-def]
    engine = open_coordinator(seal_bytes=4096)  # its thread seals too, beside the flushes
    engine.create_collection(DB, "c", kit.basic_schema())
    owner = open_writer("127.0.0.1:2")
    owner.ownership.take(engine.describe_collection(DB, "c").collection_id)
    batches, per = 30, 20
    failures: list[BaseException] = []

    def append_all() -> None:
        try:
            for b in range(batches):
                owner.insert(DB, "c", kit.make_rows(range(b * per, (b + 1) * per), seed=b))
                if b % 3 == 2:
                    owner.delete(DB, "c", f"id in [{b * per}]")
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    appender = threading.Thread(target=append_all)
    appender.start()
    while appender.is_alive():
        engine.flush(DB, ["c"])
    appender.join()
    assert not failures
    engine.flush(DB, ["c"])
    deleted = {b * per for b in range(batches) if b % 3 == 2}
    expected = [i for i in range(batches * per) if i not in deleted]
    assert kit.visible_ids(engine, "c") == expected
    segments = engine.maintenance.persistent_segments(DB, "c")
    assert sum(s.num_rows for s in segments) == batches * per  # every row sealed once
    assert engine.collection_row_count(DB, "c") == len(expected)


def test_a_flush_all_gets_flushed_when_a_row_stamped_before_it_is_applied_after_its_seal(
    open_coordinator: OpenCoordinator, appenders: Callable[[str], LogAppender], kit
) -> None:  # type: ignore[no-untyped-def]
    engine = open_coordinator()
    engine.create_collection(DB, "c", kit.basic_schema())
    owner = appenders("c")
    owner.writer.insert(owner.coll, kit.make_rows(range(5)), "")
    flush_ts = engine.maintenance.flush_all(None)
    # A write in flight during the flush-all (another process's timestamp block is a little
    # behind): stamped before it, in the log after its seal.
    late = with_timestamp(kit.make_rows(range(5, 8)), flush_ts - 1)
    owner.log.append("insert", owner.coll.partitions["_default"], flush_ts - 1, late)
    assert engine.collection_row_count(DB, "c") == 8
    assert engine.maintenance.flushed(flush_ts, None)
    assert sum(s.num_rows for s in engine.maintenance.persistent_segments(DB, "c")) == 8
