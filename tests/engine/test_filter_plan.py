"""How a filtered search runs on one segment: the graph with a widened ef, or a scan of the
allowed rows (chosen by share and by cost), and the piecewise scan agrees with one scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sheafdb.engine.models import SearchRequest
from sheafdb.engine.read.search import execute_search, index_beam
from sheafdb.index import exact, parse_search_params
from sheafdb.storage.object_store import LocalStore

from .read_plane_world import DIM, build_world, oracle

TOTAL = 100_000


def kept(count: int, total: int = TOTAL) -> np.ndarray:
    mask = np.zeros(total, dtype=bool)
    mask[np.random.default_rng(count).choice(total, count, replace=False)] = True
    return mask


def test_unfiltered_searches_keep_the_index_and_their_params() -> None:
    params = {"ef": 4096}
    assert index_beam(params, 10, None, TOTAL) is params


@pytest.mark.parametrize("count", [100, 1_000, 2_000, 2_999])
def test_a_filter_keeping_under_three_percent_is_scanned(count: int) -> None:
    assert index_beam({"ef": 64}, 10, kept(count), count) is None


@pytest.mark.parametrize(("count", "ef"), [(10_000, 96), (5_000, 192), (20_000, 64), (50_000, 64)])
def test_wider_filters_walk_the_graph_with_a_widened_ef(count: int, ef: int) -> None:
    beam = index_beam({"ef": 64}, 10, kept(count), count)
    assert beam is not None and parse_search_params(beam).ef == ef


def test_a_scan_wins_when_the_widened_beam_costs_more() -> None:
    # 25% kept of 20k rows: a beam of 640 costs ~7,680 rows' scan, more than the 5,000 kept.
    assert index_beam({"ef": 640}, 10, kept(5_000, 20_000), 5_000) is None
    assert index_beam({"ef": 256}, 10, kept(5_000, 20_000), 5_000) is not None


def test_an_ef_below_k_is_still_the_index_s_to_refuse() -> None:
    params = {"ef": 5}
    assert index_beam(params, 10, kept(50_000), 50_000) is params


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
@pytest.mark.parametrize(("flt", "limit", "piece_rows"), [("num >= 3", 10, 64), ("num == 3", 50, 8)])
def test_piecewise_scan_returns_what_brute_force_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metric: str, flt: str, limit: int, piece_rows: int
) -> None:
    monkeypatch.setattr(exact, "GATHER_BYTES", DIM * 4 * piece_rows)
    world = build_world(LocalStore(tmp_path), metric=metric)
    q = np.random.default_rng(1).standard_normal((3, DIM)).astype(np.float32)
    result = execute_search(world.ctx, SearchRequest("c", q, limit, filter=flt))  # type: ignore[arg-type]
    num = world.rows.column("num").to_numpy()
    keep = num >= 3 if flt == "num >= 3" else num == 3
    want_ids, want_scores = oracle(world.rows, q, limit, metric, keep)
    got_ids = np.split(np.asarray(result.ids.to_pylist()), np.cumsum(result.topks)[:-1])
    got_scores = np.split(result.scores, np.cumsum(result.topks)[:-1])
    assert [g.tolist() for g in got_ids] == want_ids
    for got, want in zip(got_scores, want_scores, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
