"""The server process: one engine, gRPC and REST v2 on one port, clean start and stop.

``Server.start()`` opens the engine and the credential store, serves the gRPC service (behind
the metrics and authentication interceptors) on its wire loop (api/wire/), which also listens
on an internal unix socket (the query workers forward to it), and puts the protocol front on
the public port: HTTP/2 connections are handed to the wire loop, HTTP/1.1 ones served in place
by the REST app. ``wait()`` blocks until ``stop()``. ``build_wire_server`` is separate so tests
can host the same servicer on a socket of their choosing.

Threads: gRPC runs on the wire server's loop thread and its pool of ``max_workers`` threads
(``api/wire/server.py``), the front runs one event loop thread (``front.py``); the engine and
the access control are thread-safe, so the server holds one lock only, ``_lock``, making
``stop()`` idempotent when a signal and the caller race.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from pymilvus.grpc_gen import milvus_pb2_grpc

from sheafdb.api.auth import AuthInterceptor
from sheafdb.api.cluster.caller_credentials import PassCredentials, endpoints_passing_credentials
from sheafdb.api.console.app import console_routes
from sheafdb.api.front import ProtocolFront
from sheafdb.api.grpc.servicer import MilvusServicer
from sheafdb.api.metrics import ServerMetrics
from sheafdb.api.query_workers import QueryWorkers
from sheafdb.api.request_metrics import MetricsInterceptor
from sheafdb.api.rest.app import ENDPOINTS, build_app
from sheafdb.api.serving import ServingProcess, StartupError
from sheafdb.api.wire.inline import READS, TRIVIAL, inline_rule
from sheafdb.api.wire.server import WireServer, generic_handlers
from sheafdb.api.worker_reports import WorkerReport
from sheafdb.api.worker_template import WorkerTemplate
from sheafdb.engine.access import AccessControl
from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.follower import FollowerConfig
from sheafdb.engine.write.shard_writer import ShardWriter
from sheafdb.engine.write.writer_lease import DEFAULT_LEASE_TTL_S, WriterElection, advertised_address
from sheafdb.storage.catalog import open_catalog
from sheafdb.storage.credentials import open_credentials
from sheafdb.storage.lease_rows import Lease

log = logging.getLogger("sheafdb.server")

# Milvus's default gRPC message limit on both directions.
MAX_MESSAGE_BYTES = 512 * 1024 * 1024
# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
MAX_UNIX_SOCKET_PATH = 107
GRPC_SOCKET_FILE = "grpc.sock"
LOCK_FILE = "sheafdb.lock"


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 19530
    max_workers: int = 16
    max_message_bytes: int = MAX_MESSAGE_BYTES
    # Seconds in-flight calls get to finish on stop (the whole stop must fit in 2 s).
    stop_grace_s: float = 1.0
    # Authentication and privilege checks (root / "Milvus" until changed).
    auth_enabled: bool = False
    # The web console at http://HOST:PORT/ (the API and /metrics are served either way).
    console: bool = True
    # Loads past this many accounted bytes are refused at once (None: the engine's default).
    memory_budget_bytes: int | None = None
    # A load that would not fit may release other collections (EngineConfig says which).
    evict_under_pressure: bool = False
    # The catalog in PostgreSQL and the segment files in S3 (None: both in data_dir).
    catalog_url: str | None = None
    objects_url: str | None = None
    # ``--object-cache-size``: the bound of the local cache of S3 objects (None: unbounded).
    object_cache_bytes: int | None = None
    # ``--workers N``: N query worker processes serve search / query (query_workers.py);
    # 1 is the single process, exactly as before.
    workers: int = 1
    # Where bulk import reads local files (None: data_dir).
    import_root: Path | None = None
    # With a PostgreSQL catalog: the writer lease's ttl (``--lease-ttl``); a standby takes
    # over this long after the writer stopped renewing (engine/write/writer_lease.py).
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S
    # ``--cluster ray://HOST:PORT --role writer``: this process is the cluster's writer; loads
    # are placed on the query workers (engine/distribution/), not served here.
    cluster_url: str | None = None


def build_wire_server(
    engine: Engine,
    *,
    max_workers: int,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    access: AccessControl | None = None,
) -> WireServer:
    """The MilvusService on a wire loop (api/wire/) with a pool of ``max_workers`` threads;
    ``interceptors`` (metrics, auth) run before every handler. ``access`` serves the user /
    role RPCs; without it they answer "not supported". A cluster writer's reads wait on its
    query workers, so there none of them runs inline."""
    servicer = MilvusServicer(engine, access=access)
    inline = inline_rule(TRIVIAL if engine.config.cluster else (*READS, *TRIVIAL))
    return WireServer(
        generic_handlers(milvus_pb2_grpc.add_MilvusServiceServicer_to_server, servicer),
        interceptors=interceptors,
        max_message_bytes=max_message_bytes,
        pool_threads=max_workers,
        inline=inline,
    )


def check_data_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"data dir {path} cannot be created: {exc.strerror or exc}") from exc
    if not path.is_dir():
        raise StartupError(f"data dir {path} is not a directory")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise StartupError(f"data dir {path} is not readable and writable by this user")
    return path.resolve()


def check_port_free(host: str, port: int) -> None:
    """Fail before opening the engine (which may replay logs) when the port is taken."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # As the front binds: a port with only TIME_WAIT leftovers of a previous run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def lock_data_dir(data_dir: Path) -> int:
    """An exclusive lock on the data dir for the process's life: two servers on one data dir
    would each replay and trim the other's logs. Returns the descriptor holding it."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise StartupError(f"data dir {data_dir} is in use by another SheafDB server") from exc
    return fd


class InternalSocket:
    """Where gRPC listens behind the front: ``<data dir>/grpc.sock``, or a private temporary
    directory when that path is longer than a unix socket path may be."""

    def __init__(self, data_dir: Path) -> None:
        preferred = data_dir / GRPC_SOCKET_FILE
        self._temp_dir: Path | None = None
        if len(os.fsencode(preferred)) <= MAX_UNIX_SOCKET_PATH:
            self.path = preferred
        else:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="sheafdb-"))
            self.path = self._temp_dir / GRPC_SOCKET_FILE
        # A crashed run leaves its socket file behind; binding needs the name free.
        self.path.unlink(missing_ok=True)

    @property
    def target(self) -> str:
        return f"unix:{self.path}"

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)


class Server(ServingProcess):
    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config.host, config.port)
        self.config = config
        self._engine: Engine | None = None
        self._access: AccessControl | None = None
        self._metrics: ServerMetrics | None = None
        self._grpc: WireServer | None = None
        self._socket: InternalSocket | None = None
        self._workers: QueryWorkers | None = None
        self._template: WorkerTemplate | None = None  # the query workers' until they start
        self._lock_fd: int | None = None
        self._election: WriterElection | None = None
        self._log_writer: ShardWriter | None = None  # cluster mode: this process's log owner member
        # ``stepped_down`` is set when this writer lost its lease or stepped down.
        self._standby_cancel = threading.Event()

    def start(self) -> None:
        data_dir = check_data_dir(self.config.data_dir)
        check_port_free(self.config.host, self.config.port)
        if self.config.workers > 1:  # before any thread or descriptor: the workers fork from it
            self._template = WorkerTemplate.start()
        self._lock_fd = lock_data_dir(data_dir)
        lease = None
        if self.config.catalog_url is not None:
            lease = self._become_writer(data_dir)
            if lease is None:  # asked to stop while a standby
                self._release()
                return
        # Fail-stop: a commit of ours that went unanswered makes the writer step down.
        step_down = self._election.step_down if self._election is not None else None
        try:
            self._engine = Engine(
                EngineConfig(
                    data_dir=data_dir,
                    memory_budget_bytes=self.config.memory_budget_bytes,
                    evict_under_pressure=self.config.evict_under_pressure,
                    catalog_url=self.config.catalog_url,
                    objects_url=self.config.objects_url,
                    object_cache_bytes=self.config.object_cache_bytes,
                    # Workers map the same files: the primary maps them too (one copy in all).
                    share_pages=self.config.workers > 1,
                    shared_changes=self.config.workers > 1,  # and follow its changes (change_counter.py)
                    import_root=self.config.import_root,
                    writer_lease=lease,
                    on_commit_unknown=step_down,
                    cluster=self.config.cluster_url is not None,
                )
            )
            self._access = AccessControl(
                open_credentials(
                    self.config.catalog_url,
                    data_dir,
                    fence=lease,
                    on_commit_unknown=step_down,
                    shared_changes=self.config.workers > 1,
                ),
                enabled=self.config.auth_enabled,
            )
            self._metrics = ServerMetrics(self._engine)
        except Exception as exc:
            self._release()
            remote = self.config.catalog_url or self.config.objects_url
            # Not the URLs themselves: they may carry a password.
            what = f"the data dir {data_dir}" + (" with its catalog and object store" if remote else "")
            raise StartupError(f"cannot open {what}: {exc}") from exc
        try:
            self._start_grpc(data_dir)
            self._start_workers(data_dir)
            self._start_query_workers(data_dir)
            self._start_front()
        except StartupError:
            self._release()
            raise
        log.info("SheafDB ready on %s (gRPC + REST)", self.address)

    def _become_writer(self, data_dir: Path) -> Lease | None:
        """With a PostgreSQL catalog, servers on it contend for the writer lease: wait as a
        standby (listening on nothing) until this one holds it."""
        assert self.config.catalog_url is not None
        try:
            catalog = open_catalog(self.config.catalog_url, data_dir)
        except Exception as exc:
            self._release()
            raise StartupError(f"cannot open the catalog: {exc}") from exc
        holder = advertised_address(self.config.host, self.config.port)
        self._election = WriterElection(
            catalog, holder, ttl_s=self.config.lease_ttl_s, on_lost=self.stepped_down.set
        )
        return self._election.wait_until_leader(self._standby_cancel)

    def cancel_standby(self) -> None:
        """A stop asked while ``start`` waits as a standby: ``start`` returns, serving nothing."""
        self._standby_cancel.set()

    def _start_grpc(self, data_dir: Path) -> None:
        """The MilvusService on this process's wire loop (api/wire/): the front hands it the
        public gRPC connections; query workers reach it on the internal unix socket."""
        assert self._engine is not None and self._access is not None and self._metrics is not None
        self._socket = InternalSocket(data_dir)
        self._grpc = build_wire_server(
            self._engine,
            max_workers=self.config.max_workers,
            max_message_bytes=self.config.max_message_bytes,
            interceptors=self._interceptors(),
            access=self._access,
        )
        try:
            self._grpc.listen_unix(str(self._socket.path))
        except OSError as exc:
            raise StartupError(
                f"cannot listen on the internal gRPC socket {self._socket.path}: {exc}"
            ) from exc
        self._grpc.start()

    def _interceptors(self) -> tuple[grpc.ServerInterceptor, ...]:
        assert self._access is not None and self._metrics is not None
        # Metrics outermost: calls that authentication refuses are counted too.
        return (
            MetricsInterceptor(self._metrics),
            AuthInterceptor(self._access),
            # Cluster: the caller's token goes with the reads a write makes through the workers.
            *([PassCredentials()] if self.config.cluster_url is not None else []),
        )

    def _start_query_workers(self, data_dir: Path) -> None:
        """The cluster writer's query workers on Ray (api/cluster/writer_role.py)."""
        if self.config.cluster_url is None:
            return
        assert self.config.catalog_url is not None  # --cluster needs it (settings.py)
        from sheafdb.api.cluster.writer_role import start_query_workers  # Ray: the cluster extra

        assert self._engine is not None

        try:
            start_query_workers(
                self.config.cluster_url,
                data_dir,
                self._engine,
                catalog_url=self.config.catalog_url,
                objects_url=self.config.objects_url,
                budget_bytes=self.config.memory_budget_bytes,
                auth_enabled=self.config.auth_enabled,
                max_message_bytes=self.config.max_message_bytes,
            )
        except Exception as exc:
            raise StartupError(f"cannot start the query workers on {self.config.cluster_url}: {exc}") from exc
        # The coordinator's process is a log owner member too: its writes go to its ShardWriter.
        from sheafdb.api.cluster.shard_writer_role import start_log_writer

        assert self._election is not None
        try:
            self._log_writer = start_log_writer(
                self._engine, self.config, self._election.holder, self._election.step_down
            )
        except Exception as exc:
            raise StartupError(f"cannot start the log writer: {exc}") from exc

    def _start_workers(self, data_dir: Path) -> None:
        if self.config.workers <= 1:
            return
        assert self._socket is not None and self._template is not None
        self._workers = QueryWorkers(
            FollowerConfig(
                data_dir, self.config.catalog_url, self.config.objects_url, self.config.object_cache_bytes
            ),
            self.config.workers,
            self._socket.target,
            self._template,
            auth_enabled=self.config.auth_enabled,
            max_workers=self.config.max_workers,
            max_message_bytes=self.config.max_message_bytes,
            memory_budget_bytes=self.config.memory_budget_bytes,
            on_report=self._worker_report,
        )
        self._template = None  # the workers' now
        self._workers.start()

    def _worker_report(self, index: int, report: WorkerReport | None) -> None:
        """A query worker's calls join /metrics; its bytes, the server's memory budget."""
        assert self._engine is not None and self._metrics is not None
        self._engine.set_process_bytes(f"query worker {index}", None if report is None else report.used_bytes)
        if report is not None:
            self._metrics.worker_calls(report.counts, report.latencies_ms)

    def _start_front(self) -> None:
        assert self._engine is not None and self._socket is not None
        console = console_routes(self._engine, self._access, self._metrics) if self.config.console else []
        endpoints = ENDPOINTS
        if self.config.cluster_url is not None:  # as gRPC's PassCredentials
            endpoints = endpoints_passing_credentials(ENDPOINTS)
        app = build_app(
            self._engine, self._access, metrics=self._metrics, extra_routes=console, endpoints=endpoints
        )
        hand_off = self._workers.hand_off if self._workers is not None else None
        assert self._grpc is not None
        self._listen(ProtocolFront(self._grpc.adopt, rest_app=app, hand_off=hand_off))

    def _release(self) -> None:
        """gRPC, then the front, then the stores: each part stops before what it calls into.

        gRPC goes first: its graceful stop sends GOAWAY and lets in-flight calls finish while
        the front (which hands it new connections) still answers REST. Query workers stop
        before it: they forward calls to it."""
        if self._workers is not None:
            self._workers.stop()
            self._workers = None
        if self._template is not None:
            self._template.stop(0)
            self._template = None
        if self._grpc is not None:
            self._grpc.stop(self.config.stop_grace_s)
            self._grpc = None
        self._stop_front()
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        if self._socket is not None:
            self._socket.remove()
            self._socket = None
        if self._log_writer is not None:  # before the engine: it gives its log leases up
            self._log_writer.close()
            self._log_writer = None
        if self._engine is not None:
            try:
                self._engine.close()
            except Exception:
                if not self.stepped_down.is_set():
                    raise
                log.exception("closing the engine of a fenced writer")  # it could not write anyway
            self._engine = None
        if self._election is not None:
            self._election.close()
            self._election = None
        if self._access is not None:
            self._access.close()
            self._access = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
