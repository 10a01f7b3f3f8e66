"""The match index and the BM25 sparse index, below the server."""

from __future__ import annotations

import numpy as np

from sheafdb.index.bm25_weights import idf
from sheafdb.index.params import IndexSpec
from sheafdb.index.sparse import BM25_AVGDL, SparseInvertedIndex
from sheafdb.index.vectors import SparseMatrix, vectors_from_arrow
from sheafdb.schema import DataType, FieldSchema
from sheafdb.text import build_analyzer
from sheafdb.text.bm25 import term_frequencies, term_id
from sheafdb.text.match_index import MatchIndex

STOPPING = {"tokenizer": "standard", "filter": ["lowercase", {"type": "stop", "stop_words": ["_english_"]}]}


def test_phrase_match_counts_the_gaps_stop_words_leave() -> None:
    analyzer = build_analyzer(STOPPING)
    index = MatchIndex(analyzer, ["the cat of the hat", "cat hat", "hat cat", None, "cat and dog and hat"])
    phrase = [(t.text, t.position) for t in analyzer.analyze("cat of the hat")]  # cat@0, hat@3
    assert phrase == [("cat", 0), ("hat", 3)]
    assert index.match_phrase(phrase, 0).tolist() == [True, False, False, False, False]
    # "cat hat" is two positions short of the phrase's gap: never a match (no moving back).
    assert index.match_phrase([("cat", 0), ("hat", 1)], 0).tolist() == [False, True, False, False, False]
    assert index.match_phrase([("cat", 0), ("hat", 1)], 3).tolist() == [True, True, False, False, True]


def test_text_match_minimum_should_match() -> None:
    index = MatchIndex(build_analyzer({}), ["a b c", "a", "b c", ""])
    assert index.match_terms(["a", "c"]).tolist() == [True, True, True, False]
    assert index.match_terms(["a", "c"], 2).tolist() == [True, False, False, False]
    assert index.match_terms([]).tolist() == [False] * 4


def test_bm25_index_keeps_row_lengths_through_save_and_load() -> None:
    vectors = term_frequencies(build_analyzer({}), ["a a b", "b c", "c c c c"])
    matrix = vectors_from_arrow(FieldSchema("sparse", DataType.SPARSE_FLOAT_VECTOR), vectors)
    spec = IndexSpec("SPARSE_INVERTED_INDEX", "BM25", {"bm25_k1": 1.2, "bm25_b": 0.75})
    loaded = SparseInvertedIndex.from_bytes(spec, SparseInvertedIndex.build(spec, matrix).save_bytes())
    assert loaded.row_lengths is not None and loaded.row_lengths.tolist() == [3.0, 2.0, 4.0]
    b = np.array([term_id("b")], dtype=np.uint32)
    assert loaded.doc_freqs(b).tolist() == [2]
    weight = idf(3, loaded.doc_freqs(b))
    queries = SparseMatrix(np.array([0, 1]), b, weight)
    scores, labels = loaded.search(queries, 3, {BM25_AVGDL: 3.0}, None)
    assert labels[0].tolist() == [1, 0, -1]  # the shorter row first; row 2 has no "b"
    expected = [float(weight[0]) * 2.2 / (1 + 1.2 * (0.25 + 0.75 * length / 3.0)) for length in (2.0, 3.0)]
    np.testing.assert_allclose(scores[0][:2], expected, rtol=1e-6)
