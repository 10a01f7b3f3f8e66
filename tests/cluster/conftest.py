"""A local Ray cluster for the cluster tests: ``ray.cluster_utils.Cluster`` on 127.0.0.1.

Two nodes (the head and one more), one CPU each, no dashboard, no usage telemetry, every
socket on loopback. Ray rewrites 127.0.0.1 to the host's routable address unless it believes
it runs a single-machine cluster (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``; scale-out.md §2),
so that is set before Ray is imported, here, for this process and the ones it starts. Ray's
files go to a short temporary dir of its own (its unix socket paths must stay short). The
cluster is stopped node by node by ``Cluster.shutdown`` (the processes it started, by PID).

A raylet has a fixed 30 s to register with the GCS (not configurable in Ray), which a loaded CI
machine can miss: a start that fails is stopped (with any process it left behind, found by
its temporary dir) and tried again, up to ``START_ATTEMPTS`` times, as bench/scale_out.py does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "180")  # its 30 s default is short too

RAY_NODES = 2
START_ATTEMPTS = 3


@dataclass(frozen=True)
class RayCluster:
    address: str  # the GCS address a driver connects to
    cluster: Any  # ray.cluster_utils.Cluster


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    for attempt in range(1, START_ATTEMPTS + 1):
        temp_dir = tempfile.mkdtemp(prefix="sheafdb-ray-", dir="/tmp")
        cluster = Cluster()
        try:
            cluster.add_node(**node, temp_dir=temp_dir)
            for _ in range(RAY_NODES - 1):
                cluster.add_node(**node)
            cluster.wait_for_nodes()
            break
        except Exception:
            cluster.shutdown()
            stop_started_from(temp_dir)  # a node that failed to start is not in the cluster's list
            shutil.rmtree(temp_dir, ignore_errors=True)
            if attempt == START_ATTEMPTS:
                raise
    try:
        yield RayCluster(cluster.address, cluster)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def stop_started_from(temp_dir: str) -> None:
    """Kill, by PID, this process's children whose command line names ``temp_dir``."""
    for process in psutil.Process().children(recursive=True):
        try:
            if any(temp_dir in part for part in process.cmdline()):
                process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def kill_worker_actors(ray_address: str) -> None:
    """Kills the query workers: detached actors that a later writer on the session's Ray
    cluster would adopt (by name) while they follow an earlier test's catalog."""
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_address, namespace="sheafdb", logging_level="WARNING")

    def named() -> list[str]:
        return [
            entry["name"]
            for entry in ray.util.list_named_actors(all_namespaces=True)
            if entry["namespace"] == "sheafdb" and entry["name"].startswith("sheafdb-worker-")
        ]

    for name in named():
        ray.kill(ray.get_actor(name, namespace="sheafdb"), no_restart=True)
    deadline = time.monotonic() + 60
    while named():
        assert time.monotonic() < deadline, f"worker actors still alive: {named()}"
        time.sleep(0.2)
