"""The server's CPU per nq=1 search (all its processes), against faiss's own time, in one run.

Builds a 20k x 128-d HNSW collection (M=16, efConstruction 100; one sealed segment) with a
server on a fresh data dir, then, in one run:

- faiss alone: the segment's own index file read with faiss in this process, one thread,
  nq=1 searches with the same parameters the requests carry (k=10, efSearch=64): thread CPU
  per search;
- the real server on that data dir (its load restored at start), ``serve --workers 1`` and
  ``serve --workers 2`` in turn, each round: C concurrent clients (connections of
  bench/h2_load.py's one-thread loop, each with one call in flight, each sending the same
  pre-serialized SearchRequest; replies read only for their grpc-status) for S seconds;
  the CPU (user + system) of every process of the server (psutil: the primary and its
  children) over the run, divided by the searches answered.

The ratio server CPU / faiss CPU is the figure the issue sets (at most 5x). ``--doc`` writes
the table into docs/benchmarks.md's ``cpu-per-search`` section.

Usage: .venv/bin/python bench/cpu_per_search.py [--rows N] [--seconds S] [--clients 16] [--rounds N]
       [--baseline REV]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grpc_latency import raw_requests  # noqa: E402
from harness.doc_sections import put_section  # noqa: E402
from pymilvus import MilvusClient  # noqa: E402
from search_cpu import faiss_cpu_us  # noqa: E402
from server_memory import free_port, start, wait_listening  # noqa: E402
from workers_clients import build, run_clients, stop, wait_loaded  # noqa: E402

HERE = Path(__file__).resolve().parent
# The code served: this tree's (None) or a baseline commit's, extracted into a directory.
Tree = Path | None


def commit(rev: str = "HEAD") -> str:
    done = subprocess.run(["git", "rev-parse", "--short", rev], cwd=HERE, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def extract(rev: str, into: Path) -> Path:
    """The commit's files (``git archive``) under ``into``: the whole tree (run in bench/, git
    archive would take that directory alone, and the server would import this tree's code)."""
    archive = subprocess.run(["git", "archive", rev], cwd=HERE.parent, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    if not (into / "sheafdb" / "__init__.py").is_file():
        raise SystemExit(f"{rev}: no sheafdb package in its archive")
    return into


def serve(data_dir: str, port: int, workers: int, tree: Tree) -> subprocess.Popen[bytes]:
    """``serve --workers N`` of this tree, or of ``tree`` (first on the PYTHONPATH of the server
    and of the worker processes it starts)."""
    if tree is None:
        return start(data_dir, port, workers)
    command = [sys.executable, "-m", "sheafdb", "serve", "--data-dir", data_dir, "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    process = subprocess.Popen(
        [*command, "--workers", str(workers)],
        env=env,
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(process, port)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", default="1,2", help="the --workers values served, comma-separated")
    parser.add_argument("--baseline", help="a commit served in turn with this tree, every round")
    parser.add_argument(
        "--method",
        choices=("Search", "GetVersion"),
        default="Search",
        help="the call measured (GetVersion: the transport's own cost, no search work)",
    )
    parser.add_argument("--doc", type=Path, help="write the table into this report's cpu-per-search section")
    args = parser.parse_args()
    served = [int(w) for w in args.workers.split(",")]
    data_dir = tempfile.mkdtemp(prefix="sheafdb-cpu-bench-")
    trees: dict[str, Tree] = {"this tree": None}
    if args.baseline:
        baseline = Path(tempfile.mkdtemp(prefix="sheafdb-cpu-baseline-"))
        trees = {
            f"before `{commit(args.baseline)}`": extract(args.baseline, baseline),
            f"after `{commit()}`": None,
        }
    loads: list[float] = []
    try:
        port = free_port()
        builder = start(data_dir, port, 1)
        try:
            client = MilvusClient(uri=f"http://127.0.0.1:{port}")
            vectors = build(client, args.rows)
            client.close()
        finally:
            stop(builder)
        queries = (vectors[:2000] + np.float32(0.01)).astype(np.float32)
        payload = raw_requests(queries[123:124], [])["search"][1]
        called = payload if args.method == "Search" else b""  # an empty GetVersionRequest
        faiss_runs: list[float] = []
        results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
        for _ in range(args.rounds):
            faiss_runs.append(faiss_cpu_us(data_dir, queries))
            for workers in served:
                for name, tree in trees.items():
                    port = free_port()
                    server = serve(data_dir, port, workers, tree)
                    try:
                        wait_loaded(port, payload)
                        process = psutil.Process(server.pid)
                        results.setdefault((name, workers), []).append(
                            run_clients(port, called, args.clients, args.seconds, process, args.method)
                        )
                        loads.append(os.getloadavg()[0])
                    finally:
                        stop(server)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        for tree in trees.values():
            if tree is not None:
                shutil.rmtree(tree, ignore_errors=True)
    faiss_us = statistics.median(faiss_runs)
    code_head, code_rule = (" code |", " --- |") if args.baseline else ("", "")
    lines = [
        f"{args.rows:,} x 128-d HNSW (M=16, efConstruction 100, one sealed segment), nq=1, k=10, "
        f"ef=64; {args.clients} clients; {os.cpu_count()} cores; {args.rounds} round(s) of "
        f"{args.seconds:g} s per row, medians; calls: {args.method}; commit `{commit()}`; load average "
        f"{min(loads):.1f}-{max(loads):.1f}.",
        "",
        f"faiss alone (the segment's index file, one thread, same parameters): {faiss_us:.0f} us CPU "
        "per search.",
        "",
        # The code column only when two trees were served.
        f"|{code_head} workers | searches/s | p99 (ms) | server CPU per search (us) | vs faiss |",
        f"|{code_rule} --- | --- | --- | --- | --- |",
    ]
    for workers in served:
        for name in trees:
            rounds = results[(name, workers)]
            qps, cpu, p99 = (statistics.median(r[i] for r in rounds) for i in range(3))
            code = f" {name} |" if args.baseline else ""
            lines.append(f"|{code} {workers} | {qps:,.0f} | {p99:.2f} | {cpu:,.0f} | {cpu / faiss_us:.1f}x |")
    text = "\n".join(lines)
    print(text)
    if args.doc is not None:
        put_section(args.doc, "cpu-per-search", text)


if __name__ == "__main__":
    main()
