"""Milvus's metric types and their score conventions.

Milvus reports L2 as the squared distance (lower is better), HAMMING and JACCARD as distances,
and IP / COSINE as similarities (higher is better). SUBSTRUCTURE and SUPERSTRUCTURE are
matches, not distances: a row is a hit (distance 0) when the query is a substructure of it
(every bit of the query is set in the row), resp. a superstructure of it; other rows are no
hit at all (distance +inf), so such a search may return fewer than k hits. Range search keeps, for distances,
``range_filter <= d < radius`` and, for similarities, ``radius < s <= range_filter``.
"""

from __future__ import annotations

import numpy as np

from sheafdb.errors import ParameterInvalid

L2 = "L2"
IP = "IP"
COSINE = "COSINE"
HAMMING = "HAMMING"
JACCARD = "JACCARD"
SUBSTRUCTURE = "SUBSTRUCTURE"
SUPERSTRUCTURE = "SUPERSTRUCTURE"
BM25 = "BM25"
# Embedding lists (struct array vector sub-fields): per query vector its best match, summed.
MAX_SIM_COSINE = "MAX_SIM_COSINE"
MAX_SIM_IP = "MAX_SIM_IP"
MAX_SIM_L2 = "MAX_SIM_L2"
MAX_SIM_METRICS = (MAX_SIM_COSINE, MAX_SIM_IP, MAX_SIM_L2)

FLOAT_METRICS = (L2, IP, COSINE)
BINARY_METRICS = (HAMMING, JACCARD, SUBSTRUCTURE, SUPERSTRUCTURE)
BIN_IVF_METRICS = (HAMMING, JACCARD)
# Binary metrics faiss has no index for: searched exactly over the packed codes.
EXACT_BINARY_METRICS = (JACCARD, SUBSTRUCTURE, SUPERSTRUCTURE)
SPARSE_METRICS = (IP, BM25)

_SIMILARITIES = frozenset({IP, COSINE, BM25, MAX_SIM_COSINE, MAX_SIM_IP})


def higher_is_better(metric: str) -> bool:
    return metric.upper() in _SIMILARITIES


def worst_score(metric: str) -> float:
    """The score of a padding slot (label -1): sorts after every real hit."""
    return float("-inf") if higher_is_better(metric) else float("inf")


def validate_range(metric: str, radius: float, range_filter: float | None) -> None:
    """Milvus (knowhere) rejects a range window that keeps nothing."""
    if range_filter is None:
        return
    if higher_is_better(metric):
        if range_filter <= radius:
            raise ParameterInvalid(
                "range_filter must be greater than radius for IP/COSINE: invalid parameter"
            )
    elif range_filter >= radius:
        raise ParameterInvalid(
            "range_filter must be less than radius for L2/HAMMING/JACCARD: invalid parameter"
        )


def in_range(metric: str, scores: np.ndarray, radius: float, range_filter: float | None) -> np.ndarray:
    """Bool mask of the scores inside Milvus's range window."""
    if higher_is_better(metric):
        keep = scores > radius
        if range_filter is not None:
            keep &= scores <= range_filter
    else:
        keep = scores < radius
        if range_filter is not None:
            keep &= scores >= range_filter
    return keep


def sort_key(metric: str, scores: np.ndarray) -> np.ndarray:
    """Ascending key: best hit first whatever the metric's direction."""
    return -scores if higher_is_better(metric) else scores
