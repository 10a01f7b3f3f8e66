"""Soak: a busy production day, compressed. Many clients at once against one real server.

Run: .venv/bin/python bench/soak.py --minutes 10 [--uri http://127.0.0.1:19530 --pid PID]

Without ``--uri`` it starts ``sheafdb serve --auth`` on a free port in a temporary data dir
and stops it by PID at the end. Threads, each with its own pymilvus client:

- writers (``--writers``, default 3): each owns a range of primary keys and inserts, upserts
  (existing and new keys) and deletes in it, flushing now and then, and after every write
  checks ``count(*)`` over its range at Strong consistency against its own model of the rows;
- readers: searches (with a filter, nq 1 and 8) and filtered queries;
- the lifecycle thread: release / load / release / partial load (``load_fields``) cycles, and
  every few cycles an index rebuild (release, drop the index, create another kind without
  waiting for its build, load).

A read that finds the collection released (101, 201, "not loaded") is expected and counted by
code; a load still not Loaded after ``LOAD_TIMEOUT_S`` is counted by its code too (pymilvus
gives up waiting) and the cycle goes on. It reports calls per operation, errors by operation
and code, wrong counts and the server's RSS at start and end, and exits 1 on any internal
error (code 65535, or an error that is not a Milvus status) or any wrong count.
"""

from __future__ import annotations

import argparse
import collections
import functools
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from pymilvus import DataType, MilvusClient, MilvusException

COLLECTION = "soak"
DIM = 16
TOKEN = "root:Milvus"
RANGE = 1_000_000  # keys per writer
INTERNAL = 65535
MAX_LIVE = 10_000  # rows per writer: past it the writer deletes more, so index rebuilds stay short
# A load still waiting after this long is counted as an error and the cycle
# goes on: pymilvus would otherwise wait for Loaded for ever.
LOAD_TIMEOUT_S = 60.0
INDEXES = (
    ("HNSW", {"M": 8, "efConstruction": 64}),
    ("IVF_FLAT", {"nlist": 16}),
    ("FLAT", {}),
)


@dataclass
class Tally:
    """Calls and outcomes, shared by every thread (one lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)
    samples: dict[tuple[str, int], str] = field(default_factory=dict)
    wrong_counts: list[str] = field(default_factory=list)

    def call(self, op: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """Run one client call; (True, result) or (False, the error's code)."""
        with self.lock:
            self.calls[op] += 1
        try:
            return True, fn()
        except MilvusException as e:
            code = int(e.code)
            self._error(op, code, e.message)
            return False, code
        except Exception as e:  # noqa: BLE001 - anything not a Milvus status is an internal error
            self._error(op, INTERNAL, f"{type(e).__name__}: {e}")
            return False, INTERNAL

    def _error(self, op: str, code: int, message: str) -> None:
        with self.lock:
            self.errors[(op, code)] += 1
            self.samples.setdefault((op, code), message[:300])

    def wrong(self, text: str) -> None:
        with self.lock:
            self.wrong_counts.append(text)


def rows(keys: list[int], rng: random.Random, version: int) -> list[dict[str, Any]]:
    return [
        {
            "id": k,
            "vector": [rng.random() for _ in range(DIM)],
            "tag": f"t{k % 7}",
            "num": version,
            "color": rng.choice(("red", "green", "blue")),
        }
        for k in keys
    ]


class Writer:
    """Writes in its own key range and checks the count there after each write."""

    def __init__(self, uri: str, index: int, tally: Tally, stop: threading.Event) -> None:
        self.client = MilvusClient(uri=uri, token=TOKEN)
        self.lo = index * RANGE
        self.next_key = self.lo
        self.live: set[int] = set()
        self.rng = random.Random(index)
        self.tally = tally
        self.stop = stop
        self.version = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.version += 1
            choice = self.rng.random()
            if len(self.live) > MAX_LIVE:
                self._delete(500)
            elif choice < 0.45 or not self.live:
                self._insert()
            elif choice < 0.7:
                self._upsert()
            elif choice < 0.95:
                self._delete()
            else:
                self.tally.call("flush", lambda: self.client.flush(COLLECTION))
            self._check()

    def _insert(self) -> None:
        keys = list(range(self.next_key, self.next_key + self.rng.randint(1, 200)))
        self.next_key += len(keys)
        ok, _ = self.tally.call(
            "insert", lambda: self.client.insert(COLLECTION, rows(keys, self.rng, self.version))
        )
        if ok:
            self.live.update(keys)

    def _upsert(self) -> None:
        old = self.rng.sample(sorted(self.live), min(len(self.live), self.rng.randint(1, 50)))
        new = list(range(self.next_key, self.next_key + self.rng.randint(0, 20)))
        self.next_key += len(new)
        ok, _ = self.tally.call(
            "upsert", lambda: self.client.upsert(COLLECTION, rows(old + new, self.rng, self.version))
        )
        if ok:
            self.live.update(new)

    def _delete(self, most: int = 60) -> None:
        keys = self.rng.sample(sorted(self.live), min(len(self.live), self.rng.randint(1, most)))
        ok, _ = self.tally.call("delete", lambda: self.client.delete(COLLECTION, ids=keys))
        if ok:
            self.live.difference_update(keys)

    def _check(self) -> None:
        expr = f"id >= {self.lo} and id < {self.lo + RANGE}"
        ok, result = self.tally.call(
            "count",
            lambda: self.client.query(
                COLLECTION, filter=expr, output_fields=["count(*)"], consistency_level="Strong"
            ),
        )
        if ok:
            got = int(result[0]["count(*)"])
            if got != len(self.live):
                self.tally.wrong(f"writer {self.lo // RANGE}: count(*) {got}, expected {len(self.live)}")


def reader(uri: str, seed: int, tally: Tally, stop: threading.Event) -> None:
    client = MilvusClient(uri=uri, token=TOKEN)
    rng = random.Random(seed)
    while not stop.is_set():
        nq = rng.choice((1, 1, 8))
        vectors = [[rng.random() for _ in range(DIM)] for _ in range(nq)]
        expr = f"id % 3 != {rng.randint(0, 2)}"
        tally.call(
            "search",
            functools.partial(
                client.search, COLLECTION, vectors, limit=10, filter=expr, output_fields=["id"]
            ),
        )
        ok, _ = tally.call(
            "query",
            lambda: client.query(
                COLLECTION, filter=f"id < {rng.randint(100, 5000)}", output_fields=["id"], limit=50
            ),
        )
        if not ok:
            time.sleep(0.05)  # released: leave the cores to the writers until it is loaded again


def lifecycle(uri: str, tally: Tally, stop: threading.Event) -> None:
    client = MilvusClient(uri=uri, token=TOKEN)
    cycle = 0
    while not stop.is_set():
        cycle += 1
        tally.call("release", lambda: client.release_collection(COLLECTION))
        tally.call("load", lambda: client.load_collection(COLLECTION, timeout=LOAD_TIMEOUT_S))
        time.sleep(0.5)
        tally.call("release", lambda: client.release_collection(COLLECTION))
        tally.call(
            "partial_load",
            lambda: client.load_collection(COLLECTION, load_fields=["id", "vector"], timeout=LOAD_TIMEOUT_S),
        )
        time.sleep(0.5)
        if cycle % 5 == 0:
            kind, params = INDEXES[(cycle // 5) % len(INDEXES)]
            tally.call("release", lambda: client.release_collection(COLLECTION))
            tally.call("drop_index", lambda: client.drop_index(COLLECTION, "vector"))
            index = client.prepare_index_params()
            index.add_index("vector", index_type=kind, metric_type="L2", params=params)
            tally.call(
                "create_index",
                functools.partial(client.create_index, COLLECTION, index, sync=False),
            )
            tally.call("load", lambda: client.load_collection(COLLECTION, timeout=LOAD_TIMEOUT_S))
        time.sleep(0.3)
    # The loop may stop right after a partial load: release first, or this load of every field
    # would change the loaded field list, which Milvus refuses (1100) as the server does.
    tally.call("release", lambda: client.release_collection(COLLECTION))
    tally.call("load", lambda: client.load_collection(COLLECTION, timeout=LOAD_TIMEOUT_S))


def create_collection(uri: str) -> None:
    client = MilvusClient(uri=uri, token=TOKEN)
    if client.has_collection(COLLECTION):
        client.drop_collection(COLLECTION)
    schema = client.create_schema(enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    schema.add_field("num", DataType.INT64)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 64})
    client.create_collection(COLLECTION, schema=schema, index_params=index)


def rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return None


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log = (data_dir / "server.log").open("wb")
    command = [sys.executable, "-m", "sheafdb", "serve", "--auth", "--data-dir", str(data_dir / "data")]
    process = subprocess.Popen([*command, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "SheafDB ready on" in (data_dir / "server.log").read_text(errors="replace"):
            return process, f"http://127.0.0.1:{port}"
        if process.poll() is not None:
            break
        time.sleep(0.2)
    stop_server(process)
    raise SystemExit(f"server did not start:\n{(data_dir / 'server.log').read_text(errors='replace')}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def report(tally: Tally, minutes: float, rss_start: float | None, rss_end: float | None) -> int:
    print(f"soak: {minutes:g} min, {sum(tally.calls.values())} calls")
    for op, n in sorted(tally.calls.items()):
        print(f"  {op:<13} {n:>8} calls")
    print("errors by operation and code:")
    for (op, code), n in sorted(tally.errors.items()):
        print(f"  {op:<13} code {code:<6} {n:>6}  e.g. {tally.samples[(op, code)]}")
    internal = sum(n for (_, code), n in tally.errors.items() if code == INTERNAL)
    print(f"internal errors: {internal}")
    print(f"wrong counts: {len(tally.wrong_counts)}")
    for text in tally.wrong_counts[:20]:
        print(f"  {text}")
    fmt = lambda v: "n/a" if v is None else f"{v:.0f} MiB"  # noqa: E731
    print(f"server RSS: start {fmt(rss_start)}, end {fmt(rss_end)}")
    return 1 if internal or tally.wrong_counts else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--uri", help="a running server (default: start one)")
    parser.add_argument("--pid", type=int, help="the running server's PID, for its RSS")
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--readers", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # errors are tallied, not logged

    with tempfile.TemporaryDirectory(prefix="sheafdb-soak-") as tmp:
        process = None
        uri, pid = args.uri, args.pid
        if uri is None:
            process, uri = start_server(Path(tmp))
            pid = process.pid
        try:
            create_collection(uri)
            tally, stop = Tally(), threading.Event()
            rss_start = rss_mib(pid)
            threads = [threading.Thread(target=Writer(uri, i, tally, stop).run) for i in range(args.writers)]
            threads += [
                threading.Thread(target=reader, args=(uri, i, tally, stop)) for i in range(args.readers)
            ]
            threads.append(threading.Thread(target=lifecycle, args=(uri, tally, stop)))
            for thread in threads:
                thread.start()
            stop.wait(args.minutes * 60)
            stop.set()
            for thread in threads:
                thread.join()
            rss_end = rss_mib(pid)
            if process is not None and process.poll() is not None:
                print(f"the server exited with status {process.returncode}")
                return 1
            return report(tally, args.minutes, rss_start, rss_end)
        finally:
            if process is not None:
                stop_server(process)


if __name__ == "__main__":
    sys.exit(main())
