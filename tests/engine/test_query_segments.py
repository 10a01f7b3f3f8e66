"""Query / get / count over real loaded segments + growing rows, against numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.models import QueryRequest
from sheafdb.engine.read.query import execute_query
from sheafdb.errors import ParameterInvalid, SheafError
from sheafdb.storage.object_store import LocalStore

from .read_plane_world import build_world


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path)


def q(**kw) -> QueryRequest:
    return QueryRequest(collection="c", **kw)


def test_filter_returns_matching_rows_with_primary_key(store) -> None:
    world = build_world(store)
    result = execute_query(world.ctx, q(filter="num == 3 and color == 'red'", output_fields=("color",)))
    ids = world.rows.column("id").to_numpy()
    colors = np.asarray(world.rows.column("color").to_pylist())
    want = ids[(world.rows.column("num").to_numpy() == 3) & (colors == "red")]
    assert sorted(result.table.column("id").to_pylist()) == sorted(want.tolist())
    assert result.output_fields == ("id", "color")
    assert set(result.table.column("color").to_pylist()) == {"red"}


def test_count_star_honours_filter_and_deletes(store) -> None:
    deletes = pa.table({"pk": pa.array([1, 2, 650], pa.int64()), "__ts": pa.array([99, 99, 99], pa.uint64())})
    world = build_world(store, deletes=deletes)
    result = execute_query(world.ctx, q(output_fields=("count(*)",)))
    assert result.table.to_pylist() == [{"count(*)": 700 - 3}]
    filtered = execute_query(world.ctx, q(filter="num < 5", output_fields=("count(*)",)))
    assert filtered.table.column("count(*)")[0].as_py() == 350 - 3  # 1, 2 and 650 all have num < 5


def test_get_by_ids_across_sealed_and_growing(store) -> None:
    deletes = pa.table({"pk": pa.array([301], pa.int64()), "__ts": pa.array([99], pa.uint64())})
    world = build_world(store, deletes=deletes)
    result = execute_query(world.ctx, q(ids=[5, 301, 650, 99999], output_fields=("num", "extra")))
    rows = sorted(
        zip(result.table.column("id").to_pylist(), result.table.column("$meta").to_pylist(), strict=True)
    )
    assert [r[0] for r in rows] == [5, 650]
    assert [json.loads(r[1]) for r in rows] == [{"extra": "x5"}, {"extra": "x650"}]
    by_filter = execute_query(world.ctx, q(filter="id in [5, 301, 650]"))
    assert sorted(by_filter.table.column("id").to_pylist()) == [5, 650]


def test_order_by_primary_key_pages(store) -> None:
    world = build_world(store)
    seen: list[int] = []
    last = -1
    while True:
        page = execute_query(
            world.ctx, q(filter=f"id > {last} and num == 7", limit=25, order_by_primary_key=True)
        )
        ids = page.table.column("id").to_pylist()
        if not ids:
            break
        assert ids == sorted(ids)
        seen.extend(ids)
        last = ids[-1]
    assert seen == [i for i in range(700) if i % 10 == 7]


def test_offset_and_limit(store) -> None:
    world = build_world(store)
    result = execute_query(world.ctx, q(filter="num == 0", offset=5, limit=10, order_by_primary_key=True))
    assert result.table.column("id").to_pylist() == list(range(50, 150, 10))


def test_rules(store) -> None:
    world = build_world(store, fields=("id", "vec"))
    with pytest.raises(ParameterInvalid, match="empty expression should be used with limit"):
        execute_query(world.ctx, q())
    assert execute_query(world.ctx, q(limit=3)).table.num_rows == 3
    with pytest.raises(SheafError, match="field color is not loaded"):
        execute_query(world.ctx, q(filter="id > 3", output_fields=("color",)))
    with pytest.raises(SheafError, match="is not loaded"):
        execute_query(world.ctx, q(filter="num > 3"))
