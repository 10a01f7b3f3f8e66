"""A search's result table: the key column only when asked, every asked column's values those
of the hit rows; one source (searched on the request thread, no task list) and several alike,
with deletes hiding rows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sheafdb.engine.models import SearchRequest
from sheafdb.engine.read.search import execute_search
from sheafdb.storage.object_store import LocalStore

from .read_plane_world import DIM, build_world, oracle

DELETES = pa.table({"pk": pa.array([3, 17, 310, 650], pa.int64()), "__ts": pa.array([50] * 4, pa.uint64())})


@pytest.mark.parametrize("one_source", [True, False])
@pytest.mark.parametrize(
    ("asked", "columns"),
    [
        ((), ()),
        (("id",), ("id",)),
        (("num",), ("num",)),
        (("id", "num"), ("id", "num")),
        (("num", "color", "id"), ("id", "num", "color")),  # the key first, as the plan gathers
    ],
)
def test_result_columns_are_the_asked_ones_with_the_hit_rows_values(
    tmp_path: Path, one_source: bool, asked: tuple[str, ...], columns: tuple[str, ...]
) -> None:
    world = build_world(LocalStore(tmp_path), deletes=DELETES)
    ctx, rows = world.ctx, world.rows
    if one_source:
        ctx = dataclasses.replace(ctx, sources=ctx.sources[:1])  # type: ignore[type-var]
        rows = rows.slice(0, 300)
    queries = np.random.default_rng(4).standard_normal((3, DIM)).astype(np.float32)
    result = execute_search(ctx, SearchRequest("c", queries, 12, output_fields=asked))
    keep = ~np.isin(rows.column("id").to_numpy(), DELETES.column("pk").to_numpy())
    want_ids, _ = oracle(rows, queries, 12, "L2", keep)
    assert result.ids.to_pylist() == [i for per_query in want_ids for i in per_query]
    assert tuple(result.fields.column_names) == columns
    assert result.fields.num_rows == len(result.ids)
    by_id = {row["id"]: row for row in rows.select(["id", "num", "color"]).to_pylist()}
    for name in columns:
        assert result.fields.column(name).to_pylist() == [by_id[i][name] for i in result.ids.to_pylist()]
