"""The insert path's batch-level rules: JSON texts validated in one Arrow parse (same verdict
as a per-row json.loads), a partition-key batch logged as ONE record, the index build thread's
low priority, and the engine's timestamp allocation."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheafdb.engine.collection import ROUTED_PARTITION
from sheafdb.engine.engine import Engine
from sheafdb.engine.write.write_validation import prepare_rows
from sheafdb.errors import ParameterInvalid
from sheafdb.schema import DYNAMIC_FIELD, CollectionSchema, DataType, FieldSchema
from sheafdb.storage.segment_files import read_column

JSON_SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("doc", DataType.JSON, nullable=True),
    ),
    enable_dynamic_field=True,
)


def _prepare(meta: list[str | None], docs: list[str | None] | None = None) -> pa.Table:
    n = len(meta)
    data = {
        "id": pa.array(range(n), pa.int64()),
        "doc": pa.array(docs if docs is not None else [None] * n, pa.string()),
        DYNAMIC_FIELD: pa.array(meta, pa.string()),
    }
    return prepare_rows(JSON_SCHEMA, pa.table(data), primary_keys_given=False, generate_ids=_no_ids)


def _no_ids(count: int) -> pa.Array:
    raise AssertionError("no auto ids here")


def _not_json(literal: str) -> None:
    raise ValueError(f"{literal} is not JSON")


def _python_verdict(texts: list[str | None], require_object: bool) -> bool:
    for text in texts:
        if text is None:
            continue
        try:  # as Go reads JSON: the literals NaN / Infinity are not JSON (issue 14)
            value = json.loads(text, parse_constant=_not_json)
        except ValueError:
            return False
        if require_object and not isinstance(value, dict):
            return False
    return True


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=4)
# Valid objects, texts that are close to valid (fragments of objects), and junk.
texts = st.one_of(
    json_objects.map(json.dumps),
    json_objects.map(lambda o: json.dumps(o, indent=1)),
    json_values.map(json.dumps),
    st.tuples(json_objects.map(json.dumps), st.integers(0, 40)).map(lambda t: t[0][: t[1]]),
    st.sampled_from(['{"a":[1,', '2]} {"b":1}', "{}{}", "{} ", " {}", "", '{"a":1}\n', "[{}]", "{,}"]),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), texts), min_size=1, max_size=8))
def test_dynamic_field_json_verdict_matches_json_loads(batch: list[str | None]) -> None:
    expected = _python_verdict(batch, require_object=True)
    if expected:
        assert _prepare(batch).column(DYNAMIC_FIELD).to_pylist() == batch
    else:
        with pytest.raises(ParameterInvalid):
            _prepare(batch)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), texts), min_size=1, max_size=8))
def test_json_field_verdict_matches_json_loads(batch: list[str | None]) -> None:
    meta = ["{}"] * len(batch)
    if _python_verdict(batch, require_object=False):
        assert _prepare(meta, batch).column("doc").to_pylist() == batch
    else:
        with pytest.raises(ParameterInvalid):
            _prepare(meta, batch)


def test_texts_that_join_into_valid_json_are_refused_with_their_row() -> None:
    # Each half is invalid alone; joined by a newline they would parse as two objects.
    with pytest.raises(ParameterInvalid, match="at row 1 is not valid JSON"):
        _prepare(['{"x":1}', '{"a":[1,', '2]} {"b":1}'])


def test_keys_whose_types_differ_between_rows_are_fine() -> None:
    rows = ['{"a":1}', '{"a":"x"}', '{"a":[1,{"b":null}]}', '{"a":{"c":1.5}}', None, "{}"]
    assert _prepare(rows).column(DYNAMIC_FIELD).to_pylist()[:4] == rows[:4]


def test_oversized_json_is_refused_with_its_row() -> None:
    big = json.dumps({"k": "x" * (64 * 1024)})
    with pytest.raises(ParameterInvalid, match="at row 2 is longer than"):
        _prepare(["{}", "{}", big])


# -- partition key: one log record per batch --------------------------------------------------
KEYED = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=4),
        FieldSchema("tenant", DataType.VARCHAR, max_length=16, is_partition_key=True),
    )
)


def _keyed_rows(ids: range, value: float = 0.0) -> pa.Table:
    vectors = np.full((len(ids), 4), value, dtype=np.float32).ravel()
    return pa.table(
        {
            "id": pa.array(list(ids), pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors), 4),
            "tenant": pa.array([f"t{i % 7}" for i in ids]),
        }
    )


def _rows_per_partition(engine: Engine) -> dict[int, list[int]]:
    coll = engine._resolve("default", "k")
    snap = coll.snapshot()
    out: dict[int, list[int]] = {}
    for pid, table in snap.growing.items():
        out.setdefault(pid, []).extend(table.column("id").to_pylist())
    for seg in snap.sealed:
        out.setdefault(seg.partition_id, []).extend(
            read_column(engine._store, seg.columns["id"].path).to_pylist()
        )
    return {pid: sorted(ids) for pid, ids in out.items()}


def test_partition_key_batch_is_one_log_record(open_engine: Callable[..., Engine]) -> None:
    engine = open_engine()
    engine.create_collection("default", "k", KEYED, num_partitions=4)
    coll = engine._resolve("default", "k")
    before = coll.wal.last_lsn
    engine.insert("default", "k", _keyed_rows(range(40)))
    assert coll.wal.last_lsn == before + 1
    record = list(coll.wal.replay(before))[0]
    assert record.partition_id == ROUTED_PARTITION
    placed = _rows_per_partition(engine)
    assert len(placed) > 1  # the batch really spans partitions
    assert sorted(i for ids in placed.values() for i in ids) == list(range(40))

    engine.flush("default", ["k"])
    engine.upsert("default", "k", _keyed_rows(range(30, 50), 1.0))
    assert coll.wal.last_lsn == before + 2
    placed = _rows_per_partition(engine)
    engine.close()

    reopened = open_engine()
    assert _rows_per_partition(reopened) == placed  # each row back in its own partition, once


def test_upsert_of_a_routed_batch_replaces_rows_after_restart(
    open_engine: Callable[..., Engine], kit
) -> None:
    engine = open_engine()
    engine.create_collection("default", "k", KEYED, num_partitions=3)
    engine.insert("default", "k", _keyed_rows(range(20)))
    engine.upsert("default", "k", _keyed_rows(range(10, 20), 1.0))
    engine.close()
    reopened = open_engine()
    table = kit.visible_table(reopened, "default", "k")
    assert sorted(table.column("id").to_pylist()) == list(range(20))
    upserted = {
        i: v[0] for i, v in zip(table.column("id").to_pylist(), table.column("vec").to_pylist(), strict=True)
    }
    assert all(upserted[i] == (1.0 if i >= 10 else 0.0) for i in range(20))


# -- background index builds run at low priority --------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_index_builds_run_at_lowest_priority(engine: Engine, kit) -> None:
    schema = kit.basic_schema()
    engine.create_collection("default", "c", schema)
    engine.create_index("default", "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
    engine.insert("default", "c", kit.make_rows(range(50)))
    engine.flush("default", ["c"])
    assert engine.wait_for_index_builds(timeout=60)
    assert engine.describe_indexes("default", "c")[0].indexed_rows == 50
    worker = engine._builder._worker
    assert worker.native_id is not None
    assert os.getpriority(os.PRIO_PROCESS, worker.native_id) == 19
    assert os.getpriority(os.PRIO_PROCESS, 0) < 19  # the rest of the process is untouched


# -- AllocTimestamp ---------------------------------------------------------------------------------
def test_allocate_timestamp_is_above_every_earlier_one(open_engine: Callable[..., Engine], kit) -> None:
    engine = open_engine()
    engine.create_collection("default", "c", kit.basic_schema())
    first = engine.allocate_timestamp()
    written = engine.insert("default", "c", kit.make_rows(range(3))).timestamp
    second = engine.allocate_timestamp()
    assert first < written < second
    engine.close()
    assert open_engine().allocate_timestamp() > second
