"""Insert throughput through pymilvus against a real ``python -m sheafdb serve``, and where the
server's share of each insert goes.

Rows are shaped as bench/run.py's workload (harness/milvus_workload.py): ``pk``, a 128-d
``vector``, ``tag`` (VARCHAR), ``num`` and the dynamic key ``color``, sent as row dicts in
batches of 5,000 through ``MilvusClient.insert``. Prints client rows/s, the wall time per call,
the server process's CPU seconds per call (psutil, all threads: foreground and background) and
this client process's (pymilvus packing the rows): when the client's share is most of the
wall, the server is not what bounds the rate.

``--index-first`` creates the HNSW index before inserting, so every seal during the inserts
queues a background build (the situation the profile saw); ``--py-spy`` samples the server
with py-spy (from .bench-venv) and prints the sheafdb functions with the most samples.

Run: .venv/bin/python bench/grpc_insert.py [--rows 100000] [--index-first] [--py-spy]
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from pymilvus import DataType, MilvusClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.servers import BENCH_VENV, RunningServer, sheafdb_kind  # noqa: E402

COLLECTION = "bench"
BATCH = 5_000
DIM = 128
COLORS = np.array(["red", "green", "blue", "grey"])


def make_batches(rows: int, seed: int = 7) -> list[list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    vectors = rng.random((rows, DIM), dtype=np.float32)
    tags = rng.choice(np.array(["a", "b", "c"]), rows)
    colors = rng.choice(COLORS, rows)
    nums = rng.permutation(rows)
    return [
        [
            {"pk": i, "vector": vectors[i], "tag": str(tags[i]), "num": int(nums[i]), "color": str(colors[i])}
            for i in range(start, min(start + BATCH, rows))
        ]
        for start in range(0, rows, BATCH)
    ]


def create(client: MilvusClient, index_first: bool) -> None:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    schema.add_field("num", DataType.INT64)
    client.create_collection(COLLECTION, schema=schema)
    if index_first:
        params = client.prepare_index_params()
        params.add_index(
            field_name="vector", index_type="HNSW", metric_type="L2", params={"M": 16, "efConstruction": 200}
        )
        client.create_index(COLLECTION, params)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def start_py_spy(pid: int, out: Path, idle: bool = True) -> subprocess.Popen[bytes] | None:
    """py-spy recording ``pid`` into ``out``; ``idle=False`` keeps only threads on a CPU."""
    py_spy = BENCH_VENV / "bin" / "py-spy"
    if not py_spy.exists():
        print(f"py-spy not found at {py_spy}; skipping the profile")
        return None
    command = [str(py_spy), "record", "--pid", str(pid), "--rate", "100", "--format", "raw"]
    command += ["--idle"] if idle else []
    return subprocess.Popen(
        [*command, "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def summarize_profile(
    path: Path, top: int = 25, modules: tuple[str, ...] = ("sheafdb/", "faiss", "pyarrow")
) -> None:
    """Inclusive sample counts of the functions of ``modules`` (raw format: 'frame;frame;... count')."""
    inclusive: collections.Counter[str] = collections.Counter()
    busy = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        # Idle threads wait in a lock, a selector or the queue: count only working stacks.
        if any(w in frames[-1] for w in ("wait (threading", "select (selectors", "get (queue", "_wait_once")):
            continue
        busy += count
        # One entry per function: drop the line number py-spy puts in each frame.
        for function in {frame.rsplit(":", 1)[0] + ")" for frame in frames}:
            if any(module in function for module in modules):
                inclusive[function] += count
    print(f"\nserver busy samples: {busy}")
    for frame, count in inclusive.most_common(top):
        print(f"{100 * count / max(busy, 1):5.1f}%  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--index-first", action="store_true", help="create the HNSW index before inserting")
    parser.add_argument("--py-spy", action="store_true", help="sample the server with py-spy")
    args = parser.parse_args()
    batches = make_batches(args.rows)
    with tempfile.TemporaryDirectory(prefix="grpc-insert-") as tmp:
        server = RunningServer(sheafdb_kind(), Path(tmp) / "data", Path(tmp) / "server.log")
        try:
            client, _ = server.wait_serving()
            create(client, args.index_first)
            profile_path = Path(tmp) / "profile.txt"
            spy = start_py_spy(server.pid, profile_path) if args.py_spy else None
            cpu_before = cpu_seconds(server.pid)
            client_cpu_before = cpu_seconds(os.getpid())
            walls = []
            for batch in batches:
                began = time.perf_counter()
                client.insert(COLLECTION, batch)
                walls.append(time.perf_counter() - began)
            server_cpu = cpu_seconds(server.pid) - cpu_before
            client_cpu = cpu_seconds(os.getpid()) - client_cpu_before
            total = sum(walls)
            print(f"rows: {args.rows}  batches: {len(batches)}  index first: {args.index_first}")
            print(f"insert rows/s: {args.rows / total:,.0f}")
            median_ms, max_ms = 1000 * float(np.median(walls)), 1000 * max(walls)
            print(f"wall per call: median {median_ms:.1f} ms, max {max_ms:.1f} ms")
            print(f"server CPU per call (all threads): {1000 * server_cpu / len(batches):.1f} ms")
            print(f"client CPU per call (pymilvus): {1000 * client_cpu / len(batches):.1f} ms")
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                spy.wait(30)
                if profile_path.exists():
                    summarize_profile(profile_path)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
