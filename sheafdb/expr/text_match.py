"""TEXT_MATCH / PHRASE_MATCH over one text column, through the column's match index (kept in
the segment's ``MatchIndexes`` when the caller has one, else built for this read)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from sheafdb.text.analyzer import build_analyzer
from sheafdb.text.match_index import MatchIndex, MatchIndexes


def text_match(
    column: pa.Array,
    query: str,
    params: str,
    slop: int | None,
    minimum: int,
    kept: tuple[MatchIndexes, str] | None = None,
) -> np.ndarray:
    """Rows of ``column`` that match (null rows never do). ``kept``: the segment's indexes and
    the column's name."""
    analyzer = build_analyzer(params)
    if kept is None:
        index = MatchIndex(analyzer, column.to_pylist())
    else:
        indexes, name = kept
        index = indexes.index(name, params, column, analyzer)
    if slop is None:
        return index.match_terms(analyzer.tokens(query), minimum)
    return index.match_phrase([(t.text, t.position) for t in analyzer.analyze(query)], slop)
