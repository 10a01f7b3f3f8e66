from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from sheafdb.engine.engine import Engine
from sheafdb.engine.models import IndexState
from sheafdb.errors import (
    AliasAlreadyExists,
    AliasCollectionNameConflict,
    AliasNotFound,
    CollectionNotFound,
    ParameterInvalid,
    ParameterMissing,
)
from sheafdb.schema import CollectionSchema, DataType, FieldSchema


def test_field_ids_and_default_partition(engine: Engine, kit) -> None:
    engine.create_collection("default", "c", kit.basic_schema())
    info = engine.describe_collection("default", "c")
    assert [f.field_id for f in info.schema.fields] == [100, 101, 102]
    assert [p.name for p in engine.list_partitions("default", "c")] == ["_default"]


def test_create_twice_same_schema_is_noop_different_is_refused(engine: Engine, kit) -> None:
    engine.create_collection("default", "c", kit.basic_schema())
    engine.create_collection("default", "c", kit.basic_schema())
    with pytest.raises(
        ParameterInvalid, match="create duplicate collection with different parameters, collection: c"
    ):
        engine.create_collection("default", "c", kit.basic_schema(dynamic=True))


@pytest.mark.parametrize(
    ("name", "text"),
    [("1abc", "first character"), ("a-b", "only contain"), ("x" * 256, "length"), ("", "empty")],
)
def test_collection_name_rules(engine: Engine, kit, name: str, text: str) -> None:
    with pytest.raises(ParameterInvalid, match=text) as err:
        engine.create_collection("default", name, kit.basic_schema())
    assert err.value.code == 1100


def _schema(*fields: FieldSchema) -> CollectionSchema:
    return CollectionSchema(fields=fields)


PK = FieldSchema("id", DataType.INT64, is_primary=True)
VEC = FieldSchema("v", DataType.FLOAT_VECTOR, dim=4)


@pytest.mark.parametrize(
    ("schema", "text"),
    [
        (_schema(VEC), "primary key is not specified"),
        (_schema(PK, replace(PK, name="id2"), VEC), "more than one primary key"),
        (_schema(FieldSchema("id", DataType.FLOAT, is_primary=True), VEC), "Int64 or VarChar"),
        (_schema(PK, VEC, replace(VEC, name="id")), "duplicated field name"),
        (_schema(PK, FieldSchema("b", DataType.BINARY_VECTOR, dim=12)), "multiple of 8"),
        (_schema(PK, replace(VEC, dim=0)), "invalid dimension"),
        (_schema(PK, *(replace(VEC, name=f"v{i}") for i in range(11))), "limited to 10"),
        (_schema(PK, *(FieldSchema(f"f{i}", DataType.INT8) for i in range(256))), "limited to 256"),
    ],
)
def test_schema_rules(engine: Engine, schema: CollectionSchema, text: str) -> None:
    with pytest.raises(ParameterInvalid, match=text):
        engine.create_collection("default", "c", schema)
    assert not engine.has_collection("default", "c")


def test_missing_max_length_is_a_missing_parameter(engine: Engine) -> None:
    with pytest.raises(ParameterMissing) as err:
        engine.create_collection("default", "c", _schema(PK, VEC, FieldSchema("s", DataType.VARCHAR)))
    assert err.value.code == 1101
    assert err.value.message == (
        "type param(max_length) should be specified for the field(s) of collection c: missing parameter"
    )


def test_drop_missing_is_success_describe_missing_is_not_found(engine: Engine) -> None:
    engine.drop_collection("default", "nope")
    with pytest.raises(CollectionNotFound) as err:
        engine.describe_collection("default", "nope")
    assert err.value.code == 100


def test_partition_key_partitions_and_routing(engine: Engine, kit) -> None:
    schema = kit.basic_schema()
    schema = replace(schema, fields=(*schema.fields, FieldSchema("k", DataType.INT64, is_partition_key=True)))
    engine.create_collection("default", "c", schema, num_partitions=4)
    assert [p.name for p in engine.list_partitions("default", "c")] == [f"_default_{i}" for i in range(4)]
    rows = kit.make_rows(range(20))
    import pyarrow as pa

    engine.insert("default", "c", rows.append_column("k", pa.array(range(20), pa.int64())))
    counts = [engine.partition_row_count("default", "c", f"_default_{i}") for i in range(4)]
    assert counts == [5, 5, 5, 5]
    with pytest.raises(ParameterInvalid, match="partition key"):
        engine.create_partition("default", "c", "p1")


def test_aliases(engine: Engine, kit) -> None:
    engine.create_collection("default", "c", kit.basic_schema())
    engine.create_collection("default", "d", kit.basic_schema())
    engine.create_alias("default", "c", "a")
    assert engine.describe_alias("default", "a").collection_name == "c"
    engine.insert("default", "a", kit.make_rows(range(3)))
    assert kit.visible_ids(engine, "c") == [0, 1, 2]
    with pytest.raises(AliasAlreadyExists) as e1:
        engine.create_alias("default", "d", "a")
    assert e1.value.code == 1602
    with pytest.raises(AliasCollectionNameConflict) as e2:
        engine.create_alias("default", "c", "d")
    assert e2.value.code == 1601
    engine.alter_alias("default", "d", "a")
    assert engine.describe_alias("default", "a").collection_name == "d"
    with pytest.raises(ParameterInvalid, match="via alias"):
        engine.drop_collection("default", "a")
    engine.drop_alias("default", "a")
    with pytest.raises(AliasNotFound) as e3:
        engine.describe_alias("default", "a")
    assert e3.value.code == 1600


def test_indexes_build_for_sealed_segments(engine: Engine, kit) -> None:
    engine.create_collection("default", "c", kit.basic_schema())
    engine.insert("default", "c", kit.make_rows(range(50)))
    engine.flush("default", ["c"])
    engine.insert("default", "c", kit.make_rows(range(50, 60)))
    engine.create_index("default", "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
    engine.create_index("default", "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
    with pytest.raises(ParameterInvalid, match="at most one distinct index is allowed per field"):
        engine.create_index("default", "c", "vec", "", {"index_type": "HNSW", "metric_type": "L2"})
    assert engine.wait_for_index_builds(timeout=60)
    (info,) = engine.describe_indexes("default", "c")
    assert info.index_name == "vec"
    assert info.state is IndexState.FINISHED
    assert (info.total_rows, info.indexed_rows, info.pending_index_rows) == (60, 50, 0)
    seg = engine._resolve("default", "c").snapshot().sealed[0]
    assert "vec" in seg.index_files


def test_metadata_survives_restart(open_engine: Callable[..., Engine], kit) -> None:
    e = open_engine()
    e.create_collection("default", "c", kit.basic_schema())
    e.create_partition("default", "c", "p1")
    e.create_alias("default", "c", "al")
    e.insert("default", "c", kit.make_rows(range(5)), partition="p1")
    e.flush("default", ["c"])
    e.create_index("default", "c", "vec", "idx", {"index_type": "FLAT", "metric_type": "IP"})
    assert e.wait_for_index_builds(timeout=60)
    e.close()
    e2 = open_engine()
    assert e2.has_partition("default", "c", "p1")
    assert e2.describe_alias("default", "al").collection_name == "c"
    (info,) = e2.describe_indexes("default", "c")
    assert info.index_name == "idx" and info.state is IndexState.FINISHED
    assert e2.partition_row_count("default", "c", "p1") == 5
    e2.drop_partition("default", "c", "p1")
    assert kit.visible_ids(e2, "c") == []


def test_rename_to_another_database_needs_the_aliases_dropped(engine: Engine, kit) -> None:
    engine.create_database("d1")
    engine.create_collection("default", "c", kit.basic_schema())
    engine.create_alias("default", "c", "al")
    with pytest.raises(ParameterInvalid, match="must drop all aliases of this collection before rename"):
        engine.rename_collection("default", "c", "c", new_db="d1")
    engine.rename_collection("default", "c", "c2")  # same database: the aliases follow
    assert engine.describe_alias("default", "al").collection_name == "c2"
    engine.drop_alias("default", "al")
    engine.rename_collection("default", "c2", "c", new_db="d1")
    assert engine.has_collection("d1", "c")
