"""BM25 term vectors: text -> sparse vector of term frequencies (a BM25 function's output).

A term's dimension is the CRC-32 of its UTF-8 bytes (stable across processes and restarts;
Milvus also hashes tokens to 32-bit dimensions). A document's vector holds each term's count,
so its length (number of tokens) is the sum of its values. The weights that score them are
in ``sheafdb.index.bm25_weights``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from sheafdb.schema import SPARSE_ARROW_TYPE
from sheafdb.text.analyzer import Analyzer

# Term -> dimension, shared by every analyzer (a pure function of the term). Bounded.
_TERM_IDS: dict[str, int] = {}
_TERM_IDS_KEPT = 1 << 21


def term_id(term: str) -> int:
    found = _TERM_IDS.get(term)
    if found is None:
        found = zlib.crc32(term.encode())
        if len(_TERM_IDS) >= _TERM_IDS_KEPT:
            _TERM_IDS.clear()
        _TERM_IDS[term] = found
    return found


def term_ids(terms: Sequence[str]) -> np.ndarray:
    return np.fromiter((term_id(t) for t in terms), dtype=np.uint32, count=len(terms))


def term_frequencies(analyzer: Analyzer, texts: Sequence[str | None]) -> pa.Array:
    """One sparse vector (term dimension -> count) per text; a null text is an empty vector."""
    docs: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    for doc, text in enumerate(texts):
        if not text:
            continue
        found = term_ids(analyzer.tokens(text))
        ids.append(found)
        docs.append(np.full(len(found), doc, dtype=np.int64))
    if not ids:
        return pa.array([[] for _ in texts], type=SPARSE_ARROW_TYPE)
    keys = (np.concatenate(docs) << 32) | np.concatenate(ids).astype(np.int64)
    unique, counts = np.unique(keys, return_counts=True)  # sorted by doc, then dimension
    doc_of = unique >> 32
    offsets = np.searchsorted(doc_of, np.arange(len(texts) + 1)).astype(np.int32)
    entries = pa.StructArray.from_arrays(
        [pa.array((unique & 0xFFFFFFFF).astype(np.uint32)), pa.array(counts.astype(np.float32))],
        names=["index", "value"],
    )
    return pa.ListArray.from_arrays(pa.array(offsets), entries).cast(SPARSE_ARROW_TYPE)


def query_terms(analyzer: Analyzer, text: str) -> tuple[np.ndarray, np.ndarray]:
    """A query's distinct term dimensions (sorted) and their counts in the query."""
    found = term_ids(analyzer.tokens(text))
    dims, counts = np.unique(found, return_counts=True)
    return dims.astype(np.uint32), counts.astype(np.float32)
