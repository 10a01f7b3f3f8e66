"""Collections resolved from memory (engine/names.py) stay right through every DDL path.

The catalog is the durable truth; the engine's name map must answer every (database, name or
alias) exactly as the catalog would, after each create / drop / rename / alias change /
database change, and again after a restart.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState, QueryRequest, SearchRequest
from sheafdb.errors import (
    AliasNotFound,
    CollectionNotFound,
    DatabaseNotFound,
    SheafError,
)
from sheafdb.schema import DataType, FieldSchema

DB = "default"


def _ids(engine: Engine, name: str, db: str = DB) -> list[int]:
    result = engine.query(db, QueryRequest(name, filter="id >= 0", output_fields=("id",)))
    return sorted(result.table.column("id").to_pylist())


def _loaded(engine: Engine, name: str, db: str = DB) -> None:
    engine.create_index(db, name, "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
    engine.load_collection(db, name)
    deadline = time.monotonic() + 30
    while engine.get_load_state(db, name) is not LoadState.LOADED:
        assert time.monotonic() < deadline, "load did not finish"
        time.sleep(0.02)


def _collection(engine: Engine, kit, name: str, ids: range, db: str = DB) -> None:
    engine.create_collection(db, name, kit.basic_schema())
    engine.insert(db, name, kit.make_rows(ids))
    _loaded(engine, name, db)


def test_rename_moves_reads_and_writes_to_the_new_name(engine: Engine, kit) -> None:
    _collection(engine, kit, "c", range(5))
    engine.rename_collection(DB, "c", "d")
    vec = kit.make_rows(range(5)).column("vec").to_pylist()[3]
    hits = engine.search(DB, SearchRequest("d", np.array([vec], dtype=np.float32), 1))
    assert hits.ids.to_pylist() == [3]
    engine.insert(DB, "d", kit.make_rows(range(5, 7)))
    assert _ids(engine, "d") == list(range(7))
    assert engine.describe_collection(DB, "d").name == "d"
    assert engine.get_load_state(DB, "c") is LoadState.NOT_EXIST
    with pytest.raises(CollectionNotFound):
        engine.insert(DB, "c", kit.make_rows(range(1)))
    # The old name is free again and names a different collection.
    engine.create_collection(DB, "c", kit.basic_schema())
    assert engine.collection_row_count(DB, "c") == 0
    assert engine.collection_row_count(DB, "d") == 7


def test_rename_into_another_database(engine: Engine, kit) -> None:
    engine.create_database("other")
    _collection(engine, kit, "c", range(3))
    engine.rename_collection(DB, "c", "e", new_db="other")
    assert _ids(engine, "e", "other") == [0, 1, 2]
    assert engine.describe_collection("other", "e").db_name == "other"
    assert not engine.has_collection(DB, "c")
    assert not engine.has_collection(DB, "e")


def test_alias_create_alter_drop_route_every_read(engine: Engine, kit) -> None:
    _collection(engine, kit, "a1", range(0, 3))
    _collection(engine, kit, "a2", range(100, 103))
    engine.create_alias(DB, "a1", "al")
    assert _ids(engine, "al") == [0, 1, 2]
    assert engine.describe_collection(DB, "a1").aliases == ("al",)
    engine.alter_alias(DB, "a2", "al")
    assert _ids(engine, "al") == [100, 101, 102]
    engine.insert(DB, "al", kit.make_rows(range(103, 104)))
    assert _ids(engine, "a2") == [100, 101, 102, 103]
    assert engine.describe_collection(DB, "a1").aliases == ()
    assert engine.describe_collection(DB, "al").aliases == ("al",)
    assert engine.describe_alias(DB, "al").collection_name == "a2"
    engine.drop_alias(DB, "al")
    assert engine.get_load_state(DB, "al") is LoadState.NOT_EXIST
    with pytest.raises(CollectionNotFound):
        engine.query(DB, QueryRequest("al", filter="id >= 0"))


def test_drop_takes_the_name_and_its_aliases(engine: Engine, kit) -> None:
    _collection(engine, kit, "c", range(3))
    engine.create_alias(DB, "c", "al")
    engine.drop_collection(DB, "c")
    assert engine.get_load_state(DB, "c") is LoadState.NOT_EXIST
    assert engine.get_load_state(DB, "al") is LoadState.NOT_EXIST
    with pytest.raises(CollectionNotFound):
        engine.insert(DB, "c", kit.make_rows(range(1)))
    with pytest.raises(AliasNotFound):
        engine.describe_alias(DB, "al")
    engine.create_collection(DB, "al", kit.basic_schema())  # the alias name is free again
    assert engine.describe_collection(DB, "al").aliases == ()


def test_databases_come_and_go(engine: Engine, kit) -> None:
    with pytest.raises(DatabaseNotFound):
        engine.insert("db2", "c", kit.make_rows(range(1)))
    engine.create_database("db2")
    with pytest.raises(CollectionNotFound):
        engine.insert("db2", "c", kit.make_rows(range(1)))
    engine.create_collection("db2", "c", kit.basic_schema())
    engine.insert("db2", "c", kit.make_rows(range(2)))
    assert engine.collection_row_count("db2", "c") == 2
    assert not engine.has_collection(DB, "c")
    engine.drop_collection("db2", "c")
    engine.drop_database("db2")
    with pytest.raises(DatabaseNotFound):
        engine.has_collection("db2", "c")


def test_schema_and_property_changes_are_seen_at_once(engine: Engine, kit) -> None:
    engine.create_collection(DB, "c", kit.basic_schema())
    engine.add_collection_field(DB, "c", FieldSchema("extra", DataType.INT32, nullable=True))
    assert engine.collection_schema(DB, "c").field("extra") is not None
    engine.alter_collection_properties(DB, "c", {"collection.ttl.seconds": "60"})
    assert engine.describe_collection(DB, "c").properties["collection.ttl.seconds"] == "60"
    engine.create_alias(DB, "c", "al")
    assert engine.collection_schema(DB, "al") is engine.collection_schema(DB, "c")


def test_restart_rebuilds_the_names(open_engine: Callable[..., Engine], kit) -> None:
    engine = open_engine()
    engine.create_database("db2")
    engine.create_collection(DB, "c", kit.basic_schema())
    engine.create_collection("db2", "x", kit.basic_schema())
    engine.insert(DB, "c", kit.make_rows(range(4)))
    engine.rename_collection(DB, "c", "d")
    engine.create_alias(DB, "d", "al")
    engine.create_alias("db2", "x", "xa")
    engine.close()
    engine = open_engine()
    assert engine.collection_row_count(DB, "al") == 4
    assert engine.describe_collection(DB, "d").aliases == ("al",)
    assert engine.describe_alias("db2", "xa").collection_name == "x"
    assert not engine.has_collection(DB, "c")
    engine.drop_alias("db2", "xa")
    engine.drop_collection("db2", "x")
    engine.drop_database("db2")


# -- the map answers as the catalog does, after any sequence of DDL ---------------------------
DATABASES = ("default", "d1")
NAMES = ("a", "b")
_operation = st.tuples(
    st.sampled_from(
        ["create_db", "drop_db", "create", "drop", "rename", "create_alias", "alter_alias", "drop_alias"]
    ),
    st.sampled_from(DATABASES),
    st.sampled_from(NAMES),
    st.sampled_from(NAMES),
    st.sampled_from(DATABASES),
)


def _apply(engine: Engine, kit, op: tuple[str, str, str, str, str]) -> None:
    kind, db, name, other, other_db = op
    actions: dict[str, Callable[[], object]] = {
        "create_db": lambda: engine.create_database(db),
        "drop_db": lambda: engine.drop_database(db),
        "create": lambda: engine.create_collection(db, name, kit.basic_schema()),
        "drop": lambda: engine.drop_collection(db, name),
        "rename": lambda: engine.rename_collection(db, name, other, new_db=other_db),
        "create_alias": lambda: engine.create_alias(db, name, other),
        "alter_alias": lambda: engine.alter_alias(db, name, other),
        "drop_alias": lambda: engine.drop_alias(db, other),
    }
    try:
        actions[kind]()
    except SheafError:
        pass  # refused: the catalog and the map must both be unchanged


def _as_catalog_says(engine: Engine, db: str, name: str) -> object:
    catalog = engine._catalog
    try:
        record = catalog.resolve_collection(db, name)
    except SheafError as e:
        return type(e)
    aliases = tuple(a.alias for a in catalog.list_aliases(record.db_name, record.collection_id))
    return (record.collection_id, record.db_name, record.name, aliases)


def _as_engine_says(engine: Engine, db: str, name: str) -> object:
    try:
        info = engine.describe_collection(db, name)
    except SheafError as e:
        return type(e)
    return (info.collection_id, info.db_name, info.name, info.aliases)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_operation, min_size=1, max_size=20))
def test_map_agrees_with_the_catalog_after_any_ddl(kit, ops: list[tuple[str, str, str, str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = EngineConfig(
            data_dir=Path(tmp), fsync=False, restore_loads=False, compaction_min_segments=None
        )
        engine = Engine(config)
        try:
            for op in ops:
                _apply(engine, kit, op)
                for db in DATABASES:
                    for name in NAMES:
                        assert _as_engine_says(engine, db, name) == _as_catalog_says(engine, db, name), op
        finally:
            engine.close()
        reopened = Engine(config)
        try:
            for db in DATABASES:
                for name in NAMES:
                    assert _as_engine_says(reopened, db, name) == _as_catalog_says(reopened, db, name)
        finally:
            reopened.close()
