"""BM25 term vectors use Milvus's term dimensions (typeutil.HashString2LessUint32)."""

from __future__ import annotations

import zlib

from sheafdb.text.analyzer import build_analyzer
from sheafdb.text.bm25 import query_terms, term_frequencies


def _milvus_hash(term: str) -> int:
    return zlib.crc32(term.encode()[:100]) % 0xFFFFFFFF


def test_sparse_dimensions_are_milvus_hashes() -> None:
    analyzer = build_analyzer({"tokenizer": "whitespace"})
    long_term = "x" * 150  # hashed on its first 100 bytes, as Milvus does
    vectors = term_frequencies(analyzer, ["beta alpha beta", None, long_term]).to_pylist()
    assert sorted((e["index"], e["value"]) for e in vectors[0]) == sorted(
        [(_milvus_hash("alpha"), 1.0), (_milvus_hash("beta"), 2.0)]
    )
    assert vectors[1] == []
    assert [e["index"] for e in vectors[2]] == [_milvus_hash(long_term)] == [_milvus_hash("x" * 100)]
    dims, counts = query_terms(analyzer, "beta beta")
    assert dims.tolist() == [_milvus_hash("beta")] and counts.tolist() == [2.0]
