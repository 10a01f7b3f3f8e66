"""What ``serve --cluster ray://HOST:PORT --role writer`` adds to the server once it holds the
writer lease: the cluster secret in the catalog (proxies send it to the query workers, which
accept reads only from holders of the catalog) and the query workers on Ray (ray_pool.py), one
per node, each with ``--memory-budget`` as its budget (in cluster mode the writer loads nothing
itself; its budget is each worker's).

The writer's own write path reads rows (a delete by a general filter, a partial upsert): once
the workers are started those reads go to them, through the proxy's gRPC client
(``Engine.read_through_workers``, engine/distribution/writer_reads.py).

The workers are detached actors: they outlive this writer, and a standby that takes over finds
them. So stopping the writer leaves them serving; they stop with the Ray cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

from sheafdb.api.cluster.ray_pool import RayWorkerPool
from sheafdb.api.cluster.worker_client import GrpcWorkerClient
from sheafdb.api.cluster.worker_config import DEFAULT_BUDGET_BYTES, WorkerConfig
from sheafdb.engine.engine import Engine
from sheafdb.storage.catalog import open_catalog

# The object store's credentials, passed to the worker processes (the Ray nodes' own
# environment may lack them).
_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
WORKER_STATE_DIR = "query-workers"


def start_query_workers(
    ray_address: str,
    data_dir: Path,
    engine: Engine,
    *,
    catalog_url: str,
    objects_url: str | None,
    budget_bytes: int | None,
    auth_enabled: bool,
    max_message_bytes: int,
) -> None:
    catalog = open_catalog(catalog_url, data_dir)
    try:
        secret = str(catalog.ensure_cluster_secret())
    finally:
        catalog.close()
    credentials = {name: os.environ[name] for name in _CREDENTIAL_VARIABLES if name in os.environ}
    pool = RayWorkerPool(
        ray_address,
        WorkerConfig(
            data_dir=data_dir,
            state_dir=data_dir / WORKER_STATE_DIR,
            catalog_url=catalog_url,
            objects_url=objects_url,
            budget_bytes=budget_bytes or DEFAULT_BUDGET_BYTES,
            auth_enabled=auth_enabled,
        ),
        runtime_env={"env_vars": credentials} if credentials else None,
    )
    pool.start()
    engine.read_through_workers(GrpcWorkerClient(lambda: secret, max_message_bytes=max_message_bytes))
