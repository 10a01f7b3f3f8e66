from __future__ import annotations

import pytest

from sheafdb.engine.load.load_plan import check_indexes, plan_load, resolve_load_fields
from sheafdb.engine.snapshot import SealedSegment, SegmentIndexFile
from sheafdb.errors import FieldNotFound, IndexNotFound, ParameterInvalid, SheafError
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.records import IndexRecord
from sheafdb.storage.segment_files import ColumnFile

SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=4),
        FieldSchema("vec2", DataType.FLOAT_VECTOR, dim=4),
        FieldSchema("title", DataType.VARCHAR, max_length=64),
    ),
    enable_dynamic_field=True,
)


def index(field: str) -> IndexRecord:
    return IndexRecord(1, 1, field, field, {"index_type": "FLAT", "metric_type": "L2"}, 0)


def test_empty_list_loads_every_field_and_the_dynamic_field() -> None:
    assert resolve_load_fields(SCHEMA, (), False) == ("id", "vec", "vec2", "title", "$meta")
    assert resolve_load_fields(SCHEMA, (), True) == ("id", "vec", "vec2", "title")


def test_partial_list_in_schema_order_with_dynamic_appended_unless_skipped() -> None:
    assert resolve_load_fields(SCHEMA, ("vec", "id"), False) == ("id", "vec", "$meta")
    assert resolve_load_fields(SCHEMA, ("vec", "id"), True) == ("id", "vec")


def test_primary_key_is_required() -> None:
    with pytest.raises(ParameterInvalid) as err:
        resolve_load_fields(SCHEMA, ("vec", "title"), True)
    assert err.value.code == 1100
    assert err.value.message == (
        "load field list [vec title] does not contain primary key field id: invalid parameter"
    )


def test_a_vector_field_is_required() -> None:
    with pytest.raises(ParameterInvalid) as err:
        resolve_load_fields(SCHEMA, ("id", "title"), True)
    assert err.value.message == "load field list [id title] does not contain vector field: invalid parameter"


def test_partition_key_is_required() -> None:
    fields = (*SCHEMA.fields, FieldSchema("tenant", DataType.INT64, is_partition_key=True))
    schema = CollectionSchema(fields)
    with pytest.raises(ParameterInvalid, match="does not contain partition key field tenant"):
        resolve_load_fields(schema, ("id", "vec"), True)


def test_unknown_field_is_field_not_found() -> None:
    with pytest.raises(FieldNotFound) as err:
        resolve_load_fields(SCHEMA, ("id", "vec", "nope"), True)
    assert err.value.code == 1700


def test_no_index_at_all_is_700() -> None:
    with pytest.raises(IndexNotFound) as err:
        check_indexes("c1", SCHEMA, (), ("id", "vec"), for_partitions=False)
    assert (err.value.code, err.value.message) == (700, "index not found[collection=c1]")


def test_loaded_vector_without_index_is_65535_listing_the_fields() -> None:
    with pytest.raises(SheafError) as err:
        check_indexes("c1", SCHEMA, (index("title"),), ("id", "vec", "vec2"), for_partitions=False)
    assert err.value.code == 65535
    assert err.value.message == "there is no vector index on field: [vec vec2], please create index firstly"
    # Partial load of the indexed vector only: fine although vec2 has no index.
    check_indexes("c1", SCHEMA, (index("vec"),), ("id", "vec"), for_partitions=False)


def test_load_partitions_needs_a_vector_index() -> None:
    with pytest.raises(SheafError, match="there is no vector index on collection: c1"):
        check_indexes("c1", SCHEMA, (index("title"),), ("id",), for_partitions=True)


def test_plan_counts_loaded_columns_indexes_and_pk_lookup_of_the_chosen_partitions() -> None:
    cols = {
        n: ColumnFile(n, f"s/{n}", size)
        for n, size in [("id", 80), ("vec", 160), ("title", 500), ("__ts", 80)]
    }
    idx = {"vec": SegmentIndexFile("vec", "vec", "s/vec.index", 1000, {})}
    seg_a = SealedSegment(1, partition_id=10, num_rows=10, columns=cols, index_files=idx)
    seg_b = SealedSegment(2, partition_id=20, num_rows=10, columns=cols)
    plan = plan_load([seg_a, seg_b], frozenset({10}), ("id", "vec"), "id")
    kinds = {(i.kind, i.name): i.nbytes for i in plan.items}
    assert kinds == {
        ("field", "id"): 80,
        ("field", "vec"): 160,
        ("field", "__ts"): 80,
        ("index", "vec"): 1000,
        ("pk_lookup", "id"): 10 * 16 + 80,
    }
    assert plan.bytes_by_partition() == {10: plan.total_bytes}
