"""The shard-writer process (``sheafdb serve --cluster ... --role shard-writer``): a log owner
that serves Insert, Upsert and Delete for the collections whose logs it owns (SHARDS.md).

It joins the cluster's log owners at once (no standby wait): its LogOwnership renews its
member lease and adopts collections whose log lease is free, and its ShardWriter appends the
writes of those collections to their logs (engine/write/shard_writer.py). On its port, as every
SheafDB server: gRPC (the wire server, api/wire/) with ``ShardWriterServicer``
(shard_writer_service.py: every other RPC answers UNAVAILABLE "not the coordinator") and REST
``entities/insert``, ``upsert`` and ``delete`` (any other path: HTTP 503, the same refusal).

Authentication and privileges as on one server, from the credentials in the catalog, which
the coordinator writes: this process reads them (a reader's cache, forgotten whenever the
store's counter moved, looked at before each call). The caller's token goes on with the reads a
write makes through the query workers (caller_credentials.py), as the cluster writer's.

It leaves (exit code 3, as a deposed writer: its supervisor restarts it) when its store lost
the answer to a log commit, or when its member lease ran out unrenewed (the catalog gone for
longer than a lease ttl): others have adopted its collections by then.

Threads: the wire server's loop and pool, the front's loop (front.py), the ownership loop
(log_ownership.py), the member lease's probe and watch (``_MemberWatch``), and on stop
the writer's ``sheafdb-shard-writer-close`` (waited for at most a ttl). ``stop()`` runs
once (serving.ServingProcess).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

import anyio.to_thread
import grpc
from pymilvus.grpc_gen import milvus_pb2_grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sheafdb.api.auth import AuthInterceptor
from sheafdb.api.cluster.caller_credentials import PassCredentials, endpoints_passing_credentials
from sheafdb.api.cluster.shard_writer_service import NOT_THE_COORDINATOR, ShardWriterServicer
from sheafdb.api.cluster.worker_client import GrpcWorkerClient
from sheafdb.api.front import ProtocolFront
from sheafdb.api.rest import entities
from sheafdb.api.rest.app import build_app
from sheafdb.api.server import ServerConfig, check_data_dir, check_port_free
from sheafdb.api.serving import ServingProcess, StartupError
from sheafdb.api.wire.inline import inline_rule
from sheafdb.api.wire.server import WireServer, generic_handlers
from sheafdb.engine.access import AccessControl
from sheafdb.engine.engine import Engine
from sheafdb.engine.write.shard_writer import ShardWriter
from sheafdb.engine.write.writer_lease import advertised_address
from sheafdb.errors import CommitOutcomeUnknown, ServiceUnavailable
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.credentials import open_credentials
from sheafdb.storage.lease_rows import CommitListener

log = logging.getLogger("sheafdb.shard_writer")

SERVED_REST = frozenset({"entities/insert", "entities/upsert", "entities/delete"})
_HTTP_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]

Asgi = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def query_worker_client(catalog: Catalog, max_message_bytes: int) -> GrpcWorkerClient:
    """The gRPC client of the query workers, with the secret they ask of callers (made by
    the coordinator once: read until seen)."""
    seen: list[str] = []

    def secret() -> str:
        if not seen:
            made = catalog.cluster_secret()
            if made is None:
                raise ServiceUnavailable("no coordinator has started the cluster yet")
            seen.append(str(made))
        return seen[0]

    return GrpcWorkerClient(secret, max_message_bytes=max_message_bytes)


def start_log_writer(
    engine: Engine, config: ServerConfig, holder: str, on_commit_unknown: CommitListener
) -> ShardWriter:
    """The coordinator's own log owner member (its process is one too): a ShardWriter its
    Engine's insert, upsert and delete go to, and its own records (truncate, import) are
    appended by (``Engine.attach_log_writer``, engine/write/log_following.py)."""
    assert config.catalog_url is not None
    writer = ShardWriter.open(
        config.catalog_url,
        config.data_dir,
        holder,
        ttl_s=config.lease_ttl_s,
        worker_client=lambda catalog: query_worker_client(catalog, config.max_message_bytes),
        on_commit_unknown=on_commit_unknown,
    )
    engine.attach_log_writer(writer)
    return writer


class ShardWriterServer(ServingProcess):
    """A ServingProcess (serving.py); ``stepped_down`` once its member lease ran out."""

    label = "SheafDB shard writer"

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config.host, config.port)
        self.config = config
        self._writer: ShardWriter | None = None
        self._access: AccessControl | None = None
        self._grpc: WireServer | None = None
        self._member_watch: _MemberWatch | None = None

    def start(self) -> None:
        url = self.config.catalog_url
        assert url is not None  # --cluster needs it (settings.py)
        data_dir = check_data_dir(self.config.data_dir)
        check_port_free(self.config.host, self.config.port)
        try:
            self._writer = ShardWriter.open(
                url,
                data_dir,
                advertised_address(self.config.host, self.config.port),
                ttl_s=self.config.lease_ttl_s,
                worker_client=lambda catalog: query_worker_client(catalog, self.config.max_message_bytes),
                on_commit_unknown=self._step_down,
            )
            store = open_credentials(url, data_dir, read_only=True)
            self._access = AccessControl(store, enabled=self.config.auth_enabled)
        except Exception as exc:
            self._release()
            # Not the URL itself: it may carry a password.
            raise StartupError(f"cannot open the cluster's catalog: {exc}") from exc
        try:
            self._start_grpc()
            self._start_front()
        except StartupError:
            self._release()
            raise
        self._member_watch = _MemberWatch(self._writer, self.config.lease_ttl_s, self.stepped_down)
        log.info("SheafDB ready on %s (shard writer: Insert, Upsert, Delete)", self.address)

    def _step_down(self, error: CommitOutcomeUnknown) -> None:
        log.error("a log commit's answer was lost (%s): this shard writer leaves", error.message)
        self.stepped_down.set()

    def _start_grpc(self) -> None:
        assert self._writer is not None and self._access is not None
        servicer = ShardWriterServicer(self._writer, access=self._access)
        self._grpc = WireServer(
            generic_handlers(milvus_pb2_grpc.add_MilvusServiceServicer_to_server, servicer),
            interceptors=(_FollowingAuth(self._access), PassCredentials()),
            max_message_bytes=self.config.max_message_bytes,
            pool_threads=self.config.max_workers,
            inline=inline_rule(()),  # every call may wait on PostgreSQL: none on the loop
        )
        self._grpc.start()

    def _start_front(self) -> None:
        assert self._writer is not None and self._access is not None and self._grpc is not None
        endpoints = endpoints_passing_credentials([e for e in entities.ENDPOINTS if e.path in SERVED_REST])
        refusal = Route("/{path:path}", _not_the_coordinator, methods=_HTTP_METHODS)
        app = build_app(cast(Engine, self._writer), self._access, extra_routes=[refusal], endpoints=endpoints)
        front = ProtocolFront(self._grpc.adopt, rest_app=_following_credentials(app, self._access))
        self._listen(front)

    def _release(self) -> None:
        """gRPC, then the front, then the writer (which gives up its leases: other members
        adopt its collections at once), then the credentials."""
        if self._member_watch is not None:
            self._member_watch.close()
            self._member_watch = None
        if self._grpc is not None:
            self._grpc.stop(self.config.stop_grace_s)
            self._grpc = None
        self._stop_front()
        if self._writer is not None:
            self._writer.close()  # at most a ttl, even on a silent network
            self._writer = None
        if self._access is not None:
            self._access.close()
            self._access = None


class _MemberWatch:
    """Leaves (sets ``gone``) once the member lease ran out unrenewed: the catalog has been
    out of reach for longer than a ttl (or this process paused that long), so the other
    members have adopted its collections, as a writer whose lease expired steps down.
    ``sheafdb-member-probe`` reads the lease (it may hang with the network); the
    ``sheafdb-member-watch`` thread compares its last seen expiry with the clock, so the
    process leaves even while a probe hangs."""

    def __init__(self, writer: ShardWriter, ttl_s: float, gone: threading.Event) -> None:
        self._writer = writer
        self._ttl_s = ttl_s
        self._gone = gone
        self._closing = threading.Event()
        self._expires_at = time.time() + ttl_s  # replaced whole by the probe
        for target, name in ((self._probe, "sheafdb-member-probe"), (self._watch, "sheafdb-member-watch")):
            threading.Thread(target=target, name=name, daemon=True).start()

    def _probe(self) -> None:
        while not self._closing.wait(self._ttl_s / 4):
            try:
                lease = self._writer.member_lease()
            except Exception as exc:  # noqa: BLE001 - the database may be back before it ends
                log.warning("could not read the member lease: %s", exc)
                continue
            if lease is not None:
                self._expires_at = max(self._expires_at, lease.expires_at)

    def _watch(self) -> None:
        while not self._closing.wait(self._ttl_s / 4):
            if time.time() > self._expires_at:
                log.error("the member lease ran out unrenewed (the catalog is out of reach): leaving")
                self._gone.set()
                return

    def close(self) -> None:
        self._closing.set()


class _FollowingAuth(grpc.ServerInterceptor):
    """``AuthInterceptor`` over a reader's credential cache, which first forgets what the
    coordinator changed since (``AccessControl.follow_store``)."""

    def __init__(self, access: AccessControl) -> None:
        self._access = access
        self._inner = AuthInterceptor(access)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        if self._access.enabled:
            self._access.follow_store()
        return self._inner.intercept_service(continuation, handler_call_details)


def _following_credentials(app: Asgi, access: AccessControl) -> Asgi:
    """The REST app, behind the same forgetting as ``_FollowingAuth`` (off the event loop)."""

    async def serve(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and access.enabled:
            await anyio.to_thread.run_sync(access.follow_store)
        await app(scope, receive, send)

    return serve


async def _not_the_coordinator(_request: Request) -> Response:
    refusal = ServiceUnavailable(NOT_THE_COORDINATOR)
    return JSONResponse({"code": refusal.code, "message": refusal.message}, status_code=503)
