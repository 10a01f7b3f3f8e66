"""Scalar indexes of sealed segments: built from a column, saved beside it, read back.

``ScalarIndexSpec`` says which structure to build (the engine maps Milvus's index types and
field types onto it); ``build_scalar_index`` builds it from one column (or a JSON path's typed
projection), ``save_scalar_index`` / ``load_scalar_index`` keep it as an Arrow IPC file.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from sheafdb.index.scalar.files import ScalarIndex, load_scalar_index, save_scalar_index
from sheafdb.index.scalar.postings import Postings
from sheafdb.index.scalar.structures import (
    HYBRID_BITMAP_CARDINALITY,
    BitmapIndex,
    ElementIndex,
    NgramIndex,
    SortedIndex,
    non_null,
)


@dataclass(frozen=True)
class ScalarIndexSpec:
    """``structure``: "sorted", "bitmap", "ngram", "elements" (an ARRAY field's element
    postings), or "hybrid" (a bitmap when the segment holds few distinct values, else sorted
    postings, as Milvus's HYBRID / scalar AUTOINDEX)."""

    structure: str
    min_gram: int = 0
    max_gram: int = 0
    token_prefix: str = ""  # "elements" of a JSON list view: the posted tokens' kind


def build_scalar_index(spec: ScalarIndexSpec, column: pa.Array | pa.ChunkedArray) -> ScalarIndex:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if spec.structure == "ngram":
        return NgramIndex.build(column, spec.min_gram, spec.max_gram)
    if spec.structure == "bitmap":
        return BitmapIndex.build(column)
    if spec.structure == "elements":
        return ElementIndex.build(column, spec.token_prefix)
    if spec.structure == "hybrid":
        values, rows, valid = non_null(column)
        postings = Postings.build(values, rows, len(column))
        if postings.cardinality <= HYBRID_BITMAP_CARDINALITY:
            return BitmapIndex.from_postings(postings, valid)
        return SortedIndex(postings, valid)
    return SortedIndex.build(column)


__all__ = [
    "BitmapIndex",
    "ElementIndex",
    "NgramIndex",
    "ScalarIndex",
    "ScalarIndexSpec",
    "SortedIndex",
    "build_scalar_index",
    "load_scalar_index",
    "save_scalar_index",
]
