"""``serve --workers 1`` against ``--workers 2``: searches/s, p99, CPU and memory, in one run.

Builds a collection once (R x 128-d HNSW, M=16, efConstruction 100; one sealed segment) with
a server on a fresh data dir, then serves that same data dir (its load is restored at start)
with ``--workers 1`` and ``--workers 2`` in turn, each round:

- C concurrent clients (connections of bench/h2_load.py's one-thread loop, each with one call
  in flight, each sending the same pre-serialized nq=1 SearchRequest, k=10; replies read only
  for their grpc-status: the clients cost the machine little) for
  S seconds: searches/s, p99 latency, and the server's CPU per search (user + system of
  every process of the server: the primary and its workers);
- the server's memory once served: the sum over its processes of RSS (shared pages counted
  once per process), PSS (each shared page split among the processes mapping it: the
  machine's memory the server holds) and USS (pages only one process holds). Measured after
  the rounds from this process, which maps none of the server's libraries: the clients run
  in a process of their own (bench/server_memory.py says why).

Usage: .venv/bin/python bench/workers.py [--rows N] [--seconds S] [--clients 1,4,16] [--rounds N]
Compare rows of one run: the machine's load moves the absolute figures between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from server_memory import measure

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    concurrency = [int(c) for c in args.clients.split(",")]
    data_dir = tempfile.mkdtemp(prefix="sheafdb-workers-bench-")
    try:
        command = [sys.executable, os.path.join(HERE, "workers_clients.py"), "--throughput", data_dir]
        command += [str(args.rows), str(args.seconds), args.clients, str(args.rounds)]
        found = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE).stdout)
        faiss_us: float | None = found["faiss_us"]
        results: dict[tuple[int, int], list[list[float]]] = {}
        for workers, clients, row in found["results"]:
            results.setdefault((workers, clients), []).append(row)
        # Here, in this process that maps none of the server's libraries (see server_memory.py).
        memories: dict[int, list[tuple[int, int, int]]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for workers in (1, 2):
                memories[workers].append(measure(data_dir, workers))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"{args.rows} x 128 HNSW M=16 efC=100, nq=1 k=10; {os.cpu_count()} cores; "
          f"{args.rounds} round(s) of {args.seconds:g} s per row; medians")  # fmt: skip
    if faiss_us is not None:
        print(f"faiss alone (1 thread, ef=64, the segment's index file): {faiss_us:.0f} us CPU per search")
    print("\n| clients | workers | searches/s | p99 (ms) | server CPU per search (us) | searches/s vs 1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for clients in concurrency:
        base = statistics.median(r[0] for r in results[(1, clients)])
        for workers in (1, 2):
            qps, cpu, p99 = (statistics.median(r[i] for r in results[(workers, clients)]) for i in range(3))
            print(f"| {clients} | {workers} | {qps:,.0f} | {p99:.2f} | {cpu:,.0f} | {qps / base:.2f}x |")
    print("\n| workers | RSS sum (MiB) | PSS sum (MiB) | USS sum (MiB) | PSS vs 1 worker |")
    print("| --- | --- | --- | --- | --- |")
    base_pss = statistics.median(m[1] for m in memories[1])
    for workers in (1, 2):
        rss, pss, uss = (statistics.median(m[i] for m in memories[workers]) for i in range(3))
        mib = 1 << 20
        print(
            f"| {workers} | {rss / mib:,.0f} | {pss / mib:,.0f} | {uss / mib:,.0f} | {pss / base_pss:.2f}x |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
