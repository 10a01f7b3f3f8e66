"""Full-text search: raw query texts -> BM25-weighted sparse queries over the whole collection.

A search of a BM25 function's output field sends texts. Each is analyzed with the input
field's analyzer into its distinct terms and their counts; each term is weighted by its idf
over every source the read sees (loaded sealed segments and growing rows, without the rows a
delete or an upsert hid), and the sources' total length gives ``bm25_avgdl``. So a hit scores
the same however the rows fall into segments and whether or not compaction has yet dropped the
deleted rows (Milvus keeps counting those until it compacts; its timing is not SheafDB's).
Per source, the document frequencies come from its index (posting list lengths) or, for rows
without one, from a scan of the query's terms in the sparse column; the hidden rows' share
comes from their sparse vectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sheafdb.engine.load.loaded_segment import RowSource
from sheafdb.engine.models import SparseQueries, TextQueries
from sheafdb.errors import invalid
from sheafdb.index.bm25_weights import idf
from sheafdb.index.sparse import BM25_AVGDL, SparseInvertedIndex
from sheafdb.index.vectors import SparseMatrix, as_sparse
from sheafdb.schema import CollectionSchema, FieldSchema
from sheafdb.schema_functions import FunctionSchema, FunctionType
from sheafdb.text.analyzer import analyzer_for_field
from sheafdb.text.bm25 import query_terms


def bm25_function_of(schema: CollectionSchema, output_field: str) -> FunctionSchema | None:
    return next(
        (f for f in schema.functions if f.type is FunctionType.BM25 and output_field in f.output_field_names),
        None,
    )


def check_query_kind(schema: CollectionSchema, field: FieldSchema, queries: Any) -> FunctionSchema | None:
    """The field's BM25 function when the search is a text search; Milvus's errors otherwise."""
    function = bm25_function_of(schema, field.name)
    is_text = isinstance(queries, TextQueries)
    if function is not None and not is_text:
        raise invalid(f"please provide varchar/text for BM25 Function based search, field: {field.name}")
    if function is None and is_text:
        raise invalid(
            f"the search field {field.name} is not the output of a BM25 function: search it with vectors"
        )
    return function


def bm25_queries(
    schema: CollectionSchema,
    function: FunctionSchema,
    field: FieldSchema,
    sources: Sequence[RowSource],
    hidden: Sequence[np.ndarray | None],
    texts: TextQueries,
    params: Mapping[str, Any],
) -> tuple[SparseQueries, dict[str, Any]]:
    """The texts as sparse queries (values: count x idf) and the params with ``bm25_avgdl``.

    ``hidden``: per source, the rows deletes hide (None: none), left out of the statistics.
    """
    source_field = schema.field(function.input_field_names[0])
    assert source_field is not None
    analyzer = analyzer_for_field(source_field)
    analyzed = [query_terms(analyzer, text) for text in texts.texts]
    every_dim = (
        np.unique(np.concatenate([dims for dims, _ in analyzed])) if analyzed else np.zeros(0, np.uint32)
    )
    num_docs, total_length = 0, 0.0
    doc_freq = np.zeros(len(every_dim), np.int64)
    for source, gone in zip(sources, hidden, strict=True):
        rows, length, freqs = _source_stats(schema, source, field.name, every_dim)
        num_docs += rows
        total_length += length
        doc_freq += freqs
        if gone is not None:
            deleted = as_sparse(source.vectors(schema, field.name)).take(np.flatnonzero(gone))
            rows, length, freqs = _matrix_stats(deleted, every_dim)
            num_docs -= rows
            total_length -= length
            doc_freq -= freqs
    offsets = np.zeros(len(analyzed) + 1, np.int64)
    indices: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for i, (dims, counts) in enumerate(analyzed):
        df = doc_freq[np.searchsorted(every_dim, dims)]
        indices.append(dims)
        values.append((counts * idf(num_docs, df)).astype(np.float32))
        offsets[i + 1] = offsets[i] + len(dims)
    queries = SparseQueries(
        offsets=offsets,
        indices=np.concatenate(indices) if indices else np.zeros(0, np.uint32),
        values=np.concatenate(values) if values else np.zeros(0, np.float32),
    )
    avgdl = total_length / num_docs if num_docs else 1.0
    return queries, {**params, BM25_AVGDL: avgdl}


def _source_stats(
    schema: CollectionSchema, source: RowSource, field_name: str, dims: np.ndarray
) -> tuple[int, float, np.ndarray]:
    """(rows, total length, document frequency of each of ``dims``) of one source."""
    index = source.index(field_name)
    if isinstance(index, SparseInvertedIndex) and index.row_lengths is not None:
        return index.num_rows, float(index.row_lengths.sum(dtype=np.float64)), index.doc_freqs(dims)
    return _matrix_stats(as_sparse(source.vectors(schema, field_name)), dims)


def _matrix_stats(matrix: SparseMatrix, dims: np.ndarray) -> tuple[int, float, np.ndarray]:
    if len(dims) == 0 or len(matrix.indices) == 0:
        return matrix.num_rows, float(matrix.values.sum(dtype=np.float64)), np.zeros(len(dims), np.int64)
    # A row holds a dimension at most once, so a dimension's count is its document frequency.
    present, counts = np.unique(matrix.indices.astype(np.uint32), return_counts=True)
    slot = np.minimum(np.searchsorted(present, dims), len(present) - 1)
    freqs = np.where(present[slot] == dims, counts[slot], 0)
    return matrix.num_rows, float(matrix.values.sum(dtype=np.float64)), freqs
