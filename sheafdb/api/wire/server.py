"""The wire server: one epoll loop thread serving every gRPC connection of this process.

The loop (thread ``sheafdb-grpc``) accepts on its listening sockets, adopts connections
handed to it (``adopt``: the front's public connections, a query worker's from the primary),
reads, parses HTTP/2 (connection.py) and, when a request is complete, finds its handler
(the interceptors, then the generic handlers: what ``grpc.server`` would do) and runs it:

- **inline**, on the loop thread, when ``inline(method, request_bytes)`` says so: the
  short reads (search, query, version) that dominate a client's calls. No thread handoff,
  no lock changing hands per call; faiss releases the interpreter lock, but nothing else
  of this path waits for it;
- otherwise on the **pool** (``sheafdb-grpc-call`` threads): calls that may block for long
  (loads, flushes, index builds, imports, DDL, writes that sync a log, calls forwarded to
  another process). A finished call's answer comes back in ``_done`` and an eventfd wakes
  the loop, which writes it.

Writes are queued per connection and sent once per pass (connection.py holds back DATA
beyond the client's windows). Keepalive: every PING is answered, at any rate, with or
without calls (Milvus's policy, min interval 5 s without calls, only tolerates more; a
client is never sent GOAWAY for pinging). ``grpc-timeout`` sets ``time_remaining``; the
server does not cut a running call at its deadline (the client does).

Stop: GOAWAY (last stream id) to every connection, in-flight calls finish within the
grace, then every connection closes.

Locks: ``_lock`` guards the adoption queue, the finished calls and the stop flag between
the loop, the pool threads and the callers of ``adopt`` / ``stop``; everything else is the
loop thread's alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

import grpc

from sheafdb.api.wire import call
from sheafdb.api.wire.connection import Connection, ConnectionError_, Stream

log = logging.getLogger("sheafdb.wire")

_READ = 256 * 1024
# Unsent bytes past which a connection is not read until its client takes them.
_BACKLOG_HIGH = 4 * 1024 * 1024
_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_METHOD_NOT_FOUND = "Method not found!"

Inline = Callable[[str, int], bool]


class _Details:
    """grpc.HandlerCallDetails of a call, as interceptors and generic handlers read it."""

    __slots__ = ("method", "invocation_metadata")

    def __init__(self, method: str, invocation_metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self.method = method
        self.invocation_metadata = invocation_metadata


class _Socket:
    """A served connection: its socket, its HTTP/2 state and its unsent bytes."""

    __slots__ = ("sock", "fd", "h2", "unsent", "mask")

    def __init__(self, sock: socket.socket, h2: Connection) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.h2 = h2
        self.unsent = b""
        self.mask = _IN


class _Collector:
    """Takes what generated ``add_*_to_server`` functions register on a server."""

    def __init__(self) -> None:
        self.handlers: list[grpc.GenericRpcHandler] = []

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self.handlers.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        pass  # the same handlers also come as a generic handler


def generic_handlers(
    add_to_server: Callable[[Any, Any], None], servicer: Any
) -> list[grpc.GenericRpcHandler]:
    """The generic handlers a generated ``add_XServicer_to_server`` function builds."""
    collector = _Collector()
    add_to_server(servicer, collector)
    return collector.handlers


class WireServer:
    def __init__(
        self,
        handlers: Sequence[grpc.GenericRpcHandler],
        *,
        interceptors: Sequence[grpc.ServerInterceptor] = (),
        max_message_bytes: int,
        pool_threads: int,
        inline: Inline,
    ) -> None:
        self._handlers = tuple(handlers)
        self._lookup = self._pipeline(tuple(interceptors))
        self._max_message = max_message_bytes
        self._inline = inline
        self._pool = futures.ThreadPoolExecutor(
            max_workers=pool_threads, thread_name_prefix="sheafdb-grpc-call"
        )
        self._epoll = select.epoll()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wake_fd, _IN)
        self._lock = threading.Lock()
        self._adopting: list[tuple[socket.socket, bytes]] = []
        self._done: list[tuple[_Socket, Stream, bytes | None, bytes]] = []
        self._stop_deadline: float | None = None
        self._listeners: dict[int, socket.socket] = {}
        self._sockets: dict[int, _Socket] = {}  # loop thread only
        self._in_pool = 0  # calls running on the pool (loop thread only)
        self._going_away = False  # GOAWAY sent to every connection (loop thread only)
        self._thread = threading.Thread(target=self._run, name="sheafdb-grpc", daemon=True)

    # -- set up and stop (any thread) ---------------------------------------------------------
    def listen_unix(self, path: str) -> None:
        """Accept connections on a unix socket at ``path`` too (before ``start``)."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(1024)
        except OSError:
            listener.close()
            raise
        listener.setblocking(False)
        self._listeners[listener.fileno()] = listener
        self._epoll.register(listener.fileno(), _IN)

    def start(self) -> None:
        self._thread.start()

    def adopt(self, sock: socket.socket, first_bytes: bytes) -> None:
        """Serve ``sock`` (a connected socket, ours from now on); ``first_bytes`` were read
        from it already."""
        with self._lock:
            if self._stop_deadline is not None or self._wake_fd < 0:
                sock.close()
                return
            self._adopting.append((sock, first_bytes))
            os.eventfd_write(self._wake_fd, 1)

    def stop(self, grace_s: float) -> None:
        """GOAWAY to every connection, let in-flight calls finish (up to ``grace_s``), close."""
        with self._lock:
            if self._stop_deadline is not None:
                return
            self._stop_deadline = time.monotonic() + grace_s
            if self._thread.is_alive():
                os.eventfd_write(self._wake_fd, 1)
        if not self._thread.is_alive():
            self._close_all()
            return
        self._thread.join(grace_s + 1.0)

    # -- the loop -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                stopping = self._stop_deadline is not None
                timeout = -1.0
                if stopping:
                    assert self._stop_deadline is not None
                    if not self._going_away:
                        self._go_away()
                    if self._drained() or time.monotonic() >= self._stop_deadline:
                        return
                    timeout = max(0.0, min(0.05, self._stop_deadline - time.monotonic()))
                for fd, events in self._epoll.poll(timeout):
                    served = self._sockets.get(fd)
                    if served is not None:
                        try:
                            self._ready(served, events)
                        except Exception:  # a bug shown by one connection ends that one only
                            log.exception("gRPC connection from %s failed", served.h2.peer)
                            self._close(served)
                    elif fd == self._wake_fd:
                        self._woken()
                    elif fd in self._listeners:
                        self._accept(self._listeners[fd])
        except Exception:
            log.exception("the gRPC loop failed")
        finally:
            self._close_all()

    def _drained(self) -> bool:
        return self._in_pool == 0 and all(not s.h2.streams and not s.unsent for s in self._sockets.values())

    def _woken(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wake_fd)
        with self._lock:
            adopting, self._adopting = self._adopting, []
            done, self._done = self._done, []
        for sock, first_bytes in adopting:
            self._adopt(sock, first_bytes)
        touched: dict[int, _Socket] = {}
        for served, stream, message, trailers in done:
            self._in_pool -= 1
            if served.fd in self._sockets and self._sockets[served.fd] is served:
                served.h2.respond(stream, message, trailers)
                touched[served.fd] = served
        for served in touched.values():
            self._flush(served)

    def _go_away(self) -> None:
        """Stop accepting; GOAWAY (the last stream id seen) to every connection."""
        self._going_away = True
        for listener in self._listeners.values():
            self._epoll.unregister(listener.fileno())
            listener.close()
        self._listeners.clear()
        for served in list(self._sockets.values()):
            served.h2.goaway()
            self._flush(served)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. EMFILE: tried again at the next readiness
                return
            self._adopt(sock, b"")

    def _adopt(self, sock: socket.socket, first_bytes: bytes) -> None:
        sock.setblocking(False)
        peer = _peer_name(sock)
        served = _Socket(sock, Connection(self._on_request, peer, self._max_message))
        served.h2.owner = served
        self._sockets[served.fd] = served
        self._epoll.register(served.fd, _IN)
        if first_bytes:
            self._feed(served, first_bytes)
        if served.fd in self._sockets:
            self._flush(served)

    def _ready(self, served: _Socket, events: int) -> None:
        if events & (select.EPOLLHUP | select.EPOLLERR) and not served.mask & _IN:
            self._close(served)  # gone while not read (backlogged): epoll would say so again and again
            return
        if events & _OUT and served.unsent:
            self._flush(served)
        if events & (_IN | select.EPOLLHUP | select.EPOLLERR) and served.mask & _IN:
            try:
                data = served.sock.recv(_READ)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._close(served)
                return
            if not data:
                self._close(served)
                return
            self._feed(served, data)
            if served.fd in self._sockets:
                self._flush(served)

    def _feed(self, served: _Socket, data: bytes) -> None:
        try:
            served.h2.feed(data)
        except ConnectionError_ as exc:
            served.h2.goaway(exc.code, str(exc).encode())
            self._flush(served)
            self._close(served)

    def _flush(self, served: _Socket) -> None:
        h2 = served.h2
        if h2.has_blocked and len(served.unsent) < _BACKLOG_HIGH:
            h2.out_bytes = len(served.unsent)
            h2.send_blocked()
        if h2.out:
            data = served.unsent + b"".join(h2.out) if served.unsent else b"".join(h2.out)
            h2.out.clear()
        else:
            data = served.unsent
        if data:
            try:
                sent = served.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(served)
                return
            served.unsent = data[sent:]
        h2.out_bytes = len(served.unsent)
        mask = (_OUT if served.unsent else 0) | (_IN if len(served.unsent) < _BACKLOG_HIGH else 0)
        if mask != served.mask:
            served.mask = mask
            with contextlib.suppress(OSError):
                self._epoll.modify(served.fd, mask)
        if h2.peer_gone and not h2.streams and not served.unsent:
            self._close(served)

    def _close(self, served: _Socket) -> None:
        if self._sockets.pop(served.fd, None) is None:
            return
        for stream in served.h2.streams.values():
            stream.cancel()
        with contextlib.suppress(OSError):
            self._epoll.unregister(served.fd)
        served.sock.close()

    def _close_all(self) -> None:
        for served in list(self._sockets.values()):
            # Unread bytes at close would make it a reset, which may drop the GOAWAY in flight.
            with contextlib.suppress(OSError):
                served.sock.recv(_READ)
            self._close(served)
        for listener in self._listeners.values():
            listener.close()
        self._listeners.clear()
        with self._lock:
            adopting, self._adopting = self._adopting, []
            # Under the lock: a pool thread finishing late never writes to a reused descriptor.
            if self._wake_fd >= 0:
                os.close(self._wake_fd)
                self._wake_fd = -1
        for sock, _ in adopting:
            sock.close()
        self._epoll.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- calls --------------------------------------------------------------------------------
    def _on_request(self, h2: Connection, stream: Stream) -> None:
        served: _Socket = h2.owner
        if not stream.recv_closed:  # already too large
            size = len(stream.body) - 5 if len(stream.body) > self._max_message + 5 else 0
            if not size:
                size = int.from_bytes(stream.body[1:5], "big")
            stream.body = bytearray()
            h2.respond(stream, None, call.too_large(size, self._max_message))
            return
        head = stream.head
        assert head is not None  # a request is complete only after its headers
        path, metadata = head.path, head.metadata
        handler = self._lookup(_Details(path, metadata))
        if handler is None or handler.unary_unary is None:
            h2.respond(stream, None, call.unimplemented(_METHOD_NOT_FOUND))
            return
        payload = call.request_payload(stream.body, head.encoding, self._max_message)
        size = len(stream.body)
        stream.body = bytearray()
        if isinstance(payload, tuple):
            h2.respond(stream, None, payload[0])
            return
        seconds = call.parse_timeout(head.timeout) if head.timeout is not None else None
        context = call.CallContext(metadata, None if seconds is None else time.monotonic() + seconds, h2.peer)
        if self._inline(path, size):
            message, trailers = call.run(handler, payload, context, self._max_message)
            h2.respond(stream, message, trailers)
            return
        stream.call = context
        self._in_pool += 1
        self._pool.submit(self._run_pooled, served, stream, handler, payload, context)

    def _run_pooled(
        self,
        served: _Socket,
        stream: Stream,
        handler: grpc.RpcMethodHandler,
        payload: bytes,
        context: call.CallContext,
    ) -> None:
        message, trailers = call.run(handler, payload, context, self._max_message)
        with self._lock:
            if self._wake_fd < 0:
                return  # the server stopped before this call finished
            self._done.append((served, stream, message, trailers))
            os.eventfd_write(self._wake_fd, 1)

    def _pipeline(
        self, interceptors: tuple[grpc.ServerInterceptor, ...]
    ) -> Callable[[_Details], grpc.RpcMethodHandler | None]:
        """Interceptors in order (the first outermost), then the generic handlers, as grpcio."""
        handlers = self._handlers

        def innermost(details: Any) -> grpc.RpcMethodHandler | None:
            for generic in handlers:
                found = generic.service(details)
                if found is not None:
                    return found
            return None

        lookup: Callable[[Any], grpc.RpcMethodHandler | None] = innermost
        for interceptor in reversed(interceptors):
            lookup = _intercepted(interceptor, lookup)
        return lookup


def _intercepted(
    interceptor: grpc.ServerInterceptor, continuation: Callable[[Any], grpc.RpcMethodHandler | None]
) -> Callable[[Any], grpc.RpcMethodHandler | None]:
    def lookup(details: Any) -> grpc.RpcMethodHandler | None:
        return interceptor.intercept_service(continuation, details)

    return lookup


def _peer_name(sock: socket.socket) -> str:
    """The peer as grpcio names it (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``, ``unix:``)."""
    try:
        address = sock.getpeername()
    except OSError:
        return "unknown"
    if sock.family == socket.AF_INET:
        return f"ipv4:{address[0]}:{address[1]}"
    if sock.family == socket.AF_INET6:
        return f"ipv6:[{address[0]}]:{address[1]}"
    return f"unix:{address}"
