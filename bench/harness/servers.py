"""The server processes under test: how to find, start, wait for, measure and stop each one.

Every server runs as its own process on a free loopback port with its own data directory and
is stopped by its PID (SIGTERM, then SIGKILL after a grace period). Milvus Lite lives in a
separate virtualenv (``.bench-venv``) because it needs packages we do not want in ``.venv``;
the harness creates that venv on demand and skips the system, saying why, when it cannot.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from pymilvus import MilvusClient

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_VENV = REPO_ROOT / ".bench-venv"
# What the bench venv needs: Milvus Lite imports pymilvus without declaring it.
BENCH_VENV_PACKAGES = ("milvus-lite==3.2.2", "pymilvus==3.0.2", "matplotlib", "psutil", "py-spy")
START_TIMEOUT_S = 300.0
STOP_GRACE_S = 30.0
RPC_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class ServerKind:
    """How to launch one Milvus-protocol server given a data dir and a port."""

    name: str
    python: Path
    module_args: tuple[str, ...]  # after ``python -m``; {data} and {port} are filled in

    def command(self, data_dir: Path, port: int) -> list[str]:
        args = [a.format(data=data_dir, port=port) for a in self.module_args]
        return [str(self.python), "-m", *args]


def sheafdb_kind() -> ServerKind:
    return ServerKind(
        "sheafdb",
        Path(sys.executable),
        ("sheafdb", "serve", "--data-dir", "{data}", "--host", "127.0.0.1", "--port", "{port}"),
    )


def bench_venv_python() -> Path:
    return BENCH_VENV / "bin" / "python"


def import_error(python: Path, module: str) -> str | None:
    """None if ``python`` can import ``module``, else the last line of the failure."""
    if not python.exists():
        return f"{python} does not exist"
    probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True)
    if probe.returncode == 0:
        return None
    lines = probe.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {probe.returncode}"


def has_module(python: Path, module: str) -> bool:
    return import_error(python, module) is None


def ensure_venv(venv: Path, packages: tuple[str, ...], probe: str, install: bool) -> tuple[Path | None, str]:
    """``venv``'s python if it can import ``probe`` (creating the venv if allowed), else why not."""
    python = venv / "bin" / "python"
    if has_module(python, probe):
        return python, "found"
    if not install:
        return None, f"{probe} is not installed in {venv} (run without --no-install to create it)"
    try:
        if not python.exists():
            subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"could not install {' '.join(packages)} into {venv}: {exc}"
    if has_module(python, probe):
        return python, "installed"
    return None, f"{probe} still cannot be imported from {python}"


def ensure_bench_venv(install: bool) -> tuple[Path | None, str]:
    """The bench venv's python if Milvus Lite can run from it (creating it if allowed), else why not."""
    return ensure_venv(BENCH_VENV, BENCH_VENV_PACKAGES, "milvus_lite.cmdline", install)


def milvus_lite_kind(python: Path) -> ServerKind:
    return ServerKind(
        "milvus-lite",
        python,
        ("milvus_lite", "server", "--data-dir", "{data}", "--host", "127.0.0.1", "--port", "{port}"),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningServer:
    """One started server process; ``uri`` is set once it answers an RPC."""

    def __init__(self, kind: ServerKind, data_dir: Path, log_path: Path, port: int | None = None) -> None:
        self.kind = kind
        self.data_dir = data_dir
        self.port = port if port is not None else free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(
            kind.command(data_dir, self.port),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def wait_serving(self) -> tuple[MilvusClient, float]:
        """Poll a cheap RPC until it answers: the client and seconds since the process started."""
        deadline = self.started_at + START_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind.name} exited early; see {self.log_path}")
            if not self._port_open():
                time.sleep(0.02)
                continue
            try:
                client = MilvusClient(uri=self.uri, timeout=2.0)
                client.list_collections(timeout=2.0)
                serving_s = time.perf_counter() - self.started_at
                return MilvusClient(uri=self.uri, timeout=RPC_TIMEOUT_S), serving_s
            except Exception:  # noqa: BLE001 - any failure here just means "not serving yet"
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.kind.name} did not serve within {START_TIMEOUT_S}s; see {self.log_path}")

    def _port_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def rss_bytes(self) -> int:
        """Resident memory of the server and any children it spawned."""
        try:
            proc = psutil.Process(self.pid)
            total = proc.memory_info().rss
            for child in proc.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            return int(total)
        except psutil.NoSuchProcess:
            return 0

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return int(self.process.returncode)


class RssSampler:
    """Samples a server's RSS on a background thread, tagging each sample with the current phase.

    Locks: ``_lock`` guards ``samples``/``phases`` between the sampling thread and the driver.
    """

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self.phases: list[tuple[float, str]] = []  # (seconds since start, phase entered)
        self._server: RunningServer | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._origin = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def follow(self, server: RunningServer) -> None:
        """Sample this server from now on (after a restart the PID changes)."""
        with self._lock:
            self._server = server

    def phase(self, name: str) -> None:
        with self._lock:
            self.phases.append((time.perf_counter() - self._origin, name))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                server = self._server
            if server is None:
                continue
            rss = server.rss_bytes()
            with self._lock:
                self.samples.append((time.perf_counter() - self._origin, rss / 2**20))
