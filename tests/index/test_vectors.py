from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from sheafdb.index import SparseMatrix, vectors_from_arrow
from sheafdb.index.vectors import bfloat16_to_float32, dense_queries
from sheafdb.schema import DataType, FieldSchema


def _column(field: FieldSchema, rows: list) -> pa.Array:
    return pa.array(rows, type=field.arrow_type())


def test_float_vectors_zero_copy_shape_and_slicing() -> None:
    field = FieldSchema("v", DataType.FLOAT_VECTOR, dim=3)
    data = np.arange(15, dtype=np.float32).reshape(5, 3)
    column = _column(field, data.tolist())
    assert np.array_equal(vectors_from_arrow(field, column), data)
    assert np.array_equal(vectors_from_arrow(field, column.slice(2, 2)), data[2:4])
    chunked = pa.chunked_array([column.slice(0, 2), column.slice(2)])
    assert np.array_equal(vectors_from_arrow(field, chunked), data)


def test_int8_vectors_become_float32() -> None:
    field = FieldSchema("v", DataType.INT8_VECTOR, dim=2)
    out = vectors_from_arrow(field, _column(field, [[1, -2], [127, -128]]))
    assert out.dtype == np.float32 and out.tolist() == [[1, -2], [127, -128]]


def test_float16_and_bfloat16() -> None:
    values = np.array([[1.5, -2.0], [0.25, 1024.0]], dtype=np.float32)
    fp16 = FieldSchema("h", DataType.FLOAT16_VECTOR, dim=2)
    rows = [r.astype(np.float16).tobytes() for r in values]
    assert np.array_equal(vectors_from_arrow(fp16, _column(fp16, rows).slice(1)), values[1:])
    bf16 = FieldSchema("b", DataType.BFLOAT16_VECTOR, dim=2)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)  # exact: these values fit bf16
    out = vectors_from_arrow(bf16, _column(bf16, [r.tobytes() for r in bits]))
    assert np.array_equal(out, values)
    assert np.array_equal(dense_queries(bits), values)
    assert np.array_equal(bfloat16_to_float32(bits), values)


def test_binary_vectors_stay_packed() -> None:
    field = FieldSchema("b", DataType.BINARY_VECTOR, dim=16)
    rows = [bytes([1, 2]), bytes([255, 0]), bytes([7, 9])]
    out = vectors_from_arrow(field, _column(field, rows).slice(1))
    assert out.dtype == np.uint8 and out.tolist() == [[255, 0], [7, 9]]


sparse_rows = st.lists(
    st.dictionaries(st.integers(0, 1000), st.floats(-10, 10, width=32, allow_nan=False), max_size=6),
    max_size=12,
)


@settings(max_examples=50, deadline=None)
@given(rows=sparse_rows, cut=st.integers(0, 12))
def test_sparse_round_trip(rows: list[dict[int, float]], cut: int) -> None:
    field = FieldSchema("s", DataType.SPARSE_FLOAT_VECTOR)
    column = _column(field, [[{"index": k, "value": v} for k, v in r.items()] for r in rows])
    cut = min(cut, len(rows))
    matrix = vectors_from_arrow(field, column.slice(cut))
    assert isinstance(matrix, SparseMatrix)
    assert [matrix.row(i) for i in range(matrix.num_rows)] == rows[cut:]
    assert SparseMatrix.from_rows(rows[cut:]).indptr.tolist() == matrix.indptr.tolist()


def test_sparse_take() -> None:
    rows = [{1: 1.0}, {2: 2.0, 3: 3.0}, {}, {4: 4.0}]
    taken = SparseMatrix.from_rows(rows).take(np.array([3, 1, 2]))
    assert [taken.row(i) for i in range(3)] == [rows[3], rows[1], rows[2]]
