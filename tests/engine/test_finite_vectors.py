"""engine/finite_vectors.py: NaN and ±inf refused in every float vector kind, Milvus's texts."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.finite_vectors import check_query_vectors, check_vector_column
from sheafdb.errors import ParameterInvalid
from sheafdb.schema import DataType


def _half_column(values: list[float], dtype: DataType) -> pa.Array:
    if dtype is DataType.FLOAT16_VECTOR:
        raw = np.asarray(values, dtype="<f2").tobytes()
    else:
        raw = (np.asarray(values, dtype="<f4").view("<u4") >> 16).astype("<u2").tobytes()
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(2 * len(values)), 1, [None, pa.py_buffer(raw)])


@pytest.mark.parametrize(("bad", "shown"), [(np.nan, "NaN"), (np.inf, "+Inf"), (-np.inf, "-Inf")])
def test_float_vectors(bad: float, shown: str) -> None:
    good = pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0], pa.float32()), 2)
    check_vector_column(DataType.FLOAT_VECTOR, good)
    column = pa.FixedSizeListArray.from_arrays(pa.array([1.0, bad], pa.float32()), 2)
    with pytest.raises(ParameterInvalid, match=re.escape(f"value '{shown}' is not a number or infinity")):
        check_vector_column(DataType.FLOAT_VECTOR, column)
    with pytest.raises(ParameterInvalid):
        check_query_vectors(DataType.FLOAT_VECTOR, np.array([[0.0, bad]], dtype=np.float32))


@pytest.mark.parametrize("dtype", [DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR])
def test_half_precision_vectors(dtype: DataType) -> None:
    check_vector_column(dtype, _half_column([1.0, -2.5], dtype))
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ParameterInvalid, match="vector contain nan or infinity value"):
            check_vector_column(dtype, _half_column([1.0, bad], dtype))
