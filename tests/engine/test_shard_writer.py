"""A log owner's write path (engine/write/shard_writer.py) on a real PostgreSQL catalog and log:
inserts, upserts and deletes are appended with their kind, keys, partition and timestamp and
kept nowhere else; a collection whose log lease another process holds, or an append the
log's fence refuses after a takeover, is ``NotLogOwner``; DDL committed by another process
is seen by the next write; a retried relayed write is answered from the log; the
coordinator's own append takes the lease over first."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from sheafdb.api.cluster.worker_client import GrpcWorkerClient
from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.write.shard_writer import ShardWriter
from sheafdb.engine.write.write_ids import WriteTag
from sheafdb.errors import CollectionNotFound, CollectionNotLoaded, NotLogOwner, PartitionNotFound
from sheafdb.schema import DataType, FieldSchema
from sheafdb.storage.catalog import Catalog, open_catalog
from sheafdb.storage.lease_rows import log_lease_name
from tests.engine.log_owners import logged_records

pytestmark = pytest.mark.cluster  # PostgreSQL (the CI's cluster step installs it)

DB = "default"
# Long: no ownership round runs during a test unless it asks for one (rounds every ttl / 4).
TTL_S = 60.0


@pytest.fixture
def coordinator(tmp_path: Path, postgres_database: str) -> Iterator[Engine]:
    """The process that makes collections (DDL); it writes no rows here."""
    engine = Engine(
        EngineConfig(tmp_path / "coordinator", catalog_url=postgres_database, restore_loads=False)
    )
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture
def catalog(tmp_path: Path, postgres_database: str) -> Iterator[Catalog]:
    """Another process's view of the catalog (its leases, its records)."""
    opened = open_catalog(postgres_database, tmp_path)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def open_writer(tmp_path: Path, postgres_database: str) -> Iterator[Callable[..., ShardWriter]]:
    opened: list[ShardWriter] = []

    def open_one(holder: str, ttl_s: float = TTL_S) -> ShardWriter:
        writer = ShardWriter.open(
            postgres_database,
            tmp_path / holder.replace(":", "-"),
            holder,
            ttl_s=ttl_s,
            worker_client=lambda catalog: GrpcWorkerClient(lambda: str(catalog.cluster_secret())),
        )
        opened.append(writer)
        return writer

    yield open_one
    for writer in opened:
        writer.close()


def _cid(catalog: Catalog, name: str) -> int:
    return catalog.get_collection(DB, name).collection_id


def test_writes_land_in_the_log_with_their_kind_keys_partition_and_timestamp(
    coordinator: Engine,
    catalog: Catalog,
    open_writer: Callable[..., ShardWriter],
    postgres_database: str,
    kit,
) -> None:  # type: ignore[no-untyped-def]
    coordinator.create_collection(DB, "c", kit.basic_schema(auto_id=True))
    coordinator.create_partition(DB, "c", "p1")
    cid = _cid(catalog, "c")
    writer = open_writer("127.0.0.1:1")
    writer.ownership.take(cid)

    inserted = writer.insert(DB, "c", kit.make_rows(range(4), with_ids=False))
    into_p1 = writer.insert(DB, "c", kit.make_rows(range(2), with_ids=False), "p1")
    upserted = writer.upsert(DB, "c", kit.make_rows(inserted.ids.to_pylist()[:2]))
    deleted = writer.delete(DB, "c", f"id in {inserted.ids.to_pylist()[2:]}")

    records = logged_records(postgres_database, cid)
    assert [r.kind for r in records] == ["insert", "insert", "upsert", "delete"]
    partitions = {p.name: p.partition_id for p in catalog.list_partitions(cid)}
    assert records[0].partition_id == partitions["_default"] and records[1].partition_id == partitions["p1"]
    for record, result in zip(records, (inserted, into_p1, upserted, deleted), strict=True):
        assert record.timestamp == result.timestamp
    assert records[0].batch.column("id").to_pylist() == inserted.ids.to_pylist()
    assert records[1].batch.column("id").to_pylist() == into_p1.ids.to_pylist()
    # An upsert of an auto_id collection: new keys for the rows, the given ones replaced.
    assert records[2].batch.column("id").to_pylist() == upserted.ids.to_pylist()
    assert records[2].batch.column("__replaced_pk").to_pylist() == inserted.ids.to_pylist()[:2]
    assert sorted(records[3].batch.column("pk").to_pylist()) == sorted(inserted.ids.to_pylist()[2:])
    # Unique ids and increasing timestamps across the calls.
    ids = inserted.ids.to_pylist() + into_p1.ids.to_pylist() + upserted.ids.to_pylist()
    assert len(set(ids)) == len(ids)
    stamps = [r.timestamp for r in records]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # Same refusals as the one-server write path.
    with pytest.raises(PartitionNotFound):
        writer.insert(DB, "c", kit.make_rows(range(1), with_ids=False), "nope")
    with pytest.raises(CollectionNotFound):
        writer.insert(DB, "missing", kit.make_rows(range(1), with_ids=False))
    # A general filter reads the matching keys through the query workers: loaded ones only.
    with pytest.raises(CollectionNotLoaded):
        writer.delete(DB, "c", "tag == 't1'")
    with pytest.raises(CollectionNotLoaded):  # a partial upsert reads the stored rows so too
        writer.upsert(DB, "c", kit.make_rows(inserted.ids.to_pylist()[:1]), partial_update=True)
    assert len(logged_records(postgres_database, cid)) == 4


def test_a_collection_whose_log_another_process_owns_is_refused(
    coordinator: Engine,
    catalog: Catalog,
    open_writer: Callable[..., ShardWriter],
    postgres_database: str,
    kit,
) -> None:  # type: ignore[no-untyped-def]
    coordinator.create_collection(DB, "c", kit.basic_schema())
    cid = _cid(catalog, "c")
    catalog.take_lease(log_lease_name(cid), "127.0.0.1:2", TTL_S)
    writer = open_writer("127.0.0.1:1")
    assert writer.ownership.lease_of(cid) is None
    with pytest.raises(NotLogOwner) as refused:
        writer.insert(DB, "c", kit.make_rows(range(3)))
    assert refused.value.retriable and refused.value.code == 2
    with pytest.raises(NotLogOwner):
        writer.delete(DB, "c", "id in [1]")
    assert logged_records(postgres_database, cid) == []
    # Its schema is still answered (the edge types a request's columns by it first).
    assert writer.collection_schema(DB, "c").primary_field.name == "id"


def test_an_append_after_another_member_took_the_lease_is_refused_by_the_fence(
    coordinator: Engine,
    catalog: Catalog,
    open_writer: Callable[..., ShardWriter],
    postgres_database: str,
    kit,
) -> None:  # type: ignore[no-untyped-def]
    coordinator.create_collection(DB, "c", kit.basic_schema())
    cid = _cid(catalog, "c")
    writer = open_writer("127.0.0.1:1")
    writer.ownership.take(cid)
    writer.insert(DB, "c", kit.make_rows(range(3)))
    # Another member steals the lease; this one's ownership has not noticed yet (next round
    # in ttl / 4): the log's fence refuses the append.
    catalog.take_lease(log_lease_name(cid), "127.0.0.1:2", TTL_S)
    with pytest.raises(NotLogOwner):
        writer.insert(DB, "c", kit.make_rows(range(3, 6)))
    with pytest.raises(NotLogOwner):
        writer.delete(DB, "c", "id in [1]")
    assert [r.kind for r in logged_records(postgres_database, cid)] == ["insert"]


def test_ddl_committed_by_another_process_is_seen_by_the_next_write(
    coordinator: Engine,
    catalog: Catalog,
    open_writer: Callable[..., ShardWriter],
    postgres_database: str,
    kit,
) -> None:  # type: ignore[no-untyped-def]
    coordinator.create_collection(DB, "c", kit.basic_schema())
    cid = _cid(catalog, "c")
    writer = open_writer("127.0.0.1:1")
    writer.ownership.take(cid)
    writer.insert(DB, "c", kit.make_rows(range(2)))
    with pytest.raises(PartitionNotFound):
        writer.insert(DB, "c", kit.make_rows(range(2, 4)), "p2")

    coordinator.create_partition(DB, "c", "p2")
    coordinator.add_collection_field(DB, "c", FieldSchema("extra", DataType.INT64, nullable=True))
    coordinator.create_alias(DB, "c", "nickname")
    rows = kit.make_rows(range(2, 4)).append_column("extra", pa.array([7, 8], type=pa.int64()))
    writer.insert(DB, "nickname", rows, "p2")
    extra = writer.collection_schema(DB, "c").field("extra")
    assert extra is not None and extra.dtype is DataType.INT64

    records = logged_records(postgres_database, cid)
    assert records[-1].partition_id == catalog.get_partition(cid, "p2").partition_id
    assert records[-1].batch.column("extra").to_pylist() == [7, 8]
    # A dropped collection is gone for the next write too.
    coordinator.drop_alias(DB, "nickname")
    coordinator.drop_collection(DB, "c")
    with pytest.raises(CollectionNotFound):
        writer.insert(DB, "c", kit.make_rows(range(1)))


def test_a_retried_write_is_answered_from_the_log_by_the_member_that_took_over(
    coordinator: Engine,
    catalog: Catalog,
    open_writer: Callable[..., ShardWriter],
    postgres_database: str,
    kit,
) -> None:  # type: ignore[no-untyped-def]
    coordinator.create_collection(DB, "c", kit.basic_schema(auto_id=True))
    cid = _cid(catalog, "c")
    first = open_writer("127.0.0.1:1")
    first.ownership.take(cid)
    acked = first.insert(DB, "c", kit.make_rows(range(5), with_ids=False), tag=WriteTag("call-1", False))

    successor = open_writer("127.0.0.1:2")
    successor.ownership.take(cid)  # the first one's answer was lost; the proxy retries here
    retried = successor.insert(DB, "c", kit.make_rows(range(5), with_ids=False), tag=WriteTag("call-1", True))
    assert (retried.ids.to_pylist(), retried.count, retried.timestamp) == (
        acked.ids.to_pylist(),
        acked.count,
        acked.timestamp,
    )
    fresh = successor.insert(DB, "c", kit.make_rows(range(3), with_ids=False), tag=WriteTag("call-2", True))
    assert fresh.count == 3 and not set(fresh.ids.to_pylist()) & set(acked.ids.to_pylist())
    assert [r.batch.num_rows for r in logged_records(postgres_database, cid)] == [5, 3]


def test_the_coordinators_own_append_takes_the_lease_over_first(
    coordinator: Engine,
    catalog: Catalog,
    open_writer: Callable[..., ShardWriter],
    postgres_database: str,
    kit,
) -> None:  # type: ignore[no-untyped-def]
    coordinator.create_collection(DB, "c", kit.basic_schema())
    cid = _cid(catalog, "c")
    owner = open_writer("127.0.0.1:1")
    owner.ownership.take(cid)
    owner.insert(DB, "c", kit.make_rows(range(2)))

    coordinating = open_writer("127.0.0.1:9")
    assert coordinating.ownership.lease_of(cid) is None
    empty = pa.table({"id": pa.array([], type=pa.int64())})
    lsn = coordinating.append(cid, "truncate", 0, coordinator.issue_timestamp(), empty)
    lease = coordinating.ownership.lease_of(cid)
    assert lease is not None and catalog.current_lease(log_lease_name(cid)) == lease
    records = logged_records(postgres_database, cid)
    assert [(r.kind, r.lsn) for r in records] == [("insert", 1), ("truncate", lsn)] and lsn == 2
    # The owner it took the lease from is fenced.
    with pytest.raises(NotLogOwner):
        owner.insert(DB, "c", kit.make_rows(range(2, 4)))


def test_a_write_right_after_a_create_waits_for_the_members_to_adopt_the_log(
    coordinator: Engine,
    catalog: Catalog,
    open_writer: Callable[..., ShardWriter],
    postgres_database: str,
    kit,
) -> None:  # type: ignore[no-untyped-def]
    writer = open_writer("127.0.0.1:1", ttl_s=8.0)  # rounds every 2 s, the first one at the start
    coordinator.create_collection(DB, "c", kit.basic_schema())
    cid = _cid(catalog, "c")
    assert writer.insert(DB, "c", kit.make_rows(range(3))).count == 3
    lease = writer.ownership.lease_of(cid)
    assert lease is not None and lease.holder == "127.0.0.1:1"
    assert [r.kind for r in logged_records(postgres_database, cid)] == ["insert"]
