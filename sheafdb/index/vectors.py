"""Vector columns as numpy: Arrow columns and query arrays -> what faiss and the exact paths take.

Dense float types all become float32 (faiss's only float type): FLOAT16 by a cast, BFLOAT16
by shifting its 16 bits into the high half of a float32, INT8 by a cast. Binary vectors stay
packed uint8 (dim/8 bytes per row). Sparse vectors become a CSR ``SparseMatrix``. No per-row
Python loops: everything goes through Arrow buffers and ``np.frombuffer``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from sheafdb.errors import ParameterInvalid
from sheafdb.schema import DataType, FieldSchema


@dataclass(frozen=True)
class SparseMatrix:
    """CSR rows: row i holds ``indices[indptr[i]:indptr[i+1]]`` with ``values`` alongside."""

    indptr: np.ndarray  # int64, num_rows + 1, starts at 0
    indices: np.ndarray  # uint32 dimension ids
    values: np.ndarray  # float32

    @property
    def num_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def nbytes(self) -> int:
        return self.indptr.nbytes + self.indices.nbytes + self.values.nbytes

    def row(self, i: int) -> dict[int, float]:
        lo, hi = int(self.indptr[i]), int(self.indptr[i + 1])
        return dict(zip(self.indices[lo:hi].tolist(), self.values[lo:hi].tolist(), strict=True))

    def take(self, rows: np.ndarray) -> SparseMatrix:
        """The given rows, in that order (vectorised gather)."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        # Position of every gathered entry in the source arrays.
        within = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1], lengths)
        source = np.repeat(starts, lengths) + within
        return SparseMatrix(indptr, self.indices[source], self.values[source])

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[int, float]]) -> SparseMatrix:
        """Build from ``{dim: value}`` dicts (tests and small requests)."""
        rows = list(rows)
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        indices = np.fromiter((k for r in rows for k in r), dtype=np.uint32, count=int(indptr[-1]))
        values = np.fromiter((v for r in rows for v in r.values()), dtype=np.float32, count=int(indptr[-1]))
        return cls(indptr, indices, values)


def as_sparse(queries: Any) -> SparseMatrix:
    """A SparseMatrix from itself or any object with (offsets|indptr, indices, values)."""
    if isinstance(queries, SparseMatrix):
        return queries
    indptr = getattr(queries, "indptr", None)
    if indptr is None:
        indptr = getattr(queries, "offsets", None)
    if indptr is None:
        raise ParameterInvalid("sparse vectors expected for a sparse index: invalid parameter")
    indptr = np.asarray(indptr, dtype=np.int64)
    return SparseMatrix(
        indptr - indptr[0],
        np.asarray(queries.indices, dtype=np.uint32)[indptr[0] : indptr[-1]],
        np.asarray(queries.values, dtype=np.float32)[indptr[0] : indptr[-1]],
    )


def vectors_from_arrow(field: FieldSchema, column: pa.Array | pa.ChunkedArray) -> np.ndarray | SparseMatrix:
    """The column's vectors: float32 (n, dim), packed uint8 (n, dim/8) or a SparseMatrix."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    dtype = field.dtype
    if dtype is DataType.SPARSE_FLOAT_VECTOR:
        return _sparse_from_arrow(column)
    dim = field.dim or 0
    n = len(column)
    if dtype in (DataType.FLOAT_VECTOR, DataType.INT8_VECTOR):
        values = column.values.slice(column.offset * dim, n * dim)
        flat = values.to_numpy(zero_copy_only=False)
        if not column.null_count:
            return np.ascontiguousarray(flat.reshape(n, dim), dtype=np.float32)
        # Null rows (nullable vector fields) hold zeros: indexes stay finite, and a search
        # masks these rows out anyway.
        matrix = np.array(flat.reshape(n, dim), dtype=np.float32)
        matrix[~column.is_valid().to_numpy(zero_copy_only=False)] = 0.0
        return matrix
    width = {DataType.BINARY_VECTOR: dim // 8}.get(dtype, 2 * dim)
    data = column.buffers()[1]
    raw = (
        np.frombuffer(data, dtype=np.uint8, count=n * width, offset=column.offset * width)
        if n
        else (np.zeros(0, dtype=np.uint8))
    )
    if dtype is DataType.BINARY_VECTOR:
        return raw.reshape(n, width)
    if dtype is DataType.FLOAT16_VECTOR:
        return raw.view(np.float16).reshape(n, dim).astype(np.float32)
    if dtype is DataType.BFLOAT16_VECTOR:
        return bfloat16_to_float32(raw.view(np.uint16).reshape(n, dim))
    raise ParameterInvalid(f"field {field.name} is not a vector field: invalid parameter")


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 is the high half of a float32: shift its 16 bits up."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def dense_queries(queries: np.ndarray) -> np.ndarray:
    """Query vectors as C-contiguous float32 (uint16 input is read as bfloat16 bits)."""
    array = np.asarray(queries)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.dtype == np.uint16:
        return bfloat16_to_float32(array)
    return np.ascontiguousarray(array, dtype=np.float32)


def binary_queries(queries: np.ndarray, code_size: int) -> np.ndarray:
    """Packed binary query vectors as C-contiguous uint8 (nq, code_size)."""
    array = np.ascontiguousarray(queries, dtype=np.uint8)
    return array.reshape(-1, code_size)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalised copy (COSINE = IP on unit vectors); zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def _sparse_from_arrow(column: pa.Array) -> SparseMatrix:
    offsets = column.offsets.to_numpy().astype(np.int64)
    indptr = offsets - offsets[0]
    entries = column.flatten()  # the struct entries of exactly these rows
    index_child, value_child = entries.flatten()
    return SparseMatrix(
        indptr,
        index_child.to_numpy(zero_copy_only=False).astype(np.uint32, copy=False),
        value_child.to_numpy(zero_copy_only=False).astype(np.float32, copy=False),
    )
