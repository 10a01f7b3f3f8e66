"""What a cluster query worker is started with: the argument of its Ray actor.

In a module of its own that imports next to nothing, because Ray unpickles an actor's
arguments in the actor's process before any of our code runs there: the class's module is
imported for it, and a module that imported the engine (pyarrow, pymilvus's stubs) would load
pymilvus's whole client and pandas first (api/client_libraries.py, worker_actor.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sheafdb.storage.placement_rows import DEFAULT_WORKER_GROUP

DEFAULT_BUDGET_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class WorkerConfig:
    # This worker's own dir: its remembered worker id and, with a PostgreSQL catalog, its
    # follower's data dir (the object cache).
    state_dir: Path
    # The catalog (and with it the log), workers and placement: a postgresql:// URL, or None
    # for the SQLite catalog and file logs in ``data_dir`` (one machine only).
    catalog_url: str | None = None
    # The writer's data dir, when the catalog is its SQLite file.
    data_dir: Path | None = None
    # Where segments are (None: the data dir; ``s3://...``: fetched into this worker's cache).
    objects_url: str | None = None
    object_cache_bytes: int | None = None
    # The address the read service binds and registers: proxies on other machines call it.
    # None: the Ray node's address inside a worker actor (worker_actor.py), else loopback.
    host: str | None = None
    port: int = 0
    resource_group: str = DEFAULT_WORKER_GROUP
    budget_bytes: int = DEFAULT_BUDGET_BYTES
    ray_node_id: str = ""
    auth_enabled: bool = False
    max_workers: int = 16
