"""The cluster proxy process (``sheafdb serve --cluster ... --role proxy``): Milvus's gRPC and
REST on one port, no state of its own.

- **Reads** (gRPC Search, HybridSearch, Query; REST entities/search, query, get,
  hybrid_search, advanced_search) go through engine/distribution/cluster_reads.py: one complete
  replica's query workers, fanned out and reduced, retried on another replica when a worker
  fails. The client's ``authorization`` goes with them: the workers check privileges.
- **Insert, Upsert, Delete** go to the owner of their collection's log, found in its
  ``log/<collection_id>`` lease (log_owner_target.py).
- **Everything else** goes to the coordinator, found in the writer lease (proxy_relay.py):
  gRPC calls as bytes, REST calls over HTTP, retried while a standby takes over.

The proxy reads the catalog (read only: the writer lease, the workers, the placement, the
collections) and nothing else, so a restarted proxy serves exactly as before.

Threads: gRPC's handler pool; the fan-out pool (cluster_reads.py); the front's event loop and
two relay threads per gRPC connection (front.py, relay.py); the REST relay runs on the front's
loop. ``stop()`` runs once (serving.ServingProcess).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import grpc
from starlette.routing import Route

from sheafdb.api.cluster.caller_credentials import grpc_credentials, rest_credentials
from sheafdb.api.cluster.log_owner_target import LogOwnerTarget
from sheafdb.api.cluster.proxy_relay import DEFAULT_WRITER_WAIT_S, HttpWriterRelay, WriterRelay, WriterTarget
from sheafdb.api.cluster.worker_client import GrpcWorkerClient
from sheafdb.api.front import ProtocolFront
from sheafdb.api.query_worker import served_handlers
from sheafdb.api.rest import entities
from sheafdb.api.rest.app import build_app
from sheafdb.api.rest.envelope import Endpoint
from sheafdb.api.server import MAX_MESSAGE_BYTES, check_port_free
from sheafdb.api.serving import ServingProcess, StartupError
from sheafdb.engine.distribution.cluster_reads import DEFAULT_WAIT_S, ClusterReads
from sheafdb.engine.engine import Engine
from sheafdb.errors import ServiceUnavailable
from sheafdb.storage.catalog import Catalog

log = logging.getLogger("sheafdb.proxy")

# The REST endpoints answered by the proxy itself (the rest go to the writer).
SERVED_REST = frozenset(
    {
        "entities/search",
        "entities/query",
        "entities/get",
        "entities/hybrid_search",
        "entities/advanced_search",
    }
)
_HTTP_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


@dataclass(frozen=True)
class ProxyConfig:
    catalog_url: str
    host: str = "127.0.0.1"
    port: int = 19530
    max_workers: int = 16
    max_message_bytes: int = MAX_MESSAGE_BYTES
    stop_grace_s: float = 1.0
    # How long a read waits for a complete replica, a relayed call for a writer.
    read_wait_s: float = DEFAULT_WAIT_S
    writer_wait_s: float = DEFAULT_WRITER_WAIT_S


class ProxyServer(ServingProcess):
    """A ServingProcess (serving.py) that never loses a lease (``stepped_down`` stays clear)."""

    label = "SheafDB proxy"

    def __init__(self, config: ProxyConfig, open_catalog: Callable[[], Catalog]) -> None:
        super().__init__(config.host, config.port)
        self.config = config
        self._open_catalog = open_catalog
        self._secret: str | None = None
        self._catalog: Catalog | None = None
        self._reads: ClusterReads | None = None
        self._relay: WriterRelay | None = None
        self._http_relay: HttpWriterRelay | None = None
        self._grpc: grpc.Server | None = None
        self._socket_dir: Path | None = None

    @classmethod
    def for_catalog(cls, config: ProxyConfig) -> ProxyServer:
        """The proxy of the cluster whose catalog is the PostgreSQL database ``config`` names."""
        from sheafdb.storage.postgres_catalog import PostgresCatalog  # psycopg: the cluster extra

        return cls(config, lambda: PostgresCatalog(config.catalog_url, read_only=True))

    def start(self) -> None:
        check_port_free(self.config.host, self.config.port)
        try:
            self._catalog = self._open_catalog()
        except Exception as exc:
            # Not the URL itself: it may carry a password.
            raise StartupError(f"cannot open the cluster's catalog: {exc}") from exc
        client = GrpcWorkerClient(self._cluster_secret, max_message_bytes=self.config.max_message_bytes)
        self._reads = ClusterReads(self._catalog, client, wait_s=self.config.read_wait_s)
        target = WriterTarget(self._catalog.current_lease)
        owners = LogOwnerTarget(self._catalog)
        self._relay = WriterRelay(
            target, owners, max_message_bytes=self.config.max_message_bytes, wait_s=self.config.writer_wait_s
        )
        self._http_relay = HttpWriterRelay(target, owners, wait_s=self.config.writer_wait_s)
        try:
            grpc_target = self._start_grpc()
            self._start_front(grpc_target)
        except StartupError:
            self._release()
            raise
        log.info("SheafDB proxy ready on %s (gRPC + REST)", self.address)

    def _cluster_secret(self) -> str:
        """The secret workers ask of callers: the writer makes it once, so it is read until seen."""
        if self._secret is None:
            assert self._catalog is not None
            secret = self._catalog.cluster_secret()
            if secret is None:
                raise ServiceUnavailable("no writer has started the cluster yet")
            self._secret = str(secret)
        return self._secret

    def _start_grpc(self) -> str:
        assert self._reads is not None and self._relay is not None
        options = [
            ("grpc.max_send_message_length", self.config.max_message_bytes),
            ("grpc.max_receive_message_length", self.config.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        pool = futures.ThreadPoolExecutor(max_workers=self.config.max_workers, thread_name_prefix="grpc")
        self._grpc = grpc.server(
            pool, handlers=[served_handlers(self._reads, grpc_credentials), self._relay], options=options
        )
        self._socket_dir = Path(tempfile.mkdtemp(prefix="sheafdb-proxy-"))
        target = f"unix:{self._socket_dir / 'grpc.sock'}"
        if self._grpc.add_insecure_port(target) == 0:
            raise StartupError(f"cannot listen on the internal gRPC socket {target}")
        self._grpc.start()
        return target

    def _start_front(self, grpc_target: str) -> None:
        assert self._reads is not None and self._http_relay is not None
        served: list[Endpoint] = [
            replace(spec, handler=rest_credentials(spec.handler))
            for spec in entities.ENDPOINTS
            if spec.path in SERVED_REST
        ]
        relay = Route("/{path:path}", self._http_relay.forward, methods=_HTTP_METHODS)
        app = build_app(cast(Engine, self._reads), None, extra_routes=[relay], endpoints=served)
        front = ProtocolFront(grpc_target, rest_app=app)
        self._listen(front)

    def _release(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(self.config.stop_grace_s).wait()
            self._grpc = None
        self._stop_front()
        if self._relay is not None:
            self._relay.close()
            self._relay = None
        if self._reads is not None:
            self._reads.close()
            self._reads = None
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
