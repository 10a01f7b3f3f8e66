"""Hybrid search fusion (RRF, weighted) against hand-computed rankings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sheafdb.engine.models import HybridSearchRequest, Ranker, SearchRequest
from sheafdb.engine.read.rerank import execute_hybrid_search, normalise
from sheafdb.engine.read.search import execute_search
from sheafdb.errors import ParameterInvalid
from sheafdb.storage.object_store import LocalStore

from .read_plane_world import DIM, build_world


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path)


def sub(seed: int, limit: int = 20) -> SearchRequest:
    vec = np.random.default_rng(seed).standard_normal((1, DIM)).astype(np.float32)
    return SearchRequest(collection="c", vectors=vec, limit=limit)


def test_normalise_maps_every_metric_to_higher_is_better() -> None:
    d = np.array([0.0, 1.0, 10.0])
    assert np.all(np.diff(normalise("L2", d)) < 0)  # larger distance -> lower score
    assert np.all(np.diff(normalise("IP", d)) > 0)
    assert normalise("COSINE", np.array([-1.0, 1.0])).tolist() == [0.0, 1.0]


def test_rrf_fuses_by_reciprocal_rank(store) -> None:
    world = build_world(store)
    subs = (sub(1), sub(2))
    hybrid = HybridSearchRequest("c", subs, Ranker("rrf", {"k": 60}), limit=10, output_fields=("num",))
    result = execute_hybrid_search(world.ctx, hybrid)
    totals: dict[int, float] = {}
    for s in subs:
        for rank, pk in enumerate(execute_search(world.ctx, s).ids.to_pylist(), start=1):
            totals[pk] = totals.get(pk, 0.0) + 1 / (60 + rank)
    want = sorted(totals.items(), key=lambda kv: -kv[1])[:10]
    assert result.ids.to_pylist() == [pk for pk, _ in want]
    np.testing.assert_allclose(result.scores, [s for _, s in want], rtol=1e-6)
    assert result.fields.column("num").to_pylist() == [pk % 10 for pk, _ in want]


def test_weighted_with_offset(store) -> None:
    world = build_world(store)
    subs = (sub(3), sub(4))
    hybrid = HybridSearchRequest("c", subs, Ranker("weighted", {"weights": [0.8, 0.2]}), limit=5, offset=2)
    result = execute_hybrid_search(world.ctx, hybrid)
    totals: dict[int, float] = {}
    for weight, s in zip([0.8, 0.2], subs, strict=True):
        r = execute_search(world.ctx, s)
        for pk, score in zip(r.ids.to_pylist(), normalise("L2", r.scores.astype(np.float64)), strict=True):
            totals[pk] = totals.get(pk, 0.0) + weight * score
    want = sorted(totals.items(), key=lambda kv: -kv[1])[2:7]
    assert result.ids.to_pylist() == [pk for pk, _ in want]


def test_weights_must_match_requests(store) -> None:
    world = build_world(store)
    with pytest.raises(ParameterInvalid, match="weights"):
        execute_hybrid_search(
            world.ctx, HybridSearchRequest("c", (sub(1),), Ranker("weighted", {"weights": [1, 2]}), 5)
        )
