"""The writer's supervisor of the query workers: Ray actors, one per node of the Ray cluster.

``RayWorkerPool(ray_address, worker, ...).start()`` connects to the Ray cluster
(``ray://HOST:PORT`` through Ray Client, or a GCS address ``HOST:PORT``) and makes sure a
query-worker actor (worker_actor.py) runs on each alive node (``count`` of them in all, spread
over the nodes in turn, when given), pinned to its node (``NodeAffinitySchedulingStrategy``,
not soft) with ``max_restarts=-1``: Ray restarts a dead worker's process on the same node, and
the worker registers again by itself. The actors are named and detached, so a standby writer
that takes over finds the same actors (``get_if_exists``) instead of starting new ones, and the
workers keep serving while the writer changes.

A node names its workers' initial resource group with the label ``sheafdb-resource-group``
or a custom resource ``sheafdb_rg_<name>`` (TransferNode moves workers later, in the
catalog); otherwise they join ``__default_resource_group``.

A watch thread (``sheafdb-ray-pool``) every ``WATCH_S`` starts a worker on each alive node
that has none (a node that joined the Ray cluster: "node ... joined" in the log; not when
``count`` fixes the number of workers), then asks each actor its status and logs deaths (a
call that fails) and restarts (a new pid or incarnation). ``stop`` stops the
workers and kills their actors (``no_restart``).

Ray is imported here only (``pip install 'sheafdb[cluster]'``). Locks: ``_lock`` guards the
actor list between ``start``, the watch thread and ``stop``.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sheafdb.api.cluster.worker_actor import WorkerActor
from sheafdb.api.cluster.worker_config import WorkerConfig
from sheafdb.storage.placement_rows import DEFAULT_WORKER_GROUP

log = logging.getLogger("sheafdb.cluster.pool")

NAMESPACE = "sheafdb"
RESOURCE_GROUP_LABEL = "sheafdb-resource-group"
RESOURCE_GROUP_RESOURCE = "sheafdb_rg_"
WATCH_S = 1.0
# How long start() waits for every worker to be up (registered, serving).
START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 5.0
# The watch's note of a worker whose last status call failed.
_DOWN = (0, 0, 0, "")


@dataclass(frozen=True)
class WorkerHandle:
    name: str
    node_id: str
    actor: Any  # ray.actor.ActorHandle
    address: str


def node_resource_group(node: dict[str, Any]) -> str:
    """The resource group a Ray node's label or custom resource names, else the default."""
    label = (node.get("Labels") or {}).get(RESOURCE_GROUP_LABEL)
    if label:
        return str(label)
    for resource in node.get("Resources") or {}:
        if resource.startswith(RESOURCE_GROUP_RESOURCE):
            return str(resource[len(RESOURCE_GROUP_RESOURCE) :])
    return DEFAULT_WORKER_GROUP


class RayWorkerPool:
    def __init__(
        self,
        ray_address: str,
        worker: WorkerConfig,
        *,
        count: int | None = None,
        state_root: Path | None = None,
        namespace: str = NAMESPACE,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        """``worker``: what every worker is given (catalog, objects, budget, auth); each gets its
        own ``state_dir`` under ``state_root`` (default: ``worker.state_dir``), its node's id
        and resource group. ``count``: workers in all (default: one per alive node).
        ``runtime_env``: Ray's, for the worker processes (e.g. ``{"env_vars": {...}}`` with the
        object store's credentials when the nodes' own environment lacks them)."""
        self._address = ray_address
        self._worker = worker
        self._count = count
        self._state_root = state_root or worker.state_dir
        self._namespace = namespace
        self._runtime_env = runtime_env
        self._lock = threading.Lock()
        self._handles: list[WorkerHandle] = []
        self._seen: dict[str, tuple[int, int, int, str]] = {}
        self._stopping = threading.Event()
        self._watch = threading.Thread(target=self._watch_loop, name="sheafdb-ray-pool", daemon=True)

    @property
    def workers(self) -> list[WorkerHandle]:
        with self._lock:
            return list(self._handles)

    def start(self, timeout_s: float = START_TIMEOUT_S) -> list[WorkerHandle]:
        import ray

        if not ray.is_initialized():
            ray.init(address=self._address, namespace=self._namespace, logging_level=logging.WARNING)
        alive = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        nodes = sorted(alive, key=lambda n: str(n["NodeID"]))
        if not nodes:
            raise RuntimeError(f"the Ray cluster at {self._address} has no alive node")
        count = len(nodes) if self._count is None else self._count
        pending = []
        for i in range(count):
            node = nodes[i % len(nodes)]
            name, actor = self._spawn(node, i // len(nodes))
            pending.append((name, str(node["NodeID"]), actor))
        addresses = ray.get([actor.start.remote() for _, _, actor in pending], timeout=timeout_s)
        handles = [
            WorkerHandle(name, node_id, actor, address)
            for (name, node_id, actor), address in zip(pending, addresses, strict=True)
        ]
        with self._lock:
            self._handles = handles
        for handle in handles:
            log.info(
                "query worker %s on node %s serves on %s", handle.name, handle.node_id[:12], handle.address
            )
        self._watch.start()
        return handles

    def _spawn(self, node: dict[str, Any], index: int) -> tuple[str, Any]:
        """The actor of the node's ``index``-th worker (the existing one when it runs)."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node_id = str(node["NodeID"])
        name = f"sheafdb-worker-{node_id[:12]}-{index}"
        config = replace(
            self._worker,
            state_dir=self._state_root / name,
            ray_node_id=node_id,
            resource_group=node_resource_group(node),
        )
        remote: Any = ray.remote(WorkerActor)
        actor = remote.options(
            name=name,
            namespace=self._namespace,
            get_if_exists=True,
            lifetime="detached",
            max_restarts=-1,
            max_task_retries=0,
            num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            runtime_env=self._runtime_env,
        ).remote(config)
        return name, actor

    def _start_on_new_nodes(self) -> None:
        """One worker on each alive node that has none (a node that joined after ``start``)."""
        import ray

        if self._count is not None:  # a fixed number of workers: joining nodes get none
            return
        served = {handle.node_id for handle in self.workers}
        alive = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        for node in alive:
            node_id = str(node["NodeID"])
            if node_id in served or self._stopping.is_set():
                continue
            name, actor = self._spawn(node, 0)
            address = ray.get(actor.start.remote(), timeout=START_TIMEOUT_S)
            with self._lock:
                if self._stopping.is_set():  # stop() has taken the list: it must not miss this one
                    ray.kill(actor, no_restart=True)
                    return
                self._handles.append(WorkerHandle(name, node_id, actor, address))
            log.info("node %s joined: query worker %s serves on %s", node_id[:12], name, address)

    def _watch_loop(self) -> None:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        while not self._stopping.wait(WATCH_S):
            try:
                self._start_on_new_nodes()
            except Exception:  # noqa: BLE001 - the watch goes on; the next pass tries again
                log.exception("cannot start a query worker on a node that joined")
            for handle in self.workers:
                seen = self._seen.get(handle.name)
                try:
                    status = ray.get(handle.actor.status.remote(), timeout=WATCH_S * 5)
                except (RayActorError, GetTimeoutError) as exc:
                    if not self._stopping.is_set() and seen != _DOWN:
                        log.warning("query worker %s is down (Ray restarts it): %s", handle.name, exc)
                    self._seen[handle.name] = _DOWN
                    continue
                if seen is not None and seen[2] != status[2]:
                    log.warning(
                        "query worker %s restarted: worker %d, incarnation %d, pid %d, on %s",
                        handle.name,
                        *status,
                    )
                self._seen[handle.name] = status

    def stop(self, *, kill_workers: bool = True) -> None:
        """Stop watching; with ``kill_workers``, stop every worker and kill its actor (no
        restart). Without, the workers keep serving (a writer stepping down for a standby,
        whose pool adopts them)."""
        import ray

        self._stopping.set()
        if self._watch.is_alive():
            self._watch.join()
        with self._lock:
            handles, self._handles = self._handles, []
        if not handles or not kill_workers:
            return
        try:
            ray.get([h.actor.stop.remote() for h in handles], timeout=_STOP_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - a worker that cannot stop cleanly is killed below
            log.warning("some query workers did not stop cleanly: killing them")
        for handle in handles:
            ray.kill(handle.actor, no_restart=True)
        log.info("stopped %d query workers (pid %d)", len(handles), os.getpid())
