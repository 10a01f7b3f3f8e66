"""Search over real loaded segments + growing rows, checked against a numpy brute force."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sheafdb.engine.models import SearchRequest, SearchResult
from sheafdb.engine.read import search as search_module
from sheafdb.engine.read.search import execute_search
from sheafdb.errors import ParameterInvalid, SheafError
from sheafdb.storage.object_store import LocalStore

from .read_plane_world import DIM, build_world, oracle


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path)


def per_query(result: SearchResult) -> tuple[list[list], list[list]]:
    ids, scores, start = [], [], 0
    all_ids = result.ids.to_pylist()
    for n in result.topks.tolist():
        ids.append(all_ids[start : start + n])
        scores.append(result.scores[start : start + n].tolist())
        start += n
    return ids, scores


def queries(n: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def req(q: np.ndarray, **kw) -> SearchRequest:
    return SearchRequest(collection="c", vectors=q, limit=kw.pop("limit", 10), **kw)


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_search_matches_brute_force_across_sealed_and_growing(store, metric) -> None:
    world = build_world(store, metric=metric)
    q = queries()
    result = execute_search(world.ctx, req(q, limit=15))
    want_ids, want_scores = oracle(world.rows, q, 15, metric, np.ones(world.rows.num_rows, bool))
    got_ids, got_scores = per_query(result)
    assert got_ids == want_ids
    np.testing.assert_allclose(np.array(got_scores), np.array(want_scores), rtol=1e-4, atol=1e-4)
    assert result.nq == 3 and result.output_fields == ()


def test_index_path_with_mask_agrees_with_exact(store, monkeypatch) -> None:
    monkeypatch.setattr(search_module, "EXACT_SEARCH_MAX_ROWS", 0)  # force the faiss FLAT index
    world = build_world(store)
    q = queries()
    result = execute_search(world.ctx, req(q, filter="num >= 4"))
    keep = world.rows.column("num").to_numpy() >= 4
    assert per_query(result)[0] == oracle(world.rows, q, 10, "L2", keep)[0]


def test_filter_and_deletes_hide_rows(store) -> None:
    # pk 5 deleted after its insert; pk 605 (growing, ts 20) deleted at ts 20: an upsert, survives.
    deletes = pa.table(
        {"pk": pa.array([5, 605, 310], pa.int64()), "__ts": pa.array([11, 20, 50], pa.uint64())}
    )
    world = build_world(store, deletes=deletes)
    q = queries(2)
    result = execute_search(world.ctx, req(q, limit=50, filter="color == 'red' or num > 7"))
    ids = world.rows.column("id").to_numpy()
    keep = (np.isin(world.rows.column("color").to_numpy(zero_copy_only=False), ["red"])) | (
        world.rows.column("num").to_numpy() > 7
    )
    keep &= ~np.isin(ids, [5, 310])
    assert per_query(result)[0] == oracle(world.rows, q, 50, "L2", keep)[0]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    limit=st.integers(1, 40), offset=st.integers(0, 20), threshold=st.integers(0, 10), seed=st.integers(0, 99)
)
def test_offset_limit_filter_property(store, limit, offset, threshold, seed) -> None:
    world = _cached_world(store)
    q = queries(2, seed)
    result = execute_search(world.ctx, req(q, limit=limit, offset=offset, filter=f"num < {threshold}"))
    keep = world.rows.column("num").to_numpy() < threshold
    want = [ids[offset:] for ids in oracle(world.rows, q, offset + limit, "L2", keep)[0]]
    assert per_query(result)[0] == want


_WORLDS: dict[str, object] = {}


def _cached_world(store):
    key = str(store.local_path(""))
    if key not in _WORLDS:
        _WORLDS[key] = build_world(store)
    return _WORLDS[key]


def test_output_fields_star_and_dynamic_keys(store) -> None:
    world = build_world(store)
    q = queries(1)
    result = execute_search(world.ctx, req(q, limit=5, output_fields=("color", "tag")))
    assert result.output_fields == ("color", "tag")
    assert result.fields.column_names == ["color", "$meta"]
    ids = result.ids.to_pylist()
    metas = [json.loads(m) for m in result.fields.column("$meta").to_pylist()]
    assert metas == [{"tag": i % 5} for i in ids]
    assert result.fields.column("color").to_pylist() == [["red", "green", "blue"][i % 3] for i in ids]
    star = execute_search(world.ctx, req(q, limit=5, output_fields=("*",)))
    assert star.fields.column_names == ["id", "vec", "color", "num", "$meta"]
    assert json.loads(star.fields.column("$meta")[0].as_py()) == {"tag": ids[0] % 5, "extra": f"x{ids[0]}"}


def test_partial_load_refuses_unloaded_fields(store) -> None:
    world = build_world(store, fields=("id", "vec"))
    q = queries(1)
    star = execute_search(world.ctx, req(q, limit=3, output_fields=("*",)))
    assert star.fields.column_names == ["id", "vec"]  # only loaded fields, silently
    cases = [
        ({"output_fields": ("color",)}, "field color is not loaded"),
        ({"output_fields": ("tag",)}, "field tag cannot be returned since dynamic field not loaded"),
        ({"filter": "num > 3"}, "is not loaded"),
        ({"filter": "tag == 3"}, "field tag is dynamic but dynamic field is not loaded"),
    ]
    for kwargs, message in cases:
        with pytest.raises(SheafError) as err:
            execute_search(world.ctx, req(q, **kwargs))
        assert message in err.value.message


def test_dimension_mismatch_and_bad_limit_are_1100(store) -> None:
    world = build_world(store)
    with pytest.raises(ParameterInvalid):
        execute_search(world.ctx, req(np.zeros((1, DIM + 1), np.float32)))
    with pytest.raises(ParameterInvalid):
        execute_search(world.ctx, req(queries(1), limit=0))
    with pytest.raises(ParameterInvalid):
        execute_search(world.ctx, req(queries(1), metric_type="IP"))


def test_range_search_keeps_the_window(store) -> None:
    world = build_world(store)
    q = queries(2)
    result = execute_search(world.ctx, req(q, limit=1000, params={"radius": 9.0, "range_filter": 4.0}))
    for got_scores in per_query(result)[1]:
        assert all(4.0 <= s < 9.0 for s in got_scores)
    vecs = world.rows.column("vec").combine_chunks().values.to_numpy().reshape(-1, DIM)
    for row, got_ids in zip(q, per_query(result)[0], strict=True):
        d = ((vecs - row) ** 2).sum(axis=1)
        assert sorted(got_ids) == sorted(world.rows.column("id").to_numpy()[(d >= 4.0) & (d < 9.0)].tolist())


def test_group_by_keeps_group_size_per_value(store) -> None:
    world = build_world(store)
    q = queries(1)
    result = execute_search(
        world.ctx, req(q, limit=2, group_by_field="color", group_size=3, output_fields=("color",))
    )
    colors = result.fields.column("color").to_pylist()
    assert len(colors) == 6 and len(set(colors)) == 2
    assert all(colors.count(c) == 3 for c in set(colors))
    assert result.group_by_values.to_pylist() == colors
    # The first group is the one holding the overall best hit.
    best = oracle(world.rows, q, 1, "L2", np.ones(world.rows.num_rows, bool))[0][0][0]
    assert result.ids.to_pylist()[0] == best


def test_round_decimal(store) -> None:
    world = build_world(store)
    result = execute_search(world.ctx, req(queries(1), limit=5, round_decimal=2))
    assert np.allclose(result.scores, np.round(result.scores, 2))


def test_empty_result_keeps_one_topk_per_query(store) -> None:
    world = build_world(store)
    result = execute_search(world.ctx, req(queries(3), filter="num > 100"))
    assert result.topks.tolist() == [0, 0, 0] and len(result.ids) == 0
