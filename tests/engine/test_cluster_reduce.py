"""The proxy's reduce against real engines: the same rows split over two engines, fanned out
and merged, answer exactly as one engine holding them all (engine/distribution/reduce.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from sheafdb.engine.distribution.reduce import (
    WorkerAnswer,
    fanned_hybrid_search,
    fanned_query,
    fanned_search,
    fanned_search_by_keys,
    metric_for,
)
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import (
    DecayRanker,
    HybridSearchRequest,
    QueryRequest,
    Ranker,
    SearchRequest,
)
from sheafdb.errors import ParameterInvalid

from .split_world import DB, DIM, assert_same_search, query_vectors, split_engines

engines = pytest.fixture(scope="module")(split_engines)


class TwoEngines:
    """A fan-out over two engines, as cluster_reads fans out over a replica's workers."""

    def __init__(self, parts: Sequence[Engine]) -> None:
        self.parts = parts
        self.calls: list[SearchRequest | QueryRequest] = []

    def __call__(self, method: str, request: SearchRequest | QueryRequest) -> list[WorkerAnswer]:
        self.calls.append(request)
        if method == "search":
            assert isinstance(request, SearchRequest)
            schema = self.parts[0].describe_collection(DB, "c").schema
            indexes = self.parts[0]._catalog.list_indexes(
                self.parts[0].describe_collection(DB, "c").collection_id
            )
            larger = metric_for(schema, indexes, request.anns_field, request.metric_type) != "L2"
            return [WorkerAnswer(e.search(DB, request), larger) for e in self.parts]
        assert isinstance(request, QueryRequest)
        return [WorkerAnswer(e.query(DB, request)) for e in self.parts]


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"offset": 4, "round_decimal": 2},
        {"filter": "num in [1, 3]", "output_fields": ("num", "score")},
        {"anns_field": "vec2", "output_fields": ("tag",)},
        {"params": {"radius": 9.0, "range_filter": 2.0}},
        {"anns_field": "vec2", "params": {"radius": 0.5}, "limit": 30},
        {"group_by_field": "tag", "limit": 3, "output_fields": ("tag",)},
        {"group_by_field": "num", "limit": 3, "offset": 1},
    ],
)
def test_search_split_equals_one_engine(engines, extra) -> None:
    whole, left, right = engines
    request = SearchRequest("c", query_vectors(3, 11), **{"limit": 10, "anns_field": "vec", **extra})
    metric = "IP" if extra.get("anns_field") == "vec2" else "L2"
    fan = TwoEngines((left, right))
    got = fanned_search(fan, request, metric)
    assert_same_search(got, whole.search(DB, request))
    # Each worker was asked for the whole window, unrounded.
    assert all(c.offset == 0 and c.round_decimal == -1 for c in fan.calls if isinstance(c, SearchRequest))


def test_search_with_decay_and_by_keys(engines) -> None:
    whole, left, right = engines
    decayed = SearchRequest(
        "c",
        query_vectors(2, 5),
        limit=8,
        offset=2,
        anns_field="vec",
        decay=DecayRanker("gauss", "num", 3.0, 2.0),
    )
    assert_same_search(fanned_search(TwoEngines((left, right)), decayed, "L2"), whole.search(DB, decayed))
    by_keys = SearchRequest(
        "c",
        np.empty((0, DIM), np.float32),
        limit=5,
        ids=[5, 300, 17],
        output_fields=("num",),
        anns_field="vec",
    )
    schema = whole.describe_collection(DB, "c").schema
    got = fanned_search_by_keys(TwoEngines((left, right)), schema, by_keys, "L2")
    assert_same_search(got, whole.search(DB, by_keys))


@pytest.mark.parametrize(
    "ranker", [Ranker("rrf", {"k": 30}), Ranker("weighted", {"weights": [0.7, 0.3]})], ids=["rrf", "weighted"]
)
def test_hybrid_split_equals_one_engine(engines, ranker) -> None:
    whole, left, right = engines
    subs = (
        SearchRequest("c", query_vectors(2, 21), limit=15, anns_field="vec"),
        SearchRequest("c", query_vectors(2, 22), limit=12, anns_field="vec2", filter="num > 1"),
    )
    request = HybridSearchRequest(
        "c", subs, ranker, limit=7, offset=2, output_fields=("tag",), round_decimal=3
    )
    got = fanned_hybrid_search(TwoEngines((left, right)), request, ("L2", "IP"))
    assert_same_search(got, whole.hybrid_search(DB, request))


def test_hybrid_refusals_come_before_the_fan_out(engines) -> None:
    _, left, right = engines
    fan = TwoEngines((left, right))
    bad = HybridSearchRequest(
        "c", (SearchRequest("c", query_vectors(1, 1), 5, anns_field="vec"),), Ranker("weighted", {}), 5
    )
    with pytest.raises(ParameterInvalid, match="weights"):
        fanned_hybrid_search(fan, bad, ("L2",))
    assert fan.calls == []


@pytest.mark.parametrize(
    "extra",
    [
        {"filter": "num < 3", "limit": 20, "offset": 5, "output_fields": ("num", "tag")},
        {"filter": "id >= 0", "output_fields": ("score",)},
        {"ids": [599, 3, 250, 42], "output_fields": ("vec",)},
        {"filter": "tag == 't1'", "output_fields": ("count(*)",)},
        {"output_fields": ("count(*)",)},
        {
            "filter": "id > 10",
            "output_fields": ("num", "count(*)", "avg(score)", "max(tag)", "sum(id)", "min(score)"),
            "group_by_fields": ("num",),
        },
        {"output_fields": ("count(score)", "avg(id)")},
        {"output_fields": ("tag", "min(id)"), "group_by_fields": ("tag",), "limit": 2, "offset": 1},
    ],
)
def test_query_split_equals_one_engine(engines, extra) -> None:
    whole, left, right = engines
    request = QueryRequest("c", **extra)
    got = fanned_query(TwoEngines((left, right)), request, "id")
    want = whole.query(DB, QueryRequest("c", **extra, order_by_primary_key=True))
    assert got.output_fields == want.output_fields
    for name in want.table.column_names:
        g, w = got.table.column(name).to_pylist(), want.table.column(name).to_pylist()
        if name.startswith("avg("):
            assert g == pytest.approx(w, rel=1e-9, nan_ok=True)
        else:
            assert g == w, name


def test_query_errors_are_the_workers(engines) -> None:
    _, left, right = engines
    with pytest.raises(ParameterInvalid, match="empty expression"):
        fanned_query(TwoEngines((left, right)), QueryRequest("c"), "id")
