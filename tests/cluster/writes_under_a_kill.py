"""What the failover tests share: a deployment's flags, and inserts through the proxy while a
writer process is SIGKILLed, every acknowledged row then read back once."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from typing import Any

from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from tests.cluster.test_proxy_cluster import Process, rows
from tests.e2e.conftest import ROOT_TOKEN
from tests.services import S3Server

LEASE_TTL = "2"
BATCH = 10
# Bounds on waits for things that happen by themselves (a takeover, an adoption).
WAIT_S = 180.0


def cluster_flags(
    postgres_database: str, s3_server: S3Server, ray_cluster: Any, prefix: str
) -> tuple[list[str], dict[str, str]]:
    """``serve``'s flags for a deployment on its own S3 prefix (lease ttl LEASE_TTL), and the
    environment its processes need."""
    objects = (
        s3_server.url("sheafdb-store-tests", f"{prefix}-{uuid.uuid4().hex}") + "&allow_bucket_creation=true"
    )
    env = {**os.environ, **s3_server.credentials_env(), "PYTHONUNBUFFERED": "1"}
    flags = ["--cluster", ray_cluster.address, "--catalog", postgres_database, "--objects", objects]
    return [*flags, "--lease-ttl", LEASE_TTL], env


def insert_while_killing(proxy: Process, name: str, victim: Process) -> list[int]:
    """Batches of BATCH rows inserted through ``proxy`` into ``name`` (auto ids) from a thread;
    ``victim`` is SIGKILLed mid-stream, and 20 more batches go after it. Every insert must be
    answered (the proxy waits for the takeover); returns the acknowledged ids."""
    acked: list[int] = []
    failed: list[str] = []
    killed = threading.Event()
    after_kill = 0

    def insert_batches() -> None:
        nonlocal after_kill
        writes = MilvusClient(uri=f"http://{proxy.address}", token=ROOT_TOKEN, timeout=120)
        start = 0
        while after_kill < 20:
            batch = [{"vec": r["vec"], "tag": r["tag"]} for r in rows(start, BATCH)]
            start += BATCH
            try:
                acked.extend(writes.insert(name, batch)["ids"])
            except MilvusException as exc:  # the takeover took longer than the proxy waits
                failed.append(str(exc))
            if killed.is_set():
                after_kill += 1

    writing = threading.Thread(target=insert_batches)
    writing.start()
    deadline = time.monotonic() + WAIT_S
    while len(acked) < 10 * BATCH and writing.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.stop(signal.SIGKILL)  # mid-stream: a relayed insert may be in flight
    killed.set()
    writing.join(WAIT_S * 2)
    assert not writing.is_alive()
    assert not failed, failed  # every insert was answered
    return acked


def assert_each_row_once(client: MilvusClient, name: str, acked: list[int]) -> None:
    """Every acknowledged insert is read back (Strong), none applied twice."""
    counted = client.query(name, output_fields=["count(*)"], consistency_level="Strong")
    assert counted[0]["count(*)"] == len(acked)  # nothing lost, nothing applied twice
    stored = client.query(
        name, filter="id >= 0", output_fields=["id"], consistency_level="Strong", limit=16384
    )
    assert sorted(r["id"] for r in stored) == sorted(acked)
    assert len(set(acked)) == len(acked)
