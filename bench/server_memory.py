"""The memory a ``serve --workers N`` server holds, measured with no other process mapping its
libraries: this module imports only the standard library and psutil, and so does
bench/workers.py, which measures with it; the clients run in a process of their own.

Why: PSS splits a shared page among every process mapping it, the
server's or not. A benchmark process that imported grpc, numpy and pyarrow from the same
environment maps the same library files as the server, so it took a share of those pages off
the server's sum: ~30 MiB off a one-process server (121 instead of 155 MiB at 20k rows), and
less off a server of four processes, which holds the larger share of those pages.

Each round serves the data dir with ``--workers 1``, then ``--workers 2``; a client process
(bench/workers_clients.py --warm) waits until the restored load answers, runs 16 clients for 2 s and
exits; then the server's memory is read: the sum over its processes of RSS, PSS and USS.

Usage (bench/workers.py uses it): python bench/server_memory.py DATA_DIR [--rounds N]
Prints one JSON object: {"1": [[rss, pss, uss], ...], "2": [...]} in bytes, one per round.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

WARM_CLIENTS = 16
WARM_SECONDS = 2.0
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(data_dir: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "sheafdb", "serve", "--data-dir", data_dir, "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_listening(process, port)
    return process


def wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    """Return once ``port`` accepts a connection; exit the bench if the server ends first."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if process.poll() is not None:
                raise SystemExit("the server exited during start") from None
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("the server did not start within 180 s")


def memory(server: psutil.Process) -> tuple[int, int, int]:
    """RSS, PSS and USS summed over the server's processes (the primary and every descendant)."""
    rss = pss = uss = 0
    for process in [server, *server.children(recursive=True)]:
        info = process.memory_full_info()
        rss, pss, uss = rss + info.rss, pss + info.pss, uss + info.uss
    return rss, pss, uss


def measure(data_dir: str, workers: int) -> tuple[int, int, int]:
    port = free_port()
    server = start(data_dir, port, workers)
    try:
        warm = [sys.executable, str(HERE / "workers_clients.py"), "--warm", str(port), str(server.pid)]
        subprocess.run([*warm, str(WARM_CLIENTS), str(WARM_SECONDS)], check=True)
        return memory(psutil.Process(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    found: dict[int, list[tuple[int, int, int]]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for workers in (1, 2):
            found[workers].append(measure(args.data_dir, workers))
    print(json.dumps(found))


if __name__ == "__main__":
    main()
