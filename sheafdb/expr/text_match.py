"""TEXT_MATCH / PHRASE_MATCH over one text column, through the column's match index."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from sheafdb.text.analyzer import build_analyzer
from sheafdb.text.match_index import match_index


def text_match(column: pa.Array, query: str, params: str, slop: int | None, minimum: int) -> np.ndarray:
    """Rows of ``column`` that match (null rows never do)."""
    analyzer = build_analyzer(params)
    index = match_index(column, analyzer)
    if slop is None:
        return index.match_terms(analyzer.tokens(query), minimum)
    return index.match_phrase([(t.text, t.position) for t in analyzer.analyze(query)], slop)
