"""One query worker process of ``sheafdb serve --workers N`` (forked from worker_template.py).

The primary's front accepts every connection on the public port; a gRPC connection it hands
to a worker arrives here as a file descriptor over the worker's handoff socket (SCM_RIGHTS),
with the bytes the front already read from it, and the worker's own wire loop (api/wire/)
adopts the socket itself: the primary does nothing more for the connection.

The worker's wire server answers Search, HybridSearch and Query from the follower
(engine/follower.py: the primary's data, followed, Strong). Every other call is forwarded,
bytes and metadata as they came, to the primary's internal gRPC socket, and its answer (or
error) returned as it is. With authentication on, the served calls are checked here against
the same credential store (its cached checks forgotten when the primary changes it);
forwarded calls are checked by the primary.

The handoff socket also tells the worker when to stop: the primary closes it (or dies).

Threads: the wire loop (every connection; Search, HybridSearch and Query run inline on it)
and its pool (the forwarded calls, each waiting on the primary); grpcio's client channel
threads (the forwarding); the main thread receiving descriptors; the reporter
(worker_reports.py: the served calls and the ledger's bytes to the primary every ~0.5 s);
the follower's loader and search pools (as in the primary's engine).
The follower and the access control are thread-safe.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import grpc
from google.protobuf import message_factory

from sheafdb.api.auth import AuthInterceptor
from sheafdb.api.grpc.data_rpcs import DataRpcs
from sheafdb.api.grpc.guard import SERVICE, error_response
from sheafdb.api.request_metrics import MetricsInterceptor
from sheafdb.api.wire.inline import inline_rule
from sheafdb.api.wire.server import WireServer
from sheafdb.api.worker_reports import CallTally, WorkerReporter
from sheafdb.engine.access import AccessControl
from sheafdb.engine.distribution.cluster_reads import ClusterReads
from sheafdb.engine.engine import Engine
from sheafdb.engine.follower import Follower, FollowerConfig
from sheafdb.storage.credentials import open_credentials

log = logging.getLogger("sheafdb.worker")

# The calls a worker answers itself; the rest go to the primary.
SERVED = ("Search", "HybridSearch", "Query")
# A handoff message: the bytes the front read before it knew the protocol (at most 64 KiB).
MAX_HANDOFF_BYTES = 65536 + 1024
READY = b"ready"
# Request metadata the forwarder leaves to gRPC itself.
_TRANSPORT_KEYS = ("user-agent",)
_STOP_GRACE_S = 0.5
_NO_DEADLINE_S = 10**9


def _method_path(name: str) -> str:
    return f"/{SERVICE.full_name}/{name}"


def forwarded_metadata(context: grpc.ServicerContext) -> list[tuple[str, str | bytes]]:
    """The call's metadata as it came, less what gRPC itself sets on the next hop."""
    return [
        (key, value)
        for key, value in context.invocation_metadata() or ()
        if key not in _TRANSPORT_KEYS and not key.startswith(("grpc-", ":"))
    ]


def remaining_timeout(context: grpc.ServicerContext) -> float | None:
    """The call's deadline for the next hop (None: it has none)."""
    remaining = context.time_remaining()
    # A call without a deadline reports ~2**63 ns left: pass no deadline on.
    return remaining if remaining is not None and remaining < _NO_DEADLINE_S else None


def unary_methods() -> set[str]:
    """Every unary method path of the MilvusService."""
    methods = SERVICE.methods
    return {_method_path(m.name) for m in methods if not m.client_streaming and not m.server_streaming}


class _Forwarder(grpc.GenericRpcHandler):
    """Every unary call this worker does not serve, to the primary as bytes."""

    def __init__(self, primary_target: str, max_message_bytes: int) -> None:
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self._channel = grpc.insecure_channel(primary_target, options=options)
        self._unary = unary_methods()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method not in self._unary:
            return None
        call = self._channel.unary_unary(method)

        def forward(request: bytes, context: grpc.ServicerContext) -> bytes:
            try:
                return cast(
                    bytes,
                    call(request, metadata=forwarded_metadata(context), timeout=remaining_timeout(context)),
                )
            except grpc.RpcError as exc:
                rpc = cast(grpc.Call, exc)
                context.abort(rpc.code(), rpc.details() or "")
                raise  # abort raises; this keeps the type checker sure of it

        return grpc.unary_unary_rpc_method_handler(forward)

    def close(self) -> None:
        self._channel.close()


class _ServedAuth(grpc.ServerInterceptor):
    """Authentication and privileges for the calls served here (the primary checks the rest)."""

    def __init__(self, access: AccessControl) -> None:
        self._access = access
        self._inner = AuthInterceptor(access)
        self._served = {_method_path(name) for name in SERVED}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        if not self._access.enabled or handler_call_details.method not in self._served:
            return continuation(handler_call_details)
        self._access.follow_store()
        return self._inner.intercept_service(continuation, handler_call_details)


class _ServedMetrics(grpc.ServerInterceptor):
    """Counts and times the calls served here for the server's ``/metrics`` (the primary's
    own interceptor counts the forwarded ones); outside the authentication, as there."""

    def __init__(self, tally: CallTally) -> None:
        self._inner = MetricsInterceptor(tally)
        self._served = {_method_path(name) for name in SERVED}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        if handler_call_details.method not in self._served:
            return continuation(handler_call_details)
        return self._inner.intercept_service(continuation, handler_call_details)


def served_handlers(
    follower: Follower | ClusterReads, wrap: Callable[[Callable[..., Any]], Callable[..., Any]] = lambda h: h
) -> grpc.GenericRpcHandler:
    """Search, HybridSearch and Query answered from ``follower`` (``wrap``: around each)."""
    # The data handlers read ``engine`` only for the calls the follower answers.
    rpcs = DataRpcs(cast(Engine, follower))
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for name in SERVED:
        method = SERVICE.methods_by_name[name]
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            wrap(_guarded(method, getattr(rpcs, name))),
            request_deserializer=message_factory.GetMessageClass(method.input_type).FromString,
            response_serializer=lambda response: response.SerializeToString(),
        )
    return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)


def _guarded(method: Any, handler: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return handler(request, context)
        except Exception as exc:  # noqa: BLE001 - every error becomes the response's Status
            return error_response(method, exc)

    return call


class QueryWorker:
    def __init__(
        self,
        backends: FollowerConfig,
        handoff: socket.socket,
        primary_target: str,
        *,
        auth_enabled: bool,
        max_workers: int,
        max_message_bytes: int,
        memory_budget_bytes: int | None = None,
    ) -> None:
        self._handoff = handoff
        self.follower = Follower(backends, memory_budget_bytes=memory_budget_bytes)
        tally = CallTally()
        self._reporter = WorkerReporter(handoff, tally, self.follower.memory_used_bytes)
        self._access = (
            AccessControl(
                open_credentials(
                    backends.catalog_url,
                    backends.data_dir,
                    read_only=True,
                    shared_changes=backends.shared_changes,
                ),
                enabled=auth_enabled,
            )
            if auth_enabled
            else None
        )
        self._forwarder = _Forwarder(primary_target, max_message_bytes)
        interceptors: list[grpc.ServerInterceptor] = [_ServedMetrics(tally)]
        if self._access is not None:
            interceptors.append(_ServedAuth(self._access))
        # The served reads run inline on the loop; the pool holds the forwarded calls while
        # the primary answers them.
        self._server = WireServer(
            [served_handlers(self.follower), self._forwarder],
            interceptors=interceptors,
            max_message_bytes=max_message_bytes,
            pool_threads=max_workers,
            inline=inline_rule(SERVED),
        )

    def serve(self) -> None:
        """Serve until the primary closes the handoff socket (or SIGTERM)."""
        self._server.start()
        self._handoff.sendall(READY)
        self._reporter.start()
        while True:
            try:
                head, fds, _flags, _addr = socket.recv_fds(self._handoff, MAX_HANDOFF_BYTES, 1)
            except OSError:
                break
            if not fds:
                break  # the primary closed its end: stop
            self._server.adopt(socket.socket(fileno=fds[0]), head)
        self.stop()

    def stop(self) -> None:
        self._server.stop(_STOP_GRACE_S)
        self._reporter.stop()
        self._forwarder.close()
        self.follower.close()
        if self._access is not None:
            self._access.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sheafdb-query-worker")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--catalog", default=None, help="the primary's --catalog (PostgreSQL)")
    parser.add_argument("--objects", default=None, help="the primary's --objects (S3)")
    parser.add_argument("--object-cache-bytes", type=int, default=None)
    parser.add_argument("--handoff-fd", type=int, required=True)
    parser.add_argument("--primary", required=True, help="the primary's internal gRPC target")
    parser.add_argument("--auth", action="store_true")
    parser.add_argument("--max-workers", type=int, default=16)
    parser.add_argument("--max-message-bytes", type=int, default=512 * 1024 * 1024)
    parser.add_argument("--memory-budget", type=int, help="the whole server's memory budget (bytes)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handoff = socket.socket(fileno=args.handoff_fd)
    # SIGTERM: end the handoff loop like the primary closing it would.
    signal.signal(signal.SIGTERM, lambda signum, frame: handoff.shutdown(socket.SHUT_RDWR))
    worker = QueryWorker(
        # Embedded: the primary that started this worker announces its changes (change_counter.py).
        FollowerConfig(
            args.data_dir,
            args.catalog,
            args.objects,
            args.object_cache_bytes,
            shared_changes=args.catalog is None,
        ),
        handoff,
        args.primary,
        auth_enabled=args.auth,
        max_workers=args.max_workers,
        max_message_bytes=args.max_message_bytes,
        memory_budget_bytes=args.memory_budget,
    )
    log.info("query worker %d ready", os.getpid())
    worker.serve()
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)
