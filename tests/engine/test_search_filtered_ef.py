"""A selective filter widens HNSW's beam (ef) for the filtered graph search, within bounds."""

from __future__ import annotations

import json

import pytest

from sheafdb.engine.read.search import MAX_FILTERED_EF, filtered_params
from sheafdb.index import parse_search_params


def ef_of(params: object) -> int | None:
    return parse_search_params(params).ef  # type: ignore[arg-type]


def test_ef_grows_as_the_filter_narrows_and_is_capped() -> None:
    widths = [
        ef_of(filtered_params({"ef": 64}, 10, kept, 100_000))
        for kept in (50_000, 20_000, 10_000, 5_000, 1_000, 100)
    ]
    assert widths == [64, 64, 96, 192, 960, MAX_FILTERED_EF]  # 64 x 0.15 / share, at least 64
    assert ef_of(filtered_params({"ef": 64}, 10, 10, 100_000)) == MAX_FILTERED_EF


def test_default_ef_is_widened_from_knowheres_default() -> None:
    assert ef_of(filtered_params({}, 10, 10_000, 100_000)) == 24  # max(k, 16) = 16, x 0.15 x 10


def test_nothing_changes_without_a_filter_or_with_a_large_user_ef() -> None:
    params = {"ef": 64}
    assert filtered_params(params, 10, 100_000, 100_000) is params
    big = {"ef": 4096}
    assert filtered_params(big, 10, 10_000, 100_000) is big


def test_an_ef_below_k_is_left_for_the_index_to_refuse() -> None:
    params = {"ef": 5}
    assert filtered_params(params, 10, 1_000, 100_000) is params


@pytest.mark.parametrize("nested", [{"ef": 64, "x": 1}, json.dumps({"ef": 64, "x": 1})])
def test_a_nested_params_object_cannot_override_the_widened_ef(nested: object) -> None:
    widened = filtered_params({"params": nested, "metric_type": "L2"}, 10, 10_000, 100_000)
    assert ef_of(widened) == 96
    assert widened["metric_type"] == "L2" and widened["x"] == 1
