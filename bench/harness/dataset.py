"""Seeded, clustered benchmark data with its scalar fields, filters and exact ground truth.

Vectors are embedding-like: a mixture of gaussians in a 16-d latent space, mapped linearly to
``dim`` and blurred with a little isotropic noise. Uniform noise in all dims would make every
neighbour almost equally far and measure the data instead of the index (HNSW recall would be
either trivially 1 or meaninglessly low).

Scalar fields are assigned through random permutations so every filter's selectivity is exact:
``tag`` (VARCHAR) is "a" on 10% of rows, "b" on 1%; the dynamic key ``color`` is "red" on 10%,
"green" on 1%; ``num`` (INT64) is a permutation of 0..n-1, so ``num < s*n`` keeps exactly s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faiss
import numpy as np

LATENT_DIM = 16
CLUSTERS = 100
K = 10
GENERATE_CHUNK_ROWS = 65_536

# Selectivities of the ``num`` range filter used for the filtered-recall sweep.
RANGE_SELECTIVITIES: tuple[float, ...] = (0.001, 0.01, 0.05, 0.1, 0.5)


@dataclass(frozen=True)
class Filter:
    """One filter: its Milvus expression and the rows it keeps (for faiss and ground truth)."""

    name: str
    expr: str
    mask: np.ndarray = field(repr=False)
    truth: np.ndarray = field(repr=False)  # (nq, <=K) exact neighbours among the kept rows


@dataclass(frozen=True)
class Dataset:
    vectors: np.ndarray = field(repr=False)  # (n, dim) float32; row i has primary key i
    queries: np.ndarray = field(repr=False)  # (nq, dim) float32, same distribution
    truth: np.ndarray = field(repr=False)  # (nq, K) exact L2 neighbours of each query
    tags: np.ndarray = field(repr=False)  # (n,) str
    colors: np.ndarray = field(repr=False)  # (n,) str, stored in the dynamic field
    nums: np.ndarray = field(repr=False)  # (n,) int64
    filters: dict[str, Filter] = field(repr=False)

    @property
    def n(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def clustered_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    """``count`` points of the fixed mixture; the mixture itself does not depend on ``seed``."""
    mixture = np.random.default_rng(20240601)
    basis = mixture.normal(size=(LATENT_DIM, dim)).astype(np.float32)
    centers = mixture.normal(size=(CLUSTERS, LATENT_DIM)).astype(np.float32) * 4.0
    rng = np.random.default_rng(seed)
    latent = (centers[rng.integers(0, CLUSTERS, count)] + rng.normal(size=(count, LATENT_DIM))).astype(
        np.float32
    )
    out = np.empty((count, dim), dtype=np.float32)
    # The float64 noise in chunks: drawn whole it would be 8 bytes x n x dim (6 GiB at 1M x 768).
    # Successive draws continue one stream: the chunk size changes values only by float32 rounding.
    for start in range(0, count, GENERATE_CHUNK_ROWS):
        stop = min(start + GENERATE_CHUNK_ROWS, count)
        ambient = 0.1 * rng.normal(size=(stop - start, dim))
        out[start:stop] = latent[start:stop] @ basis + ambient
    return out


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Exact L2 top-K row ids (restricted to ``mask`` when given); short rows when fewer match."""
    rows = np.arange(vectors.shape[0]) if mask is None else np.flatnonzero(mask)
    k = min(K, rows.size)
    if k == 0:
        return np.empty((queries.shape[0], 0), dtype=np.int64)
    _, found = faiss.knn(queries, np.ascontiguousarray(vectors[rows]), k)
    return rows[found]


def _labels(count: int, rng: np.random.Generator, common: str, rare: str, rest: str) -> np.ndarray:
    """``common`` on exactly 10% of rows, ``rare`` on exactly 1%, ``rest`` elsewhere."""
    labels = np.full(count, rest, dtype=object)
    order = rng.permutation(count)
    labels[order[: count // 10]] = common
    labels[order[count // 10 : count // 10 + count // 100]] = rare
    return labels


def make_dataset(n: int, dim: int, nq: int, seed: int = 7) -> Dataset:
    vectors = clustered_vectors(n, dim, seed)
    queries = clustered_vectors(nq, dim, seed + 1)
    rng = np.random.default_rng(seed + 2)
    tags = _labels(n, rng, "a", "b", "c")
    colors = _labels(n, rng, "red", "green", "blue")
    nums = rng.permutation(n).astype(np.int64)
    specs: list[tuple[str, str, np.ndarray]] = [
        ("tag_10pct", 'tag == "a"', tags == "a"),
        ("tag_1pct", 'tag == "b"', tags == "b"),
        ("color_10pct", 'color == "red"', colors == "red"),
        ("color_1pct", 'color == "green"', colors == "green"),
    ]
    for selectivity in RANGE_SELECTIVITIES:
        bound = max(1, round(selectivity * n))
        specs.append((range_filter_name(selectivity), f"num < {bound}", nums < bound))
    filters = {
        name: Filter(name, expr, mask, exact_neighbours(vectors, queries, mask)) for name, expr, mask in specs
    }
    return Dataset(vectors, queries, exact_neighbours(vectors, queries), tags, colors, nums, filters)


def range_filter_name(selectivity: float) -> str:
    return f"num_{selectivity * 100:g}pct"


def recall_at_k(found: list[list[int]], truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / |truth| (truth may be short under a filter)."""
    scores = []
    for hits, expected in zip(found, truth, strict=True):
        if len(expected) == 0:
            continue
        scores.append(len(set(hits[:K]) & {int(x) for x in expected}) / len(expected))
    return float(np.mean(scores)) if scores else 1.0
