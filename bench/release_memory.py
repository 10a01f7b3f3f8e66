"""Where does a release's memory go? A real server, driven through pymilvus, measured inside.

Run: .venv/bin/python bench/release_memory.py [--n 100000] [--dim 128] [--env NAME=VALUE ...]

The parent starts ``sheafdb serve`` in a child process (this file with ``--child``: the real
CLI plus a SIGUSR1 handler that writes a memory breakdown to a JSON file), builds bench/run.py's
collection with its harness (pk, 128-d vector with HNSW M=16 efConstruction=200, VARCHAR tag,
INT64 num, dynamic ``color``), then: release -> load -> the harness's searches, queries and ef
sweep -> release -> partial load (pk, vector) -> release -> load + reads -> release. After each
step: the server's RSS and a breakdown (the accountant's bytes per kind, pyarrow's pool,
/proc/self/smaps_rollup anon vs file, glibc's mallinfo2, threads, how many loaded segments and
faiss indexes are alive). One JSON line per step, the anonymous mappings that grew between
"before load" and "released", then a summary line (``freed_share`` as bench/run.py computes it).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

COLLECTION = "bench"  # the harness's collection
SETTLE_S = 1.0  # as bench/harness: let the server finish freeing before RSS is read


# -- the child: the real server plus a breakdown on SIGUSR1 ----------------------------------
class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo() -> dict[str, float]:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallinfo2"):
        return {}
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    # arena: bytes of the sbrk/heap arenas; uordblks in use, fordblks free inside them;
    # hblkhd: bytes in blocks served by their own mmap (freed at once on free()).
    return {
        "arena_mib": info.arena / 2**20,
        "arena_in_use_mib": info.uordblks / 2**20,
        "arena_free_mib": info.fordblks / 2**20,
        "mmapped_mib": info.hblkhd / 2**20,
    }


def _smaps() -> dict[str, float]:
    out: dict[str, float] = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if parts[0] in ("Rss:", "Anonymous:", "Pss_File:", "Pss_Anon:"):
                out[parts[0].rstrip(":").lower() + "_mib"] = int(parts[1]) / 1024
    return out


def _anon_maps() -> dict[str, list[Any]]:
    """Resident anonymous mappings of 256 KiB or more: start -> [size KiB, RSS KiB, name]."""
    maps: dict[str, list[Any]] = {}
    head: list[str] = []
    with open("/proc/self/smaps") as f:
        for line in f:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):
                head = line.split()
            elif first == "Anonymous:" and int(line.split()[1]) >= 256:
                start, stop = (int(x, 16) for x in head[0].split("-"))
                name = head[5] if len(head) > 5 else ""
                maps[head[0].split("-")[0]] = [(stop - start) // 1024, int(line.split()[1]), name]
    return maps


def _breakdown() -> dict[str, Any]:
    import psutil
    import pyarrow as pa

    from sheafdb.engine.load.loaded_segment import LoadedSegment
    from sheafdb.engine.load.memory import MemoryAccountant
    from sheafdb.index.dense import DenseIndex

    process = psutil.Process()
    kinds: dict[str, int] = {}
    live = [o for o in gc.get_objects() if isinstance(o, MemoryAccountant)]
    for accountant in live:
        with accountant._lock:  # a diagnostic peek at the ledger
            for key, nbytes in accountant._blocks.items():
                kinds[key.kind] = kinds.get(key.kind, 0) + nbytes
    pool = pa.default_memory_pool()
    return {
        "rss_mib": process.memory_info().rss / 2**20,
        "threads": process.num_threads(),
        "accounted_mib": {k: v / 2**20 for k, v in kinds.items()},
        "arrow_pool": pool.backend_name,
        "arrow_allocated_mib": pool.bytes_allocated() / 2**20,
        "arrow_max_mib": pool.max_memory() / 2**20,
        "live_loaded_segments": sum(isinstance(o, LoadedSegment) for o in gc.get_objects()),
        "live_dense_indexes": sum(isinstance(o, DenseIndex) for o in gc.get_objects()),
        **_smaps(),
        **_mallinfo(),
        "anon_maps": _anon_maps(),
    }


def child(argv: list[str]) -> int:
    stats_path = Path(argv[0])
    from sheafdb.cli import main

    def dump(signum: int, frame: object) -> None:
        tmp = stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(_breakdown()))
        tmp.rename(stats_path)

    signal.signal(signal.SIGUSR1, dump)
    return main(["serve", *argv[1:]])


# -- the parent: the workload --------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.stats = workdir / "stats.json"
        self.log = (workdir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                str(self.stats),
                "--data-dir",
                str(workdir / "data"),
                "--port",
                str(self.port),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )

    def client(self) -> Any:
        from pymilvus import MilvusClient

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                client = MilvusClient(uri=f"http://127.0.0.1:{self.port}", timeout=5)
                client.list_collections()
                return client
            except Exception:  # noqa: BLE001 - not serving yet
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def breakdown(self) -> dict[str, Any]:
        time.sleep(SETTLE_S)
        self.stats.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while not self.stats.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("no breakdown from the server")
            time.sleep(0.05)
        return json.loads(self.stats.read_text())

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _load(client: Any, **kw: Any) -> float:
    began = time.perf_counter()
    client.load_collection(COLLECTION, **kw)
    while str(client.get_load_state(COLLECTION)["state"]) != "Loaded":
        time.sleep(0.02)
    return time.perf_counter() - began


def run(n: int, dim: int, workdir: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """bench/run.py's workload (its harness, unchanged) against a server we can look inside."""
    from harness.dataset import make_dataset
    from harness.milvus_workload import ServerRepeat, WorkloadSizes
    from harness.servers import sheafdb_kind

    sizes = WorkloadSizes()
    data = make_dataset(n, dim, max(sizes.latency_queries, sizes.batch_nq, sizes.sweep_queries))
    workload = ServerRepeat(sheafdb_kind(), data, sizes, workdir, sweep=True)
    server = _Server(workdir, env)
    steps: list[dict[str, Any]] = []

    def step(name: str, **extra: float) -> None:
        row = {"step": name, **extra, **server.breakdown()}
        steps.append(row)
        shown = {k: v for k, v in row.items() if k != "anon_maps"}
        print(json.dumps(shown), flush=True)

    def reads() -> dict[str, float]:
        workload._searches(client)
        workload._queries(client)
        workload._ef_sweep(client)
        return {"search_p50_ms": workload.metrics["search_p50_ms_ef64"]}

    try:
        client = server.client()
        workload._build(client)
        client.release_collection(COLLECTION)
        step("before_load")
        seconds = _load(client)
        step("loaded", load_s=seconds)
        step("after_reads", **reads())
        client.release_collection(COLLECTION)
        step("released")
        seconds = _load(client, load_fields=["pk", "vector"], skip_load_dynamic_field=True)
        step("partial_loaded", load_s=seconds)
        client.release_collection(COLLECTION)
        step("partial_released")
        seconds = _load(client)
        step("reloaded", load_s=seconds, **reads())
        client.release_collection(COLLECTION)
        step("released_again")
    finally:
        server.stop()
    return steps


def grown_maps(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The anonymous mappings holding more resident memory at ``after`` than at ``before``."""
    old = before["anon_maps"]
    grown = []
    for start, (size_kib, rss_kib, name) in after["anon_maps"].items():
        was = old.get(start, [0, 0, ""])[1]
        if rss_kib - was >= 512:
            text = f"{start} size={size_kib}K rss={rss_kib}K (+{rss_kib - was}K) {name}"
            grown.append((rss_kib - was, text))
    return [text for _, text in sorted(grown, reverse=True)[:12]]


def summary(steps: list[dict[str, Any]]) -> dict[str, float]:
    rss = {s["step"]: s["rss_mib"] for s in steps}
    # As bench/run.py: the share of what the load added (before the reads) that release gives back.
    added = rss["loaded"] - rss["before_load"]
    added_again = rss["reloaded"] - rss["partial_released"]
    return {
        "rss_before_load": rss["before_load"],
        "rss_loaded": rss["loaded"],
        "rss_after_reads": rss["after_reads"],
        "rss_released": rss["released"],
        "freed_share": (rss["loaded"] - rss["released"]) / added if added > 0 else float("nan"),
        "rss_partial_loaded": rss["partial_loaded"],
        "rss_partial_released": rss["partial_released"],
        "rss_reloaded": rss["reloaded"],
        "rss_released_again": rss["released_again"],
        "freed_share_again": (rss["reloaded"] - rss["released_again"]) / added_again
        if added_again > 0
        else float("nan"),
    }


def main() -> None:
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2:]))
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server process")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="release-memory-") as tmp:
        steps = run(args.n, args.dim, Path(tmp), env)
        by_step = {s["step"]: s for s in steps}
        for line in grown_maps(by_step["before_load"], by_step["released"]):
            print("kept after the first release:", line)
        print(json.dumps({"summary": summary(steps), "pid": os.getpid()}))


if __name__ == "__main__":
    main()
