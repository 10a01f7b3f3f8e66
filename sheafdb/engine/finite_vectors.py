"""Vectors must hold finite numbers: NaN and ±inf are refused, as Milvus refuses them.

A NaN stored in a vector poisons every distance computed against it, and a NaN query vector
answers nothing useful; Milvus checks both inserted and query vectors (``typeutil.VerifyFloats*``)
and so do we, vectorised: one numpy pass over the values.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from sheafdb.errors import invalid
from sheafdb.schema import DataType

_HALF_EXPONENT = 0x7C00  # float16: all exponent bits set means inf or NaN
_BF16_EXPONENT = 0x7F80  # bfloat16: likewise


def check_floats(values: np.ndarray) -> None:
    """ParameterInvalid with Milvus's text if any float32/float64 value is NaN or ±inf."""
    finite = np.isfinite(values)
    if finite.all():
        return
    bad = float(values.reshape(-1)[int(np.argmin(finite.reshape(-1)))])
    shown = "NaN" if np.isnan(bad) else ("+Inf" if bad > 0 else "-Inf")  # Go's %f of them
    raise invalid(f"value '{shown}' is not a number or infinity")


def check_half_bits(bits: np.ndarray, dtype: DataType) -> None:
    """The same for float16 / bfloat16 vectors given as their raw 16-bit patterns."""
    mask = _HALF_EXPONENT if dtype is DataType.FLOAT16_VECTOR else _BF16_EXPONENT
    if np.any((bits & mask) == mask):
        name = "float16" if dtype is DataType.FLOAT16_VECTOR else "bfloat16"
        raise invalid(f"{name} vector contain nan or infinity value.")


def check_vector_column(dtype: DataType, column: pa.Array) -> None:
    """Refuse non-finite values in a validated vector column (its storage type)."""
    if dtype is DataType.FLOAT_VECTOR:
        check_floats(column.flatten().to_numpy(zero_copy_only=False))
    elif dtype in (DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR):
        raw = pa.concat_arrays([column]) if column.offset else column
        width = raw.type.byte_width
        data = raw.buffers()[1]
        if data is not None:
            check_half_bits(np.frombuffer(data, dtype=np.uint16, count=len(raw) * width // 2), dtype)
    elif dtype is DataType.SPARSE_FLOAT_VECTOR:
        values = column.flatten().field("value") if len(column) else None
        if values is not None:
            check_floats(values.to_numpy(zero_copy_only=False))


def check_query_vectors(dtype: DataType, vectors: np.ndarray) -> None:
    """Refuse non-finite dense query vectors (bfloat16 arrive as uint16 bit patterns)."""
    if dtype in (DataType.FLOAT_VECTOR, DataType.FLOAT16_VECTOR) and vectors.dtype.kind == "f":
        check_floats(vectors)
    elif dtype is DataType.BFLOAT16_VECTOR and vectors.dtype == np.uint16:
        check_half_bits(vectors, dtype)
