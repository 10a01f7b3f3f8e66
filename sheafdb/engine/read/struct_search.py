"""Embedding-list search on a struct array field's vector sub-field (``anns_field="chunks[emb]"``).

A query is an embedding list (pymilvus ``EmbeddingList``); a row's document is the list of
vectors its struct elements hold in that sub-field. The score is MAX_SIM: for every query
vector its best match among the row's vectors (cosine or inner product: the highest; L2: the
smallest distance), summed over the query's vectors. MAX_SIM_COSINE and MAX_SIM_IP rank higher
first, MAX_SIM_L2 lower first. Rows without elements have nothing to match and are never hits.

Every allowed row of every source is scored, with one matrix product per (query, source):
exact results, where Milvus's HNSW over embedding lists is approximate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from sheafdb.engine.finite_vectors import check_floats
from sheafdb.engine.load.loaded_segment import RowSource
from sheafdb.engine.models import EmbeddingListQueries, QueryVectors
from sheafdb.errors import UnexpectedError, invalid
from sheafdb.index.metrics import MAX_SIM_COSINE, MAX_SIM_L2
from sheafdb.schema import FieldSchema, struct_path
from sheafdb.storage.records import IndexRecord


def embedding_list_metric(
    struct: FieldSchema,
    sub: FieldSchema,
    loaded: Sequence[str],
    indexes: Sequence[IndexRecord],
    asked: str | None,
) -> str:
    """The metric of the sub-field's index (the search's, when it names one, must match)."""
    path = struct_path(struct.name, sub.name)
    if not sub.is_vector:
        raise invalid(f"field {path} is not a vector field, it can not be searched")
    if struct.name not in loaded:
        raise UnexpectedError(f'ann field "{path}" not loaded')
    record = next((ix for ix in indexes if ix.field_name == path), None)
    if record is None:
        raise UnexpectedError(f"there is no vector index on field: [{path}], please create index firstly")
    metric = str(record.params.get("metric_type", MAX_SIM_COSINE)).upper()
    if asked and asked.upper() != metric:
        raise invalid(f"metric type not match[expected={metric}][actual={asked}]")
    return metric


def query_lists(struct: FieldSchema, sub: FieldSchema, vectors: QueryVectors) -> list[np.ndarray]:
    """Each query embedding list as a (m, dim) float32 matrix."""
    if not isinstance(vectors, EmbeddingListQueries):
        raise invalid(
            f"a search on the embedding list field {struct_path(struct.name, sub.name)} takes "
            "EmbeddingList queries (placeholder type EmbListFloatVector)"
        )
    dim = sub.dim or 0
    out = []
    for values in vectors.lists:
        if len(values) % dim:
            raise invalid(f"vector dimension mismatch, expected vector size {dim}, actual {len(values)}")
        check_floats(values)
        out.append(values.reshape(-1, dim))
    return out


def embedding_list_hits(
    sources: Sequence[RowSource],
    struct: FieldSchema,
    sub: FieldSchema,
    metric: str,
    queries: list[np.ndarray],
    k: int,
    masks: Sequence[np.ndarray | None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, sources, rows), each (nq, k) best first, padded with source and row -1."""
    lower_better = metric == MAX_SIM_L2
    worst = np.inf if lower_better else -np.inf
    per_query: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in queries]
    for sid, (source, mask) in enumerate(zip(sources, masks, strict=True)):
        documents = _documents(source, struct, sub, metric)
        if documents is None:
            continue
        starts, vectors, has_elements = documents
        allowed = has_elements if mask is None else has_elements & mask
        rows = np.flatnonzero(allowed)
        if not len(rows):
            continue
        for q, query in enumerate(queries):
            scores = _max_sim(query, vectors, starts, has_elements, metric)[rows]
            best = _best(scores, min(k, len(rows)), lower_better)
            per_query[q].append((scores[best], np.full(len(best), sid), rows[best]))
    nq = len(queries)
    out_scores = np.full((nq, k), worst, dtype=np.float32)
    out_sources = np.full((nq, k), -1, dtype=np.int64)
    out_rows = np.full((nq, k), -1, dtype=np.int64)
    for q, parts in enumerate(per_query):
        if not parts:
            continue
        scores = np.concatenate([p[0] for p in parts])
        best = _best(scores, min(k, len(scores)), lower_better)
        out_scores[q, : len(best)] = scores[best]
        out_sources[q, : len(best)] = np.concatenate([p[1] for p in parts])[best]
        out_rows[q, : len(best)] = np.concatenate([p[2] for p in parts])[best]
    return out_scores, out_sources, out_rows


def _best(scores: np.ndarray, k: int, lower_better: bool) -> np.ndarray:
    key = scores if lower_better else -scores
    top = np.argpartition(key, k - 1)[:k] if k < len(key) else np.arange(len(key))
    return top[np.argsort(key[top], kind="stable")]


def _documents(
    source: RowSource, struct: FieldSchema, sub: FieldSchema, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Per row the index of its first element (rows without elements flagged), and every
    element's vector (unit length for MAX_SIM_COSINE)."""
    if struct.name not in source.table.column_names or source.num_rows == 0:
        return None
    column = source.table.column(struct.name)
    lists = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lists = lists.fill_null([]) if lists.null_count else lists
    offsets = lists.offsets.to_numpy().astype(np.int64)
    elements = lists.values.field(sub.name)
    dim = sub.dim or 0
    flat = elements.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    vectors = flat.reshape(-1, dim)[offsets[0] : offsets[-1]]
    starts = offsets[:-1] - offsets[0]
    has_elements = np.diff(offsets) > 0
    if metric == MAX_SIM_COSINE:
        vectors = _unit(vectors)
    return starts, vectors, has_elements


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def _max_sim(
    query: np.ndarray, vectors: np.ndarray, starts: np.ndarray, has_elements: np.ndarray, metric: str
) -> np.ndarray:
    """One score per row (rows without elements score 0; the caller never returns them)."""
    out = np.zeros(len(starts), dtype=np.float32)
    if len(vectors) == 0:
        return out
    q = _unit(query) if metric == MAX_SIM_COSINE else query
    products = q @ vectors.T  # (m, elements)
    # The rows with elements cover the vectors end to end: one segment each for reduceat.
    at = starts[has_elements]
    if metric == MAX_SIM_L2:
        distances = (q * q).sum(axis=1)[:, None] + (vectors * vectors).sum(axis=1)[None, :] - 2 * products
        best = np.minimum.reduceat(np.sqrt(np.maximum(distances, 0)), at, axis=1)
    else:
        best = np.maximum.reduceat(products, at, axis=1)
    out[has_elements] = best.sum(axis=0)
    return out
