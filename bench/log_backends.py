"""Insert latency through the engine on each log: the file write-ahead log (embedded) against
the PostgreSQL log (``--catalog postgresql://...``, appends fenced by the writer lease).

Both with fsync / synchronous commit on, one process, one client thread, in one run: a 1-row
insert and a 1,000 x 128-d batch insert, p50 and p99 in milliseconds. PostgreSQL is the
throwaway server of scripts/services/postgres on 127.0.0.1 (started and stopped by PID here).

    .venv/bin/python bench/log_backends.py [--single 300] [--batches 40] [--write-doc]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.catalog import open_catalog
from sheafdb.storage.lease_rows import WRITER_LEASE

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.doc_sections import put_section  # noqa: E402
from harness.timing import p50, p99  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = ROOT / "scripts" / "services" / "postgres"
DIM = 128
DB = "default"
SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
    )
)


def rows(start: int, count: int) -> pa.Table:
    vectors = np.random.default_rng(start).random((count, DIM), dtype=np.float32)
    return pa.table(
        {
            "id": pa.array(np.arange(start, start + count, dtype=np.int64)),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
        }
    )


def timed(engine: Engine, name: str, count: int, size: int, first_id: int) -> list[float]:
    batches = [rows(first_id + i * size, size) for i in range(count)]
    took = []
    for batch in batches:
        start = time.perf_counter()
        engine.insert(DB, name, batch)
        took.append((time.perf_counter() - start) * 1000)
    return took


def measure(open_engine: Callable[[], Engine], single: int, batches: int) -> dict[str, list[float]]:
    engine = open_engine()
    try:
        engine.create_collection(DB, "bench", SCHEMA)
        timed(engine, "bench", 20, 1, 10_000_000)  # warm up (connections, first record)
        return {
            "1 row": timed(engine, "bench", single, 1, 0),
            "1,000 x 128": timed(engine, "bench", batches, 1000, 1_000_000),
        }
    finally:
        engine.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--single", type=int, default=300, help="1-row inserts timed")
    parser.add_argument("--batches", type=int, default=40, help="1,000-row inserts timed")
    parser.add_argument("--write-doc", action="store_true", help="update docs/benchmarks.md's section")
    args = parser.parse_args()
    # Seals would mix segment writes into the timings: a bound no run reaches.
    seal_bytes = 1 << 40
    pg_state = Path(subprocess.check_output([str(POSTGRES), "start"], text=True).strip().splitlines()[-1])
    try:
        url = (pg_state / "url").read_text().strip()
        with tempfile.TemporaryDirectory() as tmp:
            results = {
                "file WAL (embedded)": measure(
                    lambda: Engine(
                        EngineConfig(Path(tmp) / "file", seal_bytes=seal_bytes, restore_loads=False)
                    ),
                    args.single,
                    args.batches,
                )
            }
            leases = open_catalog(url, Path(tmp))
            lease = leases.try_acquire_lease(WRITER_LEASE, "bench:0", ttl_s=3600)
            assert lease is not None
            results["PostgreSQL log (fenced)"] = measure(
                lambda: Engine(
                    EngineConfig(
                        Path(tmp) / "pg",
                        seal_bytes=seal_bytes,
                        restore_loads=False,
                        catalog_url=url,
                        writer_lease=lease,
                    )
                ),
                args.single,
                args.batches,
            )
            leases.close()
    finally:
        subprocess.run([str(POSTGRES), "stop", str(pg_state)], check=True)
    lines = [
        "| log | insert | p50 ms | p99 ms | inserts |",
        "| --- | --- | --- | --- | --- |",
    ]
    for log_name, by_size in results.items():
        for size, took in by_size.items():
            lines.append(f"| {log_name} | {size} | {p50(took):.2f} | {p99(took):.2f} | {len(took)} |")
    table = "\n".join(lines)
    print(table)
    if args.write_doc:
        body = (
            "## Insert latency: the PostgreSQL log against the file WAL\n\n"
            "One engine, one client thread, fsync / synchronous commit on, PostgreSQL on 127.0.0.1\n"
            f"(`.venv/bin/python bench/log_backends.py --single {args.single} --batches {args.batches}"
            " --write-doc`, "
            f"{time.strftime('%Y-%m-%d')}, this 2-core machine shared with other work):\n\n"
            + table
            + "\n\nA PostgreSQL append is one INSERT (the lease's fence read in the same statement)"
            " and one commit; a 1,000 x 128 batch is ~0.5 MiB of payload that PostgreSQL writes"
            " to its own WAL and to the table's TOAST storage, where the file log writes it once.\n"
        )
        put_section(ROOT / "docs" / "benchmarks.md", "pg-log", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
