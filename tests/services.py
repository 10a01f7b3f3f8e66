"""The cluster tests' real services: PostgreSQL and an S3 server, started by scripts/services/.

Each script installs its server if it is missing (``install``), starts one on 127.0.0.1 and a
free port (``start`` prints its state dir), and stops it by its PID (``stop DIR``). A test
that needs a service skips only when the server cannot be installed on this machine; a
server that installs but does not start fails the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts" / "services"


def _run(service: str, *args: str, timeout_s: float) -> str:
    result = subprocess.run(
        [str(SCRIPTS / service), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/services/{service} {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout.strip()


def start_service(service: str) -> Path:
    """Install (or skip the test when that is impossible), then start; returns the state dir."""
    try:
        _run(service, "install", timeout_s=600)
    except RuntimeError as exc:
        pytest.skip(f"{service} cannot be installed here: {exc}")
    try:
        return Path(_run(service, "start", timeout_s=180).splitlines()[-1])
    except RuntimeError as exc:
        pytest.fail(str(exc))


def stop_service(service: str, state_dir: Path) -> None:
    _run(service, "stop", str(state_dir), timeout_s=60)


def halt_service(service: str, state_dir: Path) -> None:
    """Stop the server by its PID but keep its state: an outage, until ``resume_service``."""
    _run(service, "halt", str(state_dir), timeout_s=60)


def resume_service(service: str, state_dir: Path) -> None:
    """Start a halted server again on its old port and data."""
    _run(service, "resume", str(state_dir), timeout_s=180)


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server: plain HTTP on ``endpoint``, signed requests only."""

    endpoint: str
    access_key: str
    secret_key: str
    metrics_port: int

    @classmethod
    def from_state(cls, state_dir: Path) -> S3Server:
        def read(name: str) -> str:
            return (state_dir / name).read_text().strip()

        return cls(read("endpoint"), read("access_key"), read("secret_key"), int(read("metrics_port")))

    def url(self, bucket: str, prefix: str) -> str:
        """An ``--objects`` URL for ``bucket/prefix`` on this server."""
        return f"s3://{bucket}/{prefix}?endpoint_override={self.endpoint}&scheme=http&region=us-east-1"

    def credentials_env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def get_requests(self, bucket: str, code: str = r"\d+") -> int:
        """GET requests the server answered for ``bucket`` so far (its Prometheus counter),
        with an HTTP status matching ``code``. The server counts HEADs as GETs too (status 200);
        pyarrow reads an object's bytes with ranged GETs (206)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        labels = f'bucket="{re.escape(bucket)}",code="{code}",type="GET"'
        pattern = re.compile(r"^SeaweedFS_s3_request_total\{" + labels + r"\} (\S+)$", re.MULTILINE)
        return int(sum(float(count) for count in pattern.findall(text)))
