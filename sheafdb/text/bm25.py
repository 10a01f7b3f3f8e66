"""BM25 term vectors: text -> sparse vector of term frequencies (a BM25 function's output).

A term's dimension is Milvus's (``typeutil.HashString2LessUint32``): the CRC-32 (IEEE) of the
term's first 100 UTF-8 bytes, modulo 2**32 - 1, so sparse ids and RunAnalyzer's ``hash`` equal
Milvus's for the same tokens (stable across processes and restarts). A document's vector holds
each term's count, so its length (number of tokens) is the sum of its values. The weights that score them are
in ``sheafdb.index.bm25_weights``.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from sheafdb.schema import SPARSE_ARROW_TYPE
from sheafdb.text.analyzer import Analyzer

# Term -> dimension, shared by every analyzer (a pure function of the term). Bounded.
_TERM_IDS: dict[str, int] = {}
_TERM_IDS_KEPT = 1 << 21
# Milvus hashes at most this many leading bytes of a term.
_HASHED_BYTES = 100


def term_id(term: str) -> int:
    found = _TERM_IDS.get(term)
    if found is None:
        found = zlib.crc32(term.encode()[:_HASHED_BYTES]) % 0xFFFFFFFF
        if len(_TERM_IDS) >= _TERM_IDS_KEPT:
            _TERM_IDS.clear()
        _TERM_IDS[term] = found
    return found


def term_ids(terms: Sequence[str]) -> np.ndarray:
    known = _TERM_IDS  # most terms are: a dict hit per token, no call
    return np.fromiter(
        (known[t] if t in known else term_id(t) for t in terms), dtype=np.uint32, count=len(terms)
    )


def term_frequencies(analyzer: Analyzer, texts: Sequence[str | None]) -> pa.Array:
    """One sparse vector (term dimension -> count) per text; a null text is an empty vector."""
    token_lists = [analyzer.tokens(text) if text else [] for text in texts]
    lengths = np.fromiter((len(tokens) for tokens in token_lists), dtype=np.int64, count=len(texts))
    if not lengths.any():
        return pa.array([[] for _ in texts], type=SPARSE_ARROW_TYPE)
    ids = term_ids(list(itertools.chain.from_iterable(token_lists)))
    docs = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    keys = (docs << 32) | ids.astype(np.int64)
    unique, counts = np.unique(keys, return_counts=True)  # sorted by doc, then dimension
    offsets = np.searchsorted(unique >> 32, np.arange(len(texts) + 1)).astype(np.int32)
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
