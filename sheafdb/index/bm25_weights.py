"""BM25's weights (Lucene's form), shared by the sparse index and the engine's statistics.

    score(q, d) = sum over query terms t of  qtf(t) * idf(t) * tf(t,d) * (k1 + 1)
                                              / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

The index applies the saturation per posting; the caller passes ``qtf x idf`` as the query
vector's values and ``avgdl``, both over the whole collection.
"""

from __future__ import annotations

import numpy as np

DEFAULT_K1 = 1.2
DEFAULT_B = 0.75


def idf(num_docs: int, doc_freq: np.ndarray) -> np.ndarray:
    df = doc_freq.astype(np.float64)
    return np.log1p((num_docs - df + 0.5) / (df + 0.5)).astype(np.float32)


def saturated(tf: np.ndarray, doc_len: np.ndarray, avgdl: float, k1: float, b: float) -> np.ndarray:
    """tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl)): a posting's weight before idf."""
    norm = k1 * (1.0 - b + b * doc_len / max(avgdl, 1e-9))
    return (tf * (k1 + 1.0) / (tf + norm)).astype(np.float32)
