"""Engine.insert throughput: 128-d float vectors in batches of 5,000 with fsync on, and the
on-disk bytes per row after a flush. Usage: .venv/bin/python bench/engine_insert.py [batches]"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

DIM = 128
BATCH = 5_000


def main(batches: int) -> None:
    rng = np.random.default_rng(0)
    schema = CollectionSchema(
        fields=(
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vector", DataType.FLOAT_VECTOR, dim=DIM),
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(EngineConfig(data_dir=Path(tmp), fsync=True, restore_loads=False))
        engine.create_collection("default", "bench", schema)
        timings = []
        for b in range(batches):
            vectors = rng.random((BATCH, DIM), dtype=np.float32)
            table = pa.table(
                {
                    "id": pa.array(np.arange(b * BATCH, (b + 1) * BATCH, dtype=np.int64)),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
                }
            )
            start = time.perf_counter()
            engine.insert("default", "bench", table)
            timings.append(time.perf_counter() - start)
        engine.flush("default", ["bench"])
        coll = engine._resolve("default", "bench")
        segment_bytes = sum(s.nbytes for s in coll.snapshot().sealed)
        wal_bytes = sum(p.stat().st_size for p in coll.wal.files())
        engine.close()
    rows = batches * BATCH
    print(f"rows={rows} batches={batches} batch={BATCH} dim={DIM} fsync=on")
    print(f"insert rows/s (total): {rows / sum(timings):,.0f}")
    print(f"insert rows/s (median batch): {BATCH / statistics.median(timings):,.0f}")
    print(
        f"on-disk bytes/row after flush: {(segment_bytes + wal_bytes) / rows:.1f} "
        f"(raw vector+id+ts = {DIM * 4 + 16})"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
