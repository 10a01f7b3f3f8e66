"""The server process: one engine, the gRPC service on an address, clean start and stop.

``Server.start()`` opens the engine and binds gRPC; ``wait()`` blocks until ``stop()``.
``build_grpc_server`` is separate so a front that multiplexes gRPC and REST on one port can
host the same servicer on an address of its choosing.

Threads: gRPC runs handlers on its own pool (``max_workers``); the engine is thread-safe, so
the server holds one lock only, ``_lock``, making ``stop()`` idempotent when a signal and the
caller race.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from pymilvus.grpc_gen import milvus_pb2_grpc

from sheafdb.api.grpc.servicer import MilvusServicer
from sheafdb.engine.engine import Engine, EngineConfig

log = logging.getLogger("sheafdb.server")

# Milvus's default gRPC message limit on both directions.
MAX_MESSAGE_BYTES = 512 * 1024 * 1024


class StartupError(Exception):
    """The server cannot start (port taken, data dir unusable); the message says why."""


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 19530
    max_workers: int = 16
    max_message_bytes: int = MAX_MESSAGE_BYTES
    # Seconds in-flight calls get to finish on stop.
    stop_grace_s: float = 1.5


def build_grpc_server(
    engine: Engine,
    *,
    max_workers: int,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
) -> grpc.Server:
    """The MilvusService on a thread pool; ``interceptors`` (auth) run before every handler."""
    options = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        # Without this a second server could bind the same port silently (SO_REUSEPORT).
        ("grpc.so_reuseport", 0),
    ]
    pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc")
    server = grpc.server(pool, options=options, interceptors=list(interceptors))
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(MilvusServicer(engine), server)
    return server


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
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


class Server:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.port = config.port
        self._engine: Engine | None = None
        self._grpc: grpc.Server | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    def start(self) -> None:
        data_dir = check_data_dir(self.config.data_dir)
        check_port_free(self.config.host, self.config.port)
        try:
            self._engine = Engine(EngineConfig(data_dir=data_dir))
        except Exception as exc:
            raise StartupError(f"cannot open the data dir {data_dir}: {exc}") from exc
        self._grpc = build_grpc_server(
            self._engine, max_workers=self.config.max_workers, max_message_bytes=self.config.max_message_bytes
        )
        try:
            bound = self._grpc.add_insecure_port(f"{self.config.host}:{self.config.port}")
        except RuntimeError:
            bound = 0
        if bound == 0:
            self._engine.close()
            raise StartupError(
                f"cannot listen on {self.config.host}:{self.config.port}: port in use or not allowed"
            )
        self.port = bound
        self._grpc.start()
        log.info("SheafDB ready on %s (gRPC)", self.address)

    def wait(self) -> None:
        self._stopped.wait()

    def stop(self) -> None:
        """Refuse new calls, let in-flight ones finish (up to the grace), close the engine."""
        with self._lock:
            if self._stopped.is_set():
                return
            if self._grpc is not None:
                self._grpc.stop(self.config.stop_grace_s).wait()
            if self._engine is not None:
                self._engine.close()
            self._stopped.set()
            log.info("SheafDB stopped")
