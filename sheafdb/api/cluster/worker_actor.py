"""The Ray actor that hosts one query worker (worker_runtime.py) in a process Ray supervises.

Ray places the actor (node affinity, chosen by ray_pool.py) and restarts its process when it
dies (``max_restarts=-1``); it carries no search or query: those arrive over the worker's own
gRPC service ("Ray places, gRPC carries", scale-out.md §2). A restart runs ``__init__`` again,
which starts the runtime again: the worker registers anew (same worker id, a new incarnation,
remembered in its state dir) and reloads what is placed on it, with no call from anyone.

The class is plain Python; ray_pool.py makes it an actor with ``ray.remote`` so that importing
this module needs no Ray.

The actor's process is a server process like the others: it keeps pymilvus's client and
pandas out (api/client_libraries.py, ~45 MB). Ray imports this module and unpickles the
``WorkerConfig`` before ``__init__`` runs, so both import next to nothing
(worker_config.py); the runtime, and with it the engine and the stubs, is imported in
``__init__``, after the client libraries were kept out.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING

from sheafdb.api.client_libraries import keep_client_libraries_out
from sheafdb.api.cluster.worker_config import WorkerConfig

if TYPE_CHECKING:
    from sheafdb.api.cluster.worker_runtime import WorkerRuntime


class WorkerActor:
    def __init__(self, config: WorkerConfig) -> None:
        keep_client_libraries_out()
        from sheafdb.api.cluster.worker_runtime import WorkerRuntime  # after the line above

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if config.host is None:
            # The node's address as Ray knows it (the one other nodes reach it by): the read
            # service binds it and the worker registers it, so proxies anywhere can call in.
            import ray

            config = replace(config, host=ray.util.get_node_ip_address())
        self._runtime: WorkerRuntime = WorkerRuntime(config)
        self._address = self._runtime.start()

    def start(self) -> str:
        """The worker's read service address (started with the actor; idempotent)."""
        return self._address

    def status(self) -> tuple[int, int, int, str]:
        """(worker id, incarnation, pid, address): the pool's watch sees restarts in it."""
        return self._runtime.worker_id, self._runtime.incarnation, os.getpid(), self._address

    def pid(self) -> int:
        return os.getpid()

    def stop(self) -> None:
        """Stop serving and unregister nothing: the lease lapses (the pool then kills the actor)."""
        self._runtime.stop()
