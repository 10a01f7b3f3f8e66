"""Insert columns built by pymilvus -> our decoder -> Arrow -> our encoder -> pymilvus's reader."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymilvus.grpc_gen import schema_pb2

from sheafdb.api.grpc.field_codec import (
    field_data_to_arrow,
    fields_to_table,
    fill_field_data,
    sparse_arrow_to_rows,
    sparse_rows_to_arrow,
)
from sheafdb.api.grpc.results import query_results
from sheafdb.engine.models import QueryResult
from sheafdb.errors import ParameterInvalid
from sheafdb.schema import DYNAMIC_FIELD, CollectionSchema, DataType, FieldSchema

from .codec_helpers import insert_request, read_query_results

DIM = 4

ALL_TYPES = CollectionSchema(
    fields=(
        FieldSchema("pk", DataType.INT64, field_id=100, is_primary=True),
        FieldSchema("b", DataType.BOOL, field_id=101),
        FieldSchema("i8", DataType.INT8, field_id=102),
        FieldSchema("i16", DataType.INT16, field_id=103),
        FieldSchema("i32", DataType.INT32, field_id=104),
        FieldSchema("f", DataType.FLOAT, field_id=105),
        FieldSchema("d", DataType.DOUBLE, field_id=106),
        FieldSchema("s", DataType.VARCHAR, field_id=107, max_length=32),
        FieldSchema("j", DataType.JSON, field_id=108),
        FieldSchema("ai", DataType.ARRAY, field_id=109, element_type=DataType.INT64, max_capacity=8),
        FieldSchema(
            "as", DataType.ARRAY, field_id=110, element_type=DataType.VARCHAR, max_capacity=8, max_length=8
        ),
        FieldSchema("fv", DataType.FLOAT_VECTOR, field_id=111, dim=DIM),
        FieldSchema("bv", DataType.BINARY_VECTOR, field_id=112, dim=16),
        FieldSchema("hv", DataType.FLOAT16_VECTOR, field_id=113, dim=DIM),
        FieldSchema("bfv", DataType.BFLOAT16_VECTOR, field_id=114, dim=DIM),
        FieldSchema("iv", DataType.INT8_VECTOR, field_id=115, dim=DIM),
        FieldSchema("sv", DataType.SPARSE_FLOAT_VECTOR, field_id=116),
        FieldSchema("ns", DataType.VARCHAR, field_id=117, max_length=8, nullable=True),
        FieldSchema("ni", DataType.INT32, field_id=118, nullable=True),
    ),
    enable_dynamic_field=True,
)


def _rows(n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        rows.append(
            {
                "pk": i,
                "b": i % 2 == 0,
                "i8": -100 + i,
                "i16": 30000 - i,
                "i32": -(2**31) + i,
                "f": float(np.float32(i / 3)),
                "d": i / 7,
                "s": f"s{i}",
                "j": {"k": i, "l": [1, "x"]},
                "ai": list(range(i % 4)),
                "as": [f"e{k}" for k in range(i % 3)],
                "fv": rng.random(DIM, dtype=np.float32).tolist(),
                "bv": bytes([i, 255 - i]),
                "hv": rng.random(DIM).astype(np.float16),
                "bfv": rng.integers(0, 2**16, DIM, dtype=np.uint16).tobytes(),
                "iv": rng.integers(-128, 128, DIM, dtype=np.int8),
                "sv": {3 * i + 1: 0.5, 7: float(i)} if i % 3 else {},
                "ns": None if i % 2 else f"n{i}",
                "ni": i if i % 3 else None,
                "color": f"c{i}",
            }
        )
    return rows


def test_every_type_decodes_to_the_schema_arrow_layout() -> None:
    rows = _rows(6)
    request = insert_request("c", ALL_TYPES, rows)
    table = fields_to_table(request.fields_data, request.num_rows, ALL_TYPES)
    for field in ALL_TYPES.fields:
        assert table.column(field.name).type == field.arrow_type(), field.name
    assert table.column("pk").to_pylist() == [r["pk"] for r in rows]
    assert table.column("i8").to_pylist() == [r["i8"] for r in rows]
    assert table.column("f").to_pylist() == [r["f"] for r in rows]
    assert [json.loads(t) for t in table.column("j").to_pylist()] == [r["j"] for r in rows]
    assert table.column("ai").to_pylist() == [r["ai"] for r in rows]
    assert table.column("as").to_pylist() == [r["as"] for r in rows]
    assert np.allclose(np.array(table.column("fv").to_pylist()), np.array([r["fv"] for r in rows]))
    assert table.column("bv").to_pylist() == [r["bv"] for r in rows]
    assert table.column("hv").to_pylist() == [r["hv"].tobytes() for r in rows]
    assert table.column("bfv").to_pylist() == [r["bfv"] for r in rows]
    assert table.column("iv").to_pylist() == [r["iv"].tolist() for r in rows]
    sparse = [{e["index"]: pytest.approx(e["value"]) for e in row} for row in table.column("sv").to_pylist()]
    assert sparse == [r["sv"] for r in rows]
    assert table.column("ns").to_pylist() == [r["ns"] for r in rows]
    assert table.column("ni").to_pylist() == [r["ni"] for r in rows]
    assert [json.loads(t) for t in table.column(DYNAMIC_FIELD).to_pylist()] == [
        {"color": r["color"]} for r in rows
    ]


def test_round_trip_through_a_query_result_reads_back_the_inserted_rows() -> None:
    rows = _rows(5)
    request = insert_request("c", ALL_TYPES, rows)
    table = fields_to_table(request.fields_data, request.num_rows, ALL_TYPES)
    names = tuple(f.name for f in ALL_TYPES.fields)
    response = query_results(ALL_TYPES, QueryResult(table=table, output_fields=(*names, "color")), "c", 1)
    got = read_query_results(response)
    assert len(got) == len(rows)
    for want, have in zip(rows, got, strict=True):
        for key in ("pk", "b", "i8", "i16", "i32", "d", "s", "j", "ai", "as", "ns", "ni", "color"):
            assert have[key] == want[key], key
        assert have["f"] == pytest.approx(want["f"])
        assert np.allclose(have["fv"], want["fv"])
        assert have["bv"] == [want["bv"]]
        assert have["hv"] == [want["hv"].tobytes()]
        assert have["iv"] == [want["iv"].tobytes()]
        assert {k: pytest.approx(v) for k, v in have["sv"].items()} == want["sv"]


def test_empty_query_result_still_lists_every_output_field() -> None:
    request = insert_request("c", ALL_TYPES, _rows(3))
    table = fields_to_table(request.fields_data, request.num_rows, ALL_TYPES).slice(0, 0)
    response = query_results(ALL_TYPES, QueryResult(table=table, output_fields=("pk",)), "c", 1)
    assert [fd.field_name for fd in response.fields_data] == table.column_names
    assert read_query_results(response) == []


def test_count_star_column_is_an_int64_field() -> None:
    table = pa.table({"count(*)": pa.array([42], pa.int64())})
    response = query_results(ALL_TYPES, QueryResult(table=table, output_fields=("count(*)",)), "c", 1)
    assert read_query_results(response) == [{"count(*)": 42}]


def test_row_count_mismatch_is_a_parameter_error() -> None:
    request = insert_request("c", ALL_TYPES, _rows(3))
    with pytest.raises(ParameterInvalid):
        fields_to_table(request.fields_data, 4)


def test_int8_out_of_range_is_refused() -> None:
    fd = schema_pb2.FieldData(type=DataType.INT8, field_name="i8")
    fd.scalars.int_data.data.extend([1, 300])
    with pytest.raises(ParameterInvalid, match="out of range"):
        field_data_to_arrow(fd)


def test_vector_length_not_a_multiple_of_dim_is_refused() -> None:
    fd = schema_pb2.FieldData(type=DataType.FLOAT_VECTOR, field_name="v")
    fd.vectors.dim = 4
    fd.vectors.float_vector.data.extend([1.0, 2.0, 3.0])
    with pytest.raises(ParameterInvalid, match="multiple of dim"):
        field_data_to_arrow(fd)


def test_nullable_values_may_come_full_length() -> None:
    fd = schema_pb2.FieldData(type=DataType.INT64, field_name="n")
    fd.scalars.long_data.data.extend([5, 0, 7])
    fd.valid_data.extend([True, False, True])
    assert field_data_to_arrow(fd).to_pylist() == [5, None, 7]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.integers(0, 2**32 - 2), st.floats(-1e6, 1e6, width=32), max_size=6),
        min_size=1,
        max_size=8,
    )
)
def test_sparse_rows_round_trip(rows: list[dict[int, float]]) -> None:
    packed = [
        np.array(sorted(r.items()), dtype=[("i", "<u4"), ("v", "<f4")]).tobytes() if r else b"" for r in rows
    ]
    array = sparse_rows_to_arrow(packed)
    back, dim = sparse_arrow_to_rows(array)
    assert back == packed
    assert dim == (max((max(r) for r in rows if r), default=-1) + 1)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=0, max_size=20),
    st.lists(st.one_of(st.none(), st.text(max_size=5)), min_size=0, max_size=20),
)
def test_nullable_scalars_round_trip(ints: list[int | None], texts: list[str | None]) -> None:
    for field, values in (
        (FieldSchema("n", DataType.INT64, nullable=True), ints),
        (FieldSchema("t", DataType.VARCHAR, nullable=True, max_length=64), texts),
    ):
        encoded = schema_pb2.FieldData()
        fill_field_data(encoded, field, pa.array(values, field.arrow_type()))
        assert field_data_to_arrow(encoded).to_pylist() == values
