"""The inverted index behind TEXT_MATCH and PHRASE_MATCH: term -> (row, position) postings.

Built once per text column of a loaded segment (the same Arrow data for as long as the
segment is loaded) with the field's analyzer and kept in that segment's ``MatchIndexes``, so a
match reads postings instead of analyzing every row again; the segment's owner registers their
bytes with the memory accountant and they go with the segment. Growing rows change with every
write: their column is indexed per read.

TEXT_MATCH keeps rows holding at least ``minimum_should_match`` (default 1) of the query's
distinct terms. PHRASE_MATCH keeps rows where the phrase's terms appear in order, each term
at most ``slop`` positions further than exactly after the previous one (tantivy's phrase
rule, which Milvus uses): with positions shifted by each term's place in the phrase, every
step may move forward by 0..slop.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from sheafdb.text.analyzer import Analyzer

# Estimated bytes of one vocabulary entry beyond its UTF-8 text: the str object and dict slot.
_ENTRY_OVERHEAD = 100


class MatchIndex:
    def __init__(self, analyzer: Analyzer, texts: Sequence[str | None]) -> None:
        self.num_rows = len(texts)
        vocabulary: dict[str, int] = {}
        rows: list[int] = []
        terms: list[int] = []
        positions: list[int] = []
        for row, text in enumerate(texts):
            if not text:
                continue
            for token in analyzer.analyze(text):
                term = vocabulary.setdefault(token.text, len(vocabulary))
                rows.append(row)
                terms.append(term)
                positions.append(token.position)
        self._vocabulary = vocabulary
        term_array = np.asarray(terms, dtype=np.int64)
        order = np.lexsort((np.asarray(positions, np.int64), np.asarray(rows, np.int64), term_array))
        self._rows = np.asarray(rows, dtype=np.int64)[order]
        self._positions = np.asarray(positions, dtype=np.int64)[order]
        self._starts = np.searchsorted(term_array[order], np.arange(len(vocabulary) + 1))
        arrays = self._rows.nbytes + self._positions.nbytes + self._starts.nbytes
        words = sum(len(word.encode()) for word in vocabulary) + _ENTRY_OVERHEAD * len(vocabulary)
        self.nbytes = int(arrays + words)

    def _postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, positions) of a term, sorted by row then position."""
        found = self._vocabulary.get(term)
        if found is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        lo, hi = self._starts[found], self._starts[found + 1]
        return self._rows[lo:hi], self._positions[lo:hi]

    def match_terms(self, terms: Sequence[str], minimum_should_match: int = 1) -> np.ndarray:
        counts = np.zeros(self.num_rows, dtype=np.int64)
        for term in set(terms):
            counts[np.unique(self._postings(term)[0])] += 1
        if not terms:
            return np.zeros(self.num_rows, dtype=bool)
        return counts >= max(1, minimum_should_match)

    def match_phrase(self, phrase: Sequence[tuple[str, int]], slop: int) -> np.ndarray:
        """``phrase``: (term, position) as the analyzer gave them for the phrase text."""
        found = np.zeros(self.num_rows, dtype=bool)
        if not phrase:
            return found
        base = phrase[0][1]
        postings = [(self._postings(term), position - base) for term, position in phrase]
        candidates = np.unique(postings[0][0][0])
        for (rows, _), _ in postings[1:]:
            candidates = np.intersect1d(candidates, rows, assume_unique=False)
        for row in candidates.tolist():
            reachable: np.ndarray | None = None
            for (rows, positions), offset in postings:
                lo, hi = np.searchsorted(rows, row), np.searchsorted(rows, row, side="right")
                shifted = positions[lo:hi] - offset
                if reachable is None:
                    reachable = shifted
                else:
                    # A shifted position is reached when one of the previous lies 0..slop before it.
                    nearest = np.searchsorted(reachable, shifted - slop)
                    ok = nearest < len(reachable)
                    ok[ok] = reachable[nearest[ok]] <= shifted[ok]
                    reachable = shifted[ok]
                if len(reachable) == 0:
                    break
            found[row] = reachable is not None and len(reachable) > 0
        return found


class MatchIndexes:
    """One loaded segment's match indexes, by (column, analyzer params), built on first use.

    Thread-safe: ``_lock`` guards the dict; an index is built outside it, so a slow build does
    not stall other columns' reads (two first reads of one column may both build: one is kept).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: dict[tuple[str, str], MatchIndex] = {}
        self.generation = 0  # bumped per index kept: tells the owner to account the bytes

    def index(self, name: str, params: str, column: pa.Array, analyzer: Analyzer) -> MatchIndex:
        key = (name, params)
        with self._lock:
            found = self._built.get(key)
        if found is not None:
            return found
        built = MatchIndex(analyzer, column.to_pylist())
        with self._lock:
            kept = self._built.setdefault(key, built)
            if kept is built:
                self.generation += 1
        return kept

    def nbytes_by_column(self) -> dict[str, int]:
        with self._lock:
            sizes: dict[str, int] = {}
            for (name, _), built in self._built.items():
                sizes[name] = sizes.get(name, 0) + built.nbytes
            return sizes
