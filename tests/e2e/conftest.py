"""One real server for the whole session: ``python -m sheafdb serve --auth`` on a free port.

The server is a subprocess (the real CLI, the real engine, a temporary data dir); tests talk
to it only through the real clients (pymilvus ``MilvusClient`` as root, the acceptance
scripts, HTTP for REST). It is stopped with SIGTERM by its PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymilvus import MilvusClient

READY_TEXT = "SheafDB ready on"
START_TIMEOUT_S = 30.0
ROOT_TOKEN = "root:Milvus"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    data_dir: Path, port: int, log_path: Path, *, auth: bool = True, extra: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    log_file = log_path.open("wb")
    command = [sys.executable, "-m", "sheafdb", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    return subprocess.Popen(
        [*command, *(["--auth"] if auth else []), *extra],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_ready(process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if READY_TEXT in log_path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    stop_server(process)
    pytest.fail(f"server did not become ready:\n{log_path.read_text(errors='replace')}")


def compact_and_wait(client: MilvusClient, collection: str, timeout_s: float = 60.0) -> None:
    """ManualCompaction answers at once with a job id; wait until the job is Completed."""
    job_id = client.compact(collection)
    deadline = time.monotonic() + timeout_s
    while client.get_compaction_state(job_id) != "Completed":
        assert time.monotonic() < deadline, f"compaction {job_id} of {collection} never completed"
        time.sleep(0.05)


def stop_server(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


@pytest.fixture(scope="session")
def server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("sheafdb-e2e")
    port = free_port()
    log_path = root / "server.log"
    process = start_server(root / "data", port, log_path)
    wait_ready(process, log_path)
    yield f"http://127.0.0.1:{port}"
    stop_server(process)


@pytest.fixture(scope="session")
def client(server_uri: str) -> MilvusClient:
    return MilvusClient(uri=server_uri, token=ROOT_TOKEN)
