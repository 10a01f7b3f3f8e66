"""A writer SIGKILLed while a client inserts through the proxy (real processes: two writers on
one PostgreSQL catalog and S3 prefix, one holding the lease and one standby, a proxy, query
workers on Ray). The inserts pause while the standby takes over (the proxy retries the relayed
calls) and then go on; every acknowledged insert is read back with Strong consistency, each
row once (a relayed insert the dead writer committed but never answered is answered from the
log by the new writer, not applied again), and the new writer holds the lease with token + 1."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pymilvus import MilvusClient

from tests.cluster.conftest import kill_worker_actors
from tests.cluster.test_proxy_cluster import Process, create_collection, serve, wait_loaded
from tests.cluster.writes_under_a_kill import (
    WAIT_S,
    assert_each_row_once,
    cluster_flags,
    insert_while_killing,
)
from tests.e2e.conftest import ROOT_TOKEN, free_port
from tests.services import S3Server

pytestmark = pytest.mark.cluster


@dataclass
class Deployment:
    catalog: str
    writer: Process
    standby: Process
    proxy: Process


def start_standby(flags: list[str], root: Path, env: dict[str, str]) -> Process:
    """A second writer: it waits for the lease (logs "standby:") and listens on nothing yet."""
    port = free_port()
    log_path = root / f"standby-{port}.log"
    command = [sys.executable, "-m", "sheafdb", "serve", *flags, "--role", "writer"]
    command += ["--data-dir", str(root / f"standby-{port}"), "--port", str(port)]
    process = subprocess.Popen(command, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=env)
    standby = Process(process, log_path, f"127.0.0.1:{port}")
    deadline = time.monotonic() + WAIT_S
    while "standby:" not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            standby.stop(signal.SIGKILL)
            pytest.fail(f"the standby did not wait:\n{log_path.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)
    return standby


@pytest.fixture
def deployment(
    tmp_path: Path, postgres_database: str, s3_server: S3Server, ray_cluster: Any
) -> Iterator[Deployment]:
    flags, env = cluster_flags(postgres_database, s3_server, ray_cluster, "failover")
    writer = serve(flags, "writer", tmp_path, env)
    processes = [writer]
    try:
        processes.append(standby := start_standby(flags, tmp_path, env))
        processes.append(proxy := serve(flags, "proxy", tmp_path, env))
        yield Deployment(postgres_database, writer, standby, proxy)
    finally:
        for process in reversed(processes):
            process.stop()
        kill_worker_actors(ray_cluster.address)


def lease(catalog: str) -> tuple[str, int]:
    with psycopg.connect(catalog) as db:
        row = db.execute("SELECT holder, token FROM leases WHERE name = 'writer'").fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def test_inserts_through_the_proxy_survive_a_killed_writer_each_row_once(deployment: Deployment) -> None:
    client = MilvusClient(uri=f"http://{deployment.proxy.address}", token=ROOT_TOKEN, timeout=120)
    name = "failover"
    create_collection(client, name, auto_id=True)
    client.load_collection(name)
    wait_loaded(client, name)
    holder, token = lease(deployment.catalog)
    assert holder == deployment.writer.address

    acked = insert_while_killing(deployment.proxy, name, deployment.writer)

    new_holder, new_token = lease(deployment.catalog)
    assert (new_holder, new_token) == (deployment.standby.address, token + 1)
    wait_loaded(client, name)
    assert_each_row_once(client, name, acked)
