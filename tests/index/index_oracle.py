"""Brute-force numpy reference answers the indexes are checked against."""

from __future__ import annotations

import numpy as np

from sheafdb.index.metrics import higher_is_better


def dense_scores(metric: str, data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    data = data.astype(np.float64)
    queries = queries.astype(np.float64)
    if metric == "L2":
        return ((queries[:, None, :] - data[None, :, :]) ** 2).sum(axis=2)
    if metric == "COSINE":
        data = data / np.linalg.norm(data, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return queries @ data.T


def binary_scores(metric: str, data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    bits_d = np.unpackbits(data, axis=1).astype(bool)
    bits_q = np.unpackbits(queries, axis=1).astype(bool)
    inter = (bits_q[:, None, :] & bits_d[None, :, :]).sum(axis=2)
    if metric == "HAMMING":
        return (bits_q[:, None, :] ^ bits_d[None, :, :]).sum(axis=2).astype(np.float64)
    union = (bits_q[:, None, :] | bits_d[None, :, :]).sum(axis=2)
    return 1.0 - np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def topk(metric: str, scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Labels of the exact top-k per query (fewer when fewer are allowed)."""
    key = -scores if higher_is_better(metric) else scores.copy()
    if allowed is not None:
        key = np.where(allowed[None, :], key, np.inf)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    return [row[np.isfinite(np.take_along_axis(key, row[None, :], axis=1)[0])] for row in order]


def recall(found: np.ndarray, truth: list[np.ndarray]) -> float:
    hits = sum(len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / max(1, sum(len(t) for t in truth))


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim)).astype(np.float32) * 3
    return (centers[rng.integers(0, clusters, n)] + rng.normal(size=(n, dim))).astype(np.float32)
