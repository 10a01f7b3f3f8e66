"""Test helpers of the read plane (imported by its tests; not a conftest, others share this dir).

Loaded segments built the real way: rows written with segment_files, indexes built and saved
with sheafdb.index, read back with load_segment. Small data, numpy oracles."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.object_store import LocalStore
from sheafdb.storage.records import IndexRecord

DIM = 8
COLORS = ["red", "green", "blue"]

SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, field_id=100, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, field_id=101, dim=DIM),
        FieldSchema("color", DataType.VARCHAR, field_id=102, max_length=16),
        FieldSchema("num", DataType.INT64, field_id=103),
    ),
    enable_dynamic_field=True,
)


def index_record(metric: str = "L2", index_type: str = "HNSW") -> IndexRecord:
    params = {"index_type": index_type, "metric_type": metric}
    if index_type == "HNSW":
        params |= {"M": "16", "efConstruction": "64"}
    return IndexRecord(1, 1, "vec", "vec", params, 0)


def make_rows(rng: np.random.Generator, start: int, n: int, ts: int) -> pa.Table:
    ids = np.arange(start, start + n, dtype=np.int64)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    meta = [json.dumps({"tag": int(i % 5), "extra": f"x{i}"}) for i in ids]
    return pa.table(
        {
            "id": pa.array(ids),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), DIM),
            "color": pa.array([COLORS[i % 3] for i in ids]),
            "num": pa.array(ids % 10),
            "$meta": pa.array(meta),
            "__ts": pa.array(np.full(n, ts, dtype=np.uint64)),
        },
        schema=SCHEMA.arrow_schema(),
    )


@dataclass
class World:
    """Two loaded sealed segments (partitions 1 and 2) and growing rows (partition 1)."""

    ctx: object
    rows: pa.Table  # every row of every source, in source order
    record: IndexRecord


def build_world(
    store: LocalStore,
    *,
    metric: str = "L2",
    index_type: str = "FLAT",
    fields: tuple[str, ...] = ("id", "vec", "color", "num", "$meta"),
    deletes: pa.Table | None = None,
    seed: int = 0,
) -> World:
    from sheafdb.engine.load.loaded_segment import GrowingRows, load_segment
    from sheafdb.engine.read.live_deletes import LiveDeletes
    from sheafdb.engine.read.read_plans import ReadPlans
    from sheafdb.engine.read.search import ReadContext
    from sheafdb.engine.snapshot import SealedSegment, SegmentIndexFile
    from sheafdb.index import build_index, parse_index_params, vectors_from_arrow
    from sheafdb.storage.segment_files import write_segment

    record = index_record(metric, index_type)
    vec_field = SCHEMA.field("vec")
    assert vec_field is not None
    spec = parse_index_params(vec_field, record.params)
    rng = np.random.default_rng(seed)
    sources: list[object] = []
    tables = []
    for segment_id, partition_id, start in [(1, 1, 0), (2, 2, 300)]:
        table = make_rows(rng, start, 300, ts=10)
        columns = write_segment(store, f"seg{segment_id}", table)
        index = build_index(spec, vectors_from_arrow(vec_field, table.column("vec")))
        path = f"seg{segment_id}.vec.index"
        nbytes = index.save(store, path)
        sealed = SealedSegment(
            segment_id,
            partition_id,
            300,
            columns,
            {"vec": SegmentIndexFile("vec", "vec", path, nbytes, record.params)},
        )
        sources.append(
            load_segment(store, SCHEMA, sealed, fields, cancelled=lambda: False, on_bytes=lambda n: None)
        )
        tables.append(table)
    growing = make_rows(rng, 600, 100, ts=20)
    sources.append(
        GrowingRows(1, growing.select([c for c in growing.column_names if c in fields or c == "__ts"]))
    )
    tables.append(growing)
    if deletes is None:
        deletes = pa.table({"pk": pa.array([], pa.int64()), "__ts": pa.array([], pa.uint64())})
    ctx = ReadContext(7, SCHEMA, fields, tuple(sources), LiveDeletes(deletes), (record,), ReadPlans(SCHEMA))
    return World(ctx, pa.concat_tables(tables), record)


def oracle(rows: pa.Table, queries: np.ndarray, k: int, metric: str, keep: np.ndarray) -> tuple[list, list]:
    """Brute-force top-k ids and scores per query over the kept rows."""
    vecs = rows.column("vec").combine_chunks().values.to_numpy().reshape(-1, DIM)
    ids = rows.column("id").to_numpy()
    out_ids, out_scores = [], []
    for q in queries:
        if metric == "L2":
            scores = ((vecs - q) ** 2).sum(axis=1)
            order = np.argsort(np.where(keep, scores, np.inf), kind="stable")
        else:
            if metric == "COSINE":
                scores = vecs @ q / (np.linalg.norm(vecs, axis=1) * np.linalg.norm(q))
            else:
                scores = vecs @ q
            order = np.argsort(np.where(keep, -scores, np.inf), kind="stable")
        order = order[: min(k, int(keep.sum()))]
        out_ids.append(ids[order].tolist())
        out_scores.append(scores[order].tolist())
    return out_ids, out_scores
