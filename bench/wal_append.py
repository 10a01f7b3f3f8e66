"""Write-ahead-log append throughput with fsync on: 5,000-row batches of 128-d float32 + int64 pk.

Runs one appender, then several concurrent appenders (group commit), and prints appends/s,
rows/s and how many fsyncs the log issued. Kept small on purpose (shared machine):

    .venv/bin/python bench/wal_append.py [--rows 5000] [--appends 20] [--threads 4] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from sheafdb.storage.wal import WriteAheadLog

DIM = 128


def make_batch(seed: int, rows: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    vectors = rng.random((rows, DIM), dtype=np.float32)
    return pa.table(
        {
            "pk": pa.array(np.arange(seed * rows, (seed + 1) * rows, dtype=np.int64)),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
        }
    )


class FsyncCounter:
    """Counts os.fsync calls (the real fsync still runs)."""

    def __init__(self) -> None:
        self.calls = 0
        self._real = os.fsync
        self._lock = threading.Lock()

    def __enter__(self) -> FsyncCounter:
        def counted(fd: int) -> None:
            with self._lock:
                self.calls += 1
            self._real(fd)

        os.fsync = counted
        return self

    def __exit__(self, *exc: object) -> None:
        os.fsync = self._real


def run(directory: Path, batches: list[pa.Table], threads: int, appends_per_thread: int) -> tuple[float, int]:
    wal = WriteAheadLog(directory, fsync=True)
    barrier = threading.Barrier(threads + 1)

    def appender(t: int) -> None:
        barrier.wait()
        for i in range(appends_per_thread):
            wal.append("insert", 1, i, batches[(t + i) % len(batches)])

    workers = [threading.Thread(target=appender, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    with FsyncCounter() as counter:
        barrier.wait()
        start = time.perf_counter()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
    wal.close()
    return elapsed, counter.calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000, help="rows per batch")
    parser.add_argument("--appends", type=int, default=20, help="appends per configuration")
    parser.add_argument("--threads", type=int, default=4, help="concurrent appenders in the second run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    batches = [make_batch(seed, args.rows) for seed in range(4)]
    mib = sum(b.nbytes for b in batches) / len(batches) / 2**20
    print(f"batch: {args.rows} rows x {DIM}-d float32 + int64 pk = {mib:.2f} MiB; fsync on")
    for threads in (1, args.threads):
        per_thread = max(1, args.appends // threads)
        total = per_thread * threads
        rates, fsyncs = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                elapsed, calls = run(Path(tmp), batches, threads, per_thread)
            rates.append(total / elapsed)
            fsyncs.append(calls)
        rate = statistics.median(rates)
        print(
            f"{threads} appender(s): {rate:7.1f} appends/s  {rate * args.rows:11,.0f} rows/s  "
            f"{rate * mib:6.1f} MiB/s  fsyncs/append {statistics.median(fsyncs) / total:.2f}  "
            f"(median of {args.repeats}, {total} appends each)"
        )


if __name__ == "__main__":
    main()
