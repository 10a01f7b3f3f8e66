"""JSON rows <-> Arrow columns: round trips per data type, and the structural errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheafdb.api.rest.rows import query_vectors, rows_to_table, table_to_rows, vector_field
from sheafdb.engine.models import SparseQueries
from sheafdb.errors import ParameterInvalid, RestInsertDataInvalid, RestRequestNotJson
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("pk", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=3),
        FieldSchema("half", DataType.FLOAT16_VECTOR, dim=2),
        FieldSchema("brain", DataType.BFLOAT16_VECTOR, dim=2),
        FieldSchema("bits", DataType.BINARY_VECTOR, dim=16),
        FieldSchema("sparse", DataType.SPARSE_FLOAT_VECTOR),
        FieldSchema("title", DataType.VARCHAR, max_length=64, nullable=True),
        FieldSchema("doc", DataType.JSON),
        FieldSchema("tags", DataType.ARRAY, element_type=DataType.INT32, max_capacity=4),
        FieldSchema("score", DataType.FLOAT),
    ),
    enable_dynamic_field=True,
)

# Values exactly representable in float16 and bfloat16, so the round trip is exact.
_half = st.sampled_from([0.0, 0.5, -1.0, 2.0, 1.5, -0.25, 3.0])
_row = st.fixed_dictionaries(
    {
        "pk": st.integers(-(2**63), 2**63 - 1),
        "vec": st.lists(st.floats(-1e6, 1e6, width=32), min_size=3, max_size=3),
        "half": st.lists(_half, min_size=2, max_size=2),
        "brain": st.lists(_half, min_size=2, max_size=2),
        "bits": st.lists(st.integers(0, 255), min_size=2, max_size=2),
        "sparse": st.dictionaries(st.integers(0, 1000).map(str), st.floats(-10, 10, width=32), max_size=4),
        "title": st.none() | st.text(max_size=10),
        "doc": st.recursive(
            st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
            ),
            max_leaves=5,
        ),
        "tags": st.lists(st.integers(-(2**31), 2**31 - 1), max_size=4),
        "score": st.floats(-1e6, 1e6, width=32),
        "extra_key": st.integers(0, 10),
    }
)


@settings(max_examples=50, deadline=None)
@given(st.lists(_row, min_size=1, max_size=5))
def test_rows_round_trip_through_arrow(rows):
    table = rows_to_table(SCHEMA, rows)
    assert table.column("vec").type == SCHEMA.field("vec").arrow_type()
    assert table.column("half").type == SCHEMA.field("half").arrow_type()
    assert table.column("bits").type == SCHEMA.field("bits").arrow_type()
    back = table_to_rows(SCHEMA, table)
    for original, row in zip(rows, back, strict=True):
        expected = dict(original)
        expected["sparse"] = {str(int(k)): v for k, v in original["sparse"].items()}
        assert row == expected


def test_dynamic_keys_travel_in_meta():
    table = rows_to_table(SCHEMA, {"pk": 1, "color": "red", "n": 2})
    assert json.loads(table.column("$meta")[0].as_py()) == {"color": "red", "n": 2}
    assert "vec" not in table.column_names  # absent fields are left to the engine's defaults


def test_unknown_keys_without_dynamic_field_are_refused():
    schema = CollectionSchema(fields=SCHEMA.fields[:2])
    with pytest.raises(RestInsertDataInvalid, match="has pass more field without dynamic schema"):
        rows_to_table(schema, [{"pk": 1, "vec": [1, 2, 3], "color": "red"}])


def test_meta_key_is_refused_and_bad_shapes_are_insert_errors():
    with pytest.raises(ParameterInvalid):
        rows_to_table(SCHEMA, [{"pk": 1, "$meta": {}}])
    with pytest.raises(RestInsertDataInvalid, match="fail to deal the insert data"):
        rows_to_table(SCHEMA, [{"pk": 1, "vec": [1, 2, 3]}, {"pk": 2, "vec": [1, 2]}])
    with pytest.raises(RestInsertDataInvalid):
        rows_to_table(SCHEMA, [{"pk": "not a number"}])
    with pytest.raises(RestInsertDataInvalid):
        rows_to_table(SCHEMA, [])


def test_query_vectors_per_type():
    dense = query_vectors(SCHEMA.field("vec"), [[1, 2, 3], [4, 5, 6]])
    assert dense.dtype == np.float32 and dense.shape == (2, 3)
    half = query_vectors(SCHEMA.field("half"), [[1.0, 0.5]])
    assert half.dtype == np.float16 and half.tolist() == [[1.0, 0.5]]
    brain = query_vectors(SCHEMA.field("brain"), [[1.0, -2.0]])
    assert brain.dtype == np.uint16 and (brain.astype(np.uint32) << 16).view(np.float32).tolist() == [
        [1.0, -2.0]
    ]
    sparse = query_vectors(SCHEMA.field("sparse"), [{"7": 0.5, "2": 1.0}, {}])
    assert isinstance(sparse, SparseQueries)
    assert sparse.offsets.tolist() == [0, 2, 2] and sparse.indices.tolist() == [2, 7]
    with pytest.raises(ParameterInvalid):
        query_vectors(SCHEMA.field("vec"), [[1, 2, 3], [1, 2]])


def test_vector_field_resolution():
    assert vector_field(SCHEMA, "vec").name == "vec"
    with pytest.raises(ParameterInvalid):
        vector_field(SCHEMA, "title")
    with pytest.raises(RestRequestNotJson, match="multiple vector fields"):
        vector_field(SCHEMA, None)
    only = CollectionSchema(fields=SCHEMA.fields[:2])
    assert vector_field(only, None).name == "vec"


def test_sliced_columns_convert_from_their_offset():
    table = rows_to_table(SCHEMA, [{"pk": i, "half": [float(i), 0.5], "vec": [i, i, i]} for i in range(4)])
    rows = table_to_rows(
        SCHEMA, pa.table({"half": table.column("half").slice(2), "vec": table.column("vec")[2:]})
    )
    assert rows == [
        {"half": [2.0, 0.5], "vec": [2.0, 2.0, 2.0]},
        {"half": [3.0, 0.5], "vec": [3.0, 3.0, 3.0]},
    ]
