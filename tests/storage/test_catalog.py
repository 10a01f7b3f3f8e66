from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from sheafdb.errors import (
    AliasAlreadyExists,
    AliasCollectionNameConflict,
    AliasNotFound,
    CollectionNotFound,
    DatabaseNotFound,
    IndexNotFound,
    ParameterInvalid,
    PartitionNotFound,
    SheafError,
)
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.catalog import (
    DEFAULT_DATABASE,
    Catalog,
    CollectionRecord,
    DroppedData,
    LoadConfigRecord,
    SegmentIndexRecord,
    SegmentRecord,
    SqliteCatalog,
    open_catalog,
)
from sheafdb.storage.segment_files import ColumnFile

from .storage_tables import schemas_and_tables

SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, field_id=100, is_primary=True, auto_id=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, field_id=101, dim=8),
        FieldSchema(
            "tags", DataType.ARRAY, field_id=102, element_type=DataType.VARCHAR, max_length=9, nullable=True
        ),
    ),
    description="d",
    enable_dynamic_field=True,
)


OpenCatalog = Callable[[], Catalog]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "meta" / "catalog.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.cluster)])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> OpenCatalog:
    """Opens the test's catalog (again, after a close): every test runs on both backends."""
    if request.param == "sqlite":
        return lambda: open_catalog(None, tmp_path / "meta")
    url = request.getfixturevalue("postgres_database")
    return lambda: open_catalog(url, tmp_path)


@pytest.fixture
def catalog(reopen: OpenCatalog) -> Iterator[Catalog]:
    cat = reopen()
    yield cat
    cat.close()


def make_collection(
    catalog: Catalog, name: str = "c", db: str = DEFAULT_DATABASE, ts: int = 10
) -> CollectionRecord:
    return catalog.create_collection(
        db, name, SCHEMA, partition_names=["_default", "p1"], properties={"k": "v"},
        consistency_level=2, shards_num=1, created_ts=ts, created_utc_ms=1234,
    )  # fmt: skip


def make_segment(
    catalog: Catalog, coll: CollectionRecord, partition: str = "_default", ts: int = 20
) -> SegmentRecord:
    segment_id = catalog.allocate_id()
    part = catalog.get_partition(coll.collection_id, partition)
    directory = f"c/{coll.collection_id}/s/{segment_id}"
    segment = SegmentRecord(
        segment_id=segment_id, collection_id=coll.collection_id, partition_id=part.partition_id, num_rows=3,
        directory=directory, columns={"id": ColumnFile("id", f"{directory}/id.arrow", 99)},
        wal_lsn=7, max_ts=ts, deletes_path=None,
    )  # fmt: skip
    catalog.add_segment(segment)
    return segment


def test_default_database_always_exists(catalog: Catalog) -> None:
    assert [d.name for d in catalog.list_databases()] == [DEFAULT_DATABASE]
    with pytest.raises(ParameterInvalid):
        catalog.drop_database(DEFAULT_DATABASE)


def test_database_crud(catalog: Catalog) -> None:
    db = catalog.create_database("db1", {"a": "1"}, created_ts=3)
    assert catalog.get_database("db1") == db
    with pytest.raises(ParameterInvalid):
        catalog.create_database("db1", {}, created_ts=4)
    assert catalog.set_database_properties("db1", {"b": "2"}).properties == {"b": "2"}
    make_collection(catalog, db="db1")
    with pytest.raises(SheafError, match="not empty"):
        catalog.drop_database("db1")
    catalog.drop_collection(catalog.get_collection("db1", "c").collection_id)
    catalog.drop_database("db1")
    with pytest.raises(DatabaseNotFound, match=r"database not found\[database=db1\]"):
        catalog.get_database("db1")
    with pytest.raises(DatabaseNotFound):
        catalog.get_collection("db1", "c")


def test_collection_crud(catalog: Catalog) -> None:
    coll = make_collection(catalog)
    assert coll.schema == SCHEMA and coll.properties == {"k": "v"} and coll.created_utc_ms == 1234
    assert catalog.get_collection(DEFAULT_DATABASE, "c") == coll
    assert catalog.get_collection_by_id(coll.collection_id) == coll
    assert [p.name for p in catalog.list_partitions(coll.collection_id)] == ["_default", "p1"]
    with pytest.raises(ParameterInvalid):
        make_collection(catalog)
    with pytest.raises(CollectionNotFound, match=r"collection not found\[database=default\]\[collection=x\]"):
        catalog.get_collection(DEFAULT_DATABASE, "x")

    new_schema = SCHEMA.with_field(FieldSchema("extra", DataType.INT32, field_id=103, nullable=True))
    updated = catalog.update_collection(coll.collection_id, schema=new_schema, properties={"k2": "v2"})
    assert updated.schema == new_schema and updated.properties == {"k2": "v2"}

    catalog.create_database("other", {}, created_ts=11)
    renamed = catalog.rename_collection(coll.collection_id, "other", "c2")
    assert (renamed.db_name, renamed.name) == ("other", "c2")
    assert catalog.list_collections(DEFAULT_DATABASE) == []
    assert catalog.list_collections("other") == [renamed]
    assert catalog.list_collections() == [renamed]


def test_partitions(catalog: Catalog) -> None:
    coll = make_collection(catalog)
    p2 = catalog.create_partition(coll.collection_id, "p2", created_ts=12)
    assert catalog.get_partition(coll.collection_id, "p2") == p2
    with pytest.raises(ParameterInvalid):
        catalog.create_partition(coll.collection_id, "p2", created_ts=13)
    segment = make_segment(catalog, coll, "p2")
    dropped = catalog.drop_partition(p2.partition_id)
    assert dropped.segments == (segment,)
    assert catalog.list_segments(coll.collection_id) == []
    with pytest.raises(PartitionNotFound, match=r"partition not found\[partition=p2\]"):
        catalog.get_partition(coll.collection_id, "p2")


def test_indexes_and_segment_indexes(catalog: Catalog) -> None:
    coll = make_collection(catalog)
    index = catalog.create_index(coll.collection_id, "vec", "vec_idx", {"index_type": "HNSW"}, created_ts=14)
    assert catalog.list_indexes(coll.collection_id) == [index]
    with pytest.raises(ParameterInvalid):
        catalog.create_index(coll.collection_id, "vec", "vec_idx", {}, created_ts=15)
    assert catalog.update_index_params(index.index_id, {"mmap.enabled": "true"}).params == {
        "mmap.enabled": "true"
    }
    segment = make_segment(catalog, coll)
    built = SegmentIndexRecord(segment.segment_id, index.index_id, "vec", "c/idx/1.faiss", 512)
    catalog.add_segment_index(built)
    assert catalog.list_segment_indexes(coll.collection_id) == [built]
    dropped = catalog.drop_index(index.index_id)
    assert dropped.segment_indexes == (built,) and dropped.segments == ()
    assert catalog.list_segment_indexes(coll.collection_id) == []
    with pytest.raises(IndexNotFound):
        catalog.drop_index(index.index_id)
    # An index built for a segment or index that is gone is refused, not recorded.
    with pytest.raises(IndexNotFound):
        catalog.add_segment_index(built)


def test_aliases(catalog: Catalog) -> None:
    a = make_collection(catalog, "a")
    b = make_collection(catalog, "b")
    catalog.create_alias(DEFAULT_DATABASE, "al", a.collection_id)
    assert catalog.resolve_alias(DEFAULT_DATABASE, "al") == a.collection_id
    assert catalog.resolve_collection(DEFAULT_DATABASE, "al") == a
    assert catalog.resolve_collection(DEFAULT_DATABASE, "b") == b
    with pytest.raises(AliasAlreadyExists):
        catalog.create_alias(DEFAULT_DATABASE, "al", b.collection_id)
    with pytest.raises(AliasCollectionNameConflict):
        catalog.create_alias(DEFAULT_DATABASE, "b", a.collection_id)
    with pytest.raises(AliasCollectionNameConflict):
        make_collection(catalog, "al")
    catalog.alter_alias(DEFAULT_DATABASE, "al", b.collection_id)
    assert [x.alias for x in catalog.list_aliases(DEFAULT_DATABASE, b.collection_id)] == ["al"]
    assert catalog.list_aliases(DEFAULT_DATABASE, a.collection_id) == []
    catalog.drop_alias(DEFAULT_DATABASE, "al")
    assert catalog.resolve_alias(DEFAULT_DATABASE, "al") is None
    with pytest.raises(AliasNotFound):
        catalog.drop_alias(DEFAULT_DATABASE, "al")
    with pytest.raises(AliasNotFound):
        catalog.alter_alias(DEFAULT_DATABASE, "al", a.collection_id)


def test_load_configs(catalog: Catalog) -> None:
    coll = make_collection(catalog)
    assert catalog.get_load_config(coll.collection_id) is None
    config = LoadConfigRecord(coll.collection_id, ("p1",), ("id", "vec"), True, 1)
    catalog.set_load_config(config)
    assert catalog.get_load_config(coll.collection_id) == config
    assert catalog.list_load_configs() == [config]
    catalog.clear_load_config(coll.collection_id)
    assert catalog.list_load_configs() == []


def test_segments_replace_is_atomic(catalog: Catalog) -> None:
    coll = make_collection(catalog)
    s1, s2 = make_segment(catalog, coll), make_segment(catalog, coll)
    catalog.set_segment_deletes(s1.segment_id, "c/d/1.arrow")
    merged = SegmentRecord(
        segment_id=catalog.allocate_id(), collection_id=coll.collection_id, partition_id=s1.partition_id,
        num_rows=6, directory="c/m", columns={}, wal_lsn=9, max_ts=30,
    )  # fmt: skip
    # A new segment whose id collides fails after the deletes ran: the whole call is undone.
    with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError, not a SheafError
        catalog.replace_segments([s1.segment_id], s2)
    assert [s.segment_id for s in catalog.list_segments(coll.collection_id)] == [s1.segment_id, s2.segment_id]
    dropped = catalog.replace_segments([s1.segment_id, s2.segment_id], merged)
    assert {s.segment_id for s in dropped.segments} == {s1.segment_id, s2.segment_id}
    assert next(s for s in dropped.segments if s.segment_id == s1.segment_id).deletes_path == "c/d/1.arrow"
    assert catalog.list_segments(coll.collection_id) == [merged]
    with pytest.raises(ParameterInvalid):
        catalog.replace_segments([s1.segment_id], None)
    # Nothing replaced: a plain add; a merge into nothing: a plain removal.
    added = make_segment(catalog, coll)
    catalog.replace_segments([added.segment_id], None)
    assert catalog.replace_segments([], added) == DroppedData()
    assert catalog.list_segments(coll.collection_id) == [merged, added]


def test_drop_collection_cascades(catalog: Catalog) -> None:
    coll = make_collection(catalog)
    keep = make_collection(catalog, "keep")
    index = catalog.create_index(coll.collection_id, "vec", "i", {}, created_ts=14)
    segment = make_segment(catalog, coll)
    kept_segment = make_segment(catalog, keep)
    built = SegmentIndexRecord(segment.segment_id, index.index_id, "vec", "idx", 1)
    catalog.add_segment_index(built)
    catalog.create_alias(DEFAULT_DATABASE, "al", coll.collection_id)
    catalog.set_load_config(LoadConfigRecord(coll.collection_id))
    dropped = catalog.drop_collection(coll.collection_id)
    assert dropped.segments == (segment,) and dropped.segment_indexes == (built,)
    assert catalog.list_collections() == [keep]
    assert catalog.list_segments(coll.collection_id) == []
    assert catalog.list_indexes(coll.collection_id) == []
    assert catalog.list_aliases(DEFAULT_DATABASE) == []
    assert catalog.get_load_config(coll.collection_id) is None
    assert catalog.list_segments(keep.collection_id) == [kept_segment]
    with pytest.raises(CollectionNotFound):
        catalog.drop_collection(coll.collection_id)
    # The name is free again.
    make_collection(catalog)


def test_failed_create_leaves_nothing(catalog: Catalog) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the driver cannot bind the second partition name
        catalog.create_collection(
            DEFAULT_DATABASE, "c", SCHEMA, partition_names=["_default", object()],  # type: ignore[list-item]
            properties={}, consistency_level=2, shards_num=1, created_ts=99,
        )  # fmt: skip
    assert catalog.list_collections() == []
    assert catalog.max_timestamp() == 0
    with pytest.raises(DatabaseNotFound):
        make_collection(catalog, db="nope")
    assert catalog.list_collections() == []


def test_everything_persists_across_reopen(reopen: OpenCatalog) -> None:
    first = reopen()
    coll = make_collection(first, ts=40)
    index = first.create_index(coll.collection_id, "vec", "i", {"metric_type": "L2"}, created_ts=41)
    segment = make_segment(first, coll, ts=55)
    first.create_alias(DEFAULT_DATABASE, "al", coll.collection_id)
    first.set_load_config(LoadConfigRecord(coll.collection_id, (), ("id",), False, 1))
    first.create_database("db2", {"x": "y"}, created_ts=42)
    last_id = first.allocate_id()
    identity = first.identity()
    first.close()

    second = reopen()
    try:
        assert second.get_collection(DEFAULT_DATABASE, "c") == coll
        assert second.list_indexes(coll.collection_id) == [index]
        assert second.list_segments(coll.collection_id) == [segment]
        assert second.resolve_alias(DEFAULT_DATABASE, "al") == coll.collection_id
        assert second.get_load_config(coll.collection_id) == LoadConfigRecord(coll.collection_id, (), ("id",))
        assert second.get_database("db2").properties == {"x": "y"}
        assert second.max_timestamp() == 55
        assert second.allocate_id() > last_id
        assert second.identity() == identity  # drawn once, when the catalog was made
    finally:
        second.close()


def test_ids_are_unique_and_increasing(catalog: Catalog) -> None:
    ids = [catalog.allocate_id() for _ in range(5)] + list(catalog.allocate_ids(5))
    coll = make_collection(catalog)
    ids += [coll.collection_id] + [p.partition_id for p in catalog.list_partitions(coll.collection_id)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(0 < i < 2**63 for i in ids)


def test_max_timestamp_only_grows(catalog: Catalog) -> None:
    catalog.note_timestamp(100)
    catalog.note_timestamp(50)
    assert catalog.max_timestamp() == 100
    make_collection(catalog, ts=70)
    assert catalog.max_timestamp() == 100


def test_sqlite_runs_in_wal_mode_with_full_sync(path: Path) -> None:
    SqliteCatalog(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_concurrent_creates_from_many_threads(catalog: Catalog) -> None:
    def create(t: int) -> None:
        for i in range(5):
            make_collection(catalog, f"c{t}_{i}")

    threads = [threading.Thread(target=create, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    collections = catalog.list_collections()
    assert len(collections) == 20
    ids = [c.collection_id for c in collections] + [
        p.partition_id for c in collections for p in catalog.list_partitions(c.collection_id)
    ]
    assert len(set(ids)) == len(ids) == 60


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=schemas_and_tables(max_rows=0))
def test_every_schema_round_trips_through_the_catalog(reopen: OpenCatalog, data: tuple) -> None:
    schema, _ = data
    cat = reopen()
    created = cat.create_collection(
        DEFAULT_DATABASE, "c", schema, partition_names=["_default"], properties={"p": "1"},
        consistency_level=0, shards_num=2, created_ts=1,
    )  # fmt: skip
    cat.close()
    reopened = reopen()
    try:
        assert reopened.get_collection(DEFAULT_DATABASE, "c") == created
        assert created.schema == schema
    finally:
        # The same catalog serves every example: leave it empty for the next.
        reopened.drop_collection(created.collection_id)
        reopened.close()


@pytest.mark.cluster
def test_postgres_catalog_is_shared_and_readers_cannot_write(tmp_path: Path, postgres_database: str) -> None:
    writer = open_catalog(postgres_database, tmp_path)
    second = open_catalog(postgres_database, tmp_path)  # a standby: who writes is the lease's matter
    reader = open_catalog(postgres_database, tmp_path, read_only=True)
    try:
        coll = make_collection(writer)
        assert reader.get_collection(DEFAULT_DATABASE, "c") == coll
        assert second.get_collection_by_id(coll.collection_id) == coll
        with pytest.raises(Exception, match="read-only transaction"):
            make_collection(reader, "d")
        assert [c.name for c in writer.list_collections()] == ["c"]
    finally:
        for cat in (writer, second, reader):
            cat.close()


def test_unknown_catalog_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown catalog URL"):
        open_catalog("mysql://x", tmp_path)


def test_resource_groups_and_replica_placements_round_trip(reopen: OpenCatalog) -> None:
    from sheafdb.storage.resource_group_rows import ResourceGroupRecord

    cat = reopen()
    coll = make_collection(cat)
    cat.save_resource_groups([ResourceGroupRecord("rg", {"requests": 1, "limits": 1}, (1,))])
    cat.save_resource_groups([ResourceGroupRecord("rg", {"requests": 0, "limits": 2}, ())])  # replaced
    cat.set_replica_group(coll.collection_id, 77, "rg")
    cat.set_replica_group(coll.collection_id, 77, "other")
    cat.close()
    cat = reopen()
    assert cat.list_resource_groups() == [ResourceGroupRecord("rg", {"requests": 0, "limits": 2}, ())]
    assert cat.list_replica_groups() == {coll.collection_id: (77, "other")}
    cat.drop_collection(coll.collection_id)
    assert cat.list_replica_groups() == {}  # the placement goes with its collection
    cat.drop_resource_group("rg")
    assert cat.list_resource_groups() == []
    cat.close()
