"""Bulk import jobs in the engine: a job stopped by a shutdown imports all of its rows or none
of them (one log record), and after a restart the rows it imported are there, sealed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sheafdb.engine.engine import Engine
from sheafdb.engine.imports.jobs import ImportJobState
from tests.engine.conftest import DIM, basic_schema


def _parquet(path: Path, start: int, count: int) -> None:
    vectors = np.random.default_rng(start).random((count, DIM), dtype=np.float32)
    pq.write_table(
        pa.table(
            {
                "id": pa.array(range(start, start + count), type=pa.int64()),
                "vec": pa.array(list(vectors), type=pa.list_(pa.float32())),
                "tag": pa.array([f"t{i % 5}" for i in range(count)]),
            }
        ),
        path,
    )


def test_a_job_stopped_by_shutdown_imports_all_or_nothing(
    open_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    job_files = []
    for job in range(3):
        for part in range(2):
            _parquet(files / f"j{job}p{part}.parquet", (job * 2 + part) * 60_000, 60_000)
        job_files.append([[f"j{job}p0.parquet"], [f"j{job}p1.parquet"]])
    engine = open_engine(import_root=files)
    engine.create_collection("default", "c", basic_schema())
    jobs = [engine.imports.submit("default", "c", "", groups, {}) for groups in job_files]
    engine.close()  # while the first job reads its files; the others are queued
    states = [engine.imports.get(j) for j in jobs]
    for view in states:
        assert view.state in (ImportJobState.Completed, ImportJobState.Failed)
        if view.state is ImportJobState.Failed:
            assert view.reason == "the server stopped before the import job finished: importing data failed"
    assert states[-1].state is ImportJobState.Failed  # never started
    completed = sum(1 for v in states if v.state is ImportJobState.Completed)

    reopened = open_engine(import_root=files)
    assert reopened.collection_row_count("default", "c") == completed * 120_000
    assert reopened.imports.list("default") == []  # job records are not kept across restarts
