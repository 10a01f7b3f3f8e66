"""Snapshot cost against the data it captures: create and restore times and the bytes they add
on disk, for 128-d float vectors, next to a plain copy of the same segment files (what a
snapshot that copied would cost). Usage: .venv/bin/python bench/snapshots.py [rows]"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.snapshot_restore import RestoreState
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

DIM = 128
BATCH = 20_000


def disk_bytes(root: Path) -> int:
    """Allocated bytes, each inode once (hard links are not counted twice)."""
    seen: set[int] = set()
    total = 0
    for path in root.rglob("*"):
        st = path.lstat()
        if path.is_file() and st.st_ino not in seen:
            seen.add(st.st_ino)
            total += st.st_blocks * 512
    return total


def main(rows: int) -> None:
    rng = np.random.default_rng(0)
    schema = CollectionSchema(
        fields=(
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vector", DataType.FLOAT_VECTOR, dim=DIM),
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        engine = Engine(EngineConfig(data_dir=data, restore_loads=False, compaction_min_segments=None))
        engine.create_collection("default", "c", schema)
        for start in range(0, rows, BATCH):
            n = min(BATCH, rows - start)
            vectors = rng.random((n, DIM), dtype=np.float32)
            engine.insert(
                "default",
                "c",
                pa.table(
                    {
                        "id": pa.array(range(start, start + n), pa.int64()),
                        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
                    }
                ),
            )
        engine.flush("default", ["c"])
        before = disk_bytes(data)

        t0 = time.perf_counter()
        engine.snapshots.create("default", "c", "s", "")
        create_s = time.perf_counter() - t0
        after_snapshot = disk_bytes(data)

        t0 = time.perf_counter()
        job_id = engine.restores.start(engine.snapshots.find("default", "c", "s"), "default", "back")
        while engine.restores.job(job_id).state not in (RestoreState.COMPLETED, RestoreState.FAILED):
            time.sleep(0.001)
        restore_s = time.perf_counter() - t0
        after_restore = disk_bytes(data)

        t0 = time.perf_counter()
        shutil.copytree(data / "collections", Path(tmp) / "copied")
        os.sync()
        copy_s = time.perf_counter() - t0
        engine.close()

    print(f"rows {rows:,}, {before / 2**20:.1f} MiB of data on disk")
    print(f"create_snapshot: {create_s * 1000:.1f} ms, +{(after_snapshot - before) / 2**10:.0f} KiB")
    added = (after_restore - after_snapshot) / 2**10
    print(f"restore (job to Completed): {restore_s * 1000:.1f} ms, +{added:.0f} KiB")
    print(f"plain copy of the segment files: {copy_s * 1000:.1f} ms, +{before / 2**20:.1f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
