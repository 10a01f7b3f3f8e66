"""The proxy's way to the writers: every call it does not answer itself goes, as bytes (gRPC)
or as HTTP (REST), to the coordinator found in the ``writer`` lease; Insert, Upsert and Delete
go to the owner of their collection's log instead (log_owner_target.py).

A relayed call that finds no writer (no lease, an expired one, or a holder that does not
answer or answers UNAVAILABLE: a standby is taking over, or a log owner no longer owns the
log) resolves the lease again and retries, for at most ``wait_s`` (or the call's own
deadline); then it fails with the transport's error, as a client of a writer that is down
would see it. A relayed Insert or Upsert carries the id of
the client's call (``sheafdb-write-id``, the same on every try; ``sheafdb-write-retry: 1``
on the tries after the first), so that a writer that finds the first try already logged
answers from it instead of writing the rows again (engine/write/write_ids.py).

Threads: gRPC's handler threads and the REST app's event loop call in. ``_lock`` guards the
cached lease and the channels per address (held only to read or swap them).
The REST relay resolves on a thread (``asyncio.to_thread``): the catalog read blocks.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import cast

import grpc
import httpx
from starlette.requests import Request
from starlette.responses import Response

from sheafdb.api.cluster.log_owner_target import (
    OWNED_METHODS,
    OWNED_REST,
    LogOwnerTarget,
    grpc_collection,
    rest_collection,
)
from sheafdb.api.grpc.context import WRITE_ID_KEY, WRITE_RETRY_KEY, database_of
from sheafdb.api.query_worker import forwarded_metadata, remaining_timeout, unary_methods
from sheafdb.storage.lease_rows import Lease

WRITER_LEASE = "writer"
# How long a relayed call waits for a writer (a standby's takeover takes a lease TTL or two).
DEFAULT_WRITER_WAIT_S = 30.0
# How long a resolved lease is used before it is read again (a failed call re-reads it at once).
LEASE_CACHE_S = 1.0
RETRY_PAUSE_S = 0.2
# The relayed calls whose repetition would write again (new rows, new auto ids): tagged.
TAGGED_METHODS = frozenset(
    {"/milvus.proto.milvus.MilvusService/Insert", "/milvus.proto.milvus.MilvusService/Upsert"}
)
TAGGED_REST = ("/v2/vectordb/entities/insert", "/v2/vectordb/entities/upsert")
# Headers that belong to one HTTP hop, not to the request or response relayed.
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length", "content-encoding"}
)


class NoWriter(Exception):
    """No writer holds a live lease (yet)."""


class WriterTarget:
    """The current writer's address from the lease, cached briefly."""

    def __init__(
        self, current_lease: Callable[[str], Lease | None], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._current_lease = current_lease
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[str, float] | None = None  # (address, read at)

    def address(self, *, fresh: bool = False) -> str:
        now = self._clock()
        with self._lock:
            cached = self._cached
        if cached is not None and not fresh and now - cached[1] < LEASE_CACHE_S:
            return cached[0]
        lease = self._current_lease(WRITER_LEASE)
        if lease is None or lease.expires_at <= now:
            with self._lock:
                self._cached = None
            raise NoWriter("no writer holds the lease")
        with self._lock:
            self._cached = (lease.holder, now)
        return lease.holder


class WriterRelay(grpc.GenericRpcHandler):
    """Every unary MilvusService call not served here, relayed as bytes to the writer."""

    def __init__(
        self,
        target: WriterTarget,
        owners: LogOwnerTarget,
        *,
        max_message_bytes: int,
        wait_s: float = DEFAULT_WRITER_WAIT_S,
    ) -> None:
        self._target = target
        self._owners = owners
        self._wait_s = wait_s
        self._options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self._unary = unary_methods()
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}

    def _channel(self, address: str) -> grpc.Channel:
        """One channel per writer process (the coordinator and the log owners); a writer
        that went away keeps its idle channel until the proxy stops (they are few)."""
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = self._channels[address] = grpc.insecure_channel(address, options=self._options)
            return channel

    def _address(self, method: str, request: bytes, context: grpc.ServicerContext, *, fresh: bool) -> str:
        """The log owner of a write's collection; the coordinator for everything else."""
        if method in OWNED_METHODS:
            db, name = grpc_collection(request)
            owner = self._owners.address(database_of(context, db), name, fresh=fresh)
            if owner is not None:
                return owner
        return self._target.address(fresh=fresh)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method not in self._unary:
            return None

        def relay(request: bytes, context: grpc.ServicerContext) -> bytes:
            # The tags are the proxy's to set: a client's own are dropped.
            metadata = [m for m in forwarded_metadata(context) if m[0] not in (WRITE_ID_KEY, WRITE_RETRY_KEY)]
            if method in TAGGED_METHODS:
                metadata.append((WRITE_ID_KEY, uuid.uuid4().hex))
            timeout = remaining_timeout(context)
            started = time.monotonic()
            deadline = started + (self._wait_s if timeout is None else min(self._wait_s, timeout))
            fresh = False
            while True:
                left = None if timeout is None else max(0.001, timeout - (time.monotonic() - started))
                try:
                    address = self._address(method, request, context, fresh=fresh)
                    call = self._channel(address).unary_unary(method)
                    return cast(bytes, call(request, metadata=metadata, timeout=left))
                except NoWriter as exc:
                    code, details = grpc.StatusCode.UNAVAILABLE, str(exc)
                except grpc.RpcError as exc:
                    rpc = cast(grpc.Call, exc)
                    code, details = rpc.code(), rpc.details() or ""
                    if code is not grpc.StatusCode.UNAVAILABLE:
                        context.abort(code, details)
                if time.monotonic() >= deadline:
                    context.abort(code, details)
                time.sleep(RETRY_PAUSE_S)
                fresh = True
                if method in TAGGED_METHODS and (WRITE_RETRY_KEY, "1") not in metadata:
                    metadata.append((WRITE_RETRY_KEY, "1"))

        return grpc.unary_unary_rpc_method_handler(relay)

    def close(self) -> None:
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()


class HttpWriterRelay:
    """The REST calls not served here, relayed over HTTP to the writer (same port as gRPC)."""

    def __init__(
        self, target: WriterTarget, owners: LogOwnerTarget, *, wait_s: float = DEFAULT_WRITER_WAIT_S
    ) -> None:
        self._target = target
        self._owners = owners
        self._wait_s = wait_s
        self._client = httpx.AsyncClient(timeout=None)

    async def forward(self, request: Request) -> Response:
        body = await request.body()
        dropped = _HOP_HEADERS | {WRITE_ID_KEY, WRITE_RETRY_KEY}  # the tags are the proxy's to set
        headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
        tagged = request.url.path.endswith(TAGGED_REST)
        if tagged:
            headers[WRITE_ID_KEY] = uuid.uuid4().hex
        owned = request.url.path.endswith(OWNED_REST)
        deadline = time.monotonic() + self._wait_s
        fresh = False
        while True:
            try:
                address = await asyncio.to_thread(self._address, owned, body, fresh)
                url = httpx.URL(f"http://{address}{request.url.path}", query=request.url.query.encode())
                answer = await self._client.request(request.method, url, content=body, headers=headers)
                # A log owner that no longer owns the log answers 503: ask the new one.
                if not (owned and answer.status_code == 503 and time.monotonic() < deadline):
                    return Response(answer.content, answer.status_code, _reply_headers(answer.headers))
            except (NoWriter, httpx.TransportError) as exc:
                if time.monotonic() >= deadline:
                    return Response(f"no writer answered: {exc}", 503, media_type="text/plain")
            await asyncio.sleep(RETRY_PAUSE_S)
            fresh = True
            if tagged:
                headers[WRITE_RETRY_KEY] = "1"

    def _address(self, owned: bool, body: bytes, fresh: bool) -> str:
        if owned:
            owner = self._owners.address(*rest_collection(body), fresh=fresh)
            if owner is not None:
                return owner
        return self._target.address(fresh=fresh)


def _reply_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
