"""Byte relays between an accepted client connection and a backend address (the gRPC hop).

Each relayed connection gets two plain threads, one per direction, each blocking in
``recv_into`` then ``sendall`` on one reused buffer. A blocked thread wakes straight from the
syscall (with the GIL released while it waits), so a small call costs two wakeups per hop and
no event-loop machinery. Against the earlier relay on the front's asyncio loop this takes
~0.08 ms off a gRPC round trip, about two thirds of the hop (``bench/front_latency.py``). A
relay in a child process (a GIL of its own) and one epoll thread for all connections
measured no better than these threads, and ``os.splice`` no better for multi-MB inserts.

Flow control is the kernel's: a direction reads again only after its previous chunk went out,
so a slow receiver holds the sender back through the socket buffers, never through memory here.

Threads and locks: ``Relays._lock`` guards the set of live connections (added by the front's
loop thread, removed by each connection's last relay thread, aborted by ``close``); a
``_RelayedConnection._lock`` counts that connection's running directions so the last one
closes both sockets (closing while the other direction still blocks on one would let the
descriptor be reused under it).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

# Relay buffers start small (most connections carry small calls) and double, up to the cap,
# while reads keep filling them: a multi-MB insert then moves in a few large syscalls.
_FIRST_BUFFER = 64 * 1024
_MAX_BUFFER = 1024 * 1024
# The backend socket's buffers: big enough that a whole ~3 MB insert request fits in flight
# (the kernel caps this at net.core.wmem_max / rmem_max).
_BACKEND_SOCKET_BUFFER = 4 * 1024 * 1024


def connect_backend(target: str) -> socket.socket:
    """A blocking connection to ``unix:/path`` or ``host:port``."""
    if target.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address: Any = target[len("unix:") :]
    else:
        host, _, port = target.rpartition(":")
        family, kind, proto, _, address = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BACKEND_SOCKET_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BACKEND_SOCKET_BUFFER)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


class _RelayedConnection:
    """One client connection relayed to one backend connection, both directions."""

    def __init__(self, client: socket.socket, target: str, first_bytes: bytes, owner: Relays) -> None:
        self._client = client
        self._target = target
        self._first_bytes = first_bytes
        self._owner = owner
        self._backend: socket.socket | None = None
        self._aborted = False
        self._running = 2
        self._lock = threading.Lock()
        # The reply direction starts once the backend is connected (by the upstream thread).
        self.upstream = threading.Thread(target=self._upstream, name="sheafdb-relay-up", daemon=True)
        self.reply: threading.Thread | None = None

    def _upstream(self) -> None:
        """Connect, replay what the front already read, start the reply direction, then pump
        client -> backend."""
        try:
            backend = connect_backend(self._target)
        except OSError:
            self._finish(directions=2)
            return
        with self._lock:
            self._backend = backend
            aborted = self._aborted
        if aborted:  # the front closed while we connected
            self._finish(directions=2)
            return
        self.reply = threading.Thread(
            target=self._pump, args=(backend, self._client), name="sheafdb-relay-down", daemon=True
        )
        self.reply.start()
        try:
            backend.sendall(self._first_bytes)
        except OSError:
            self.abort()
            self._finish(directions=1)
            return
        self._pump(self._client, backend)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        """Copy ``src`` to ``dst`` until ``src`` ends, then half-close ``dst``."""
        buffer = bytearray(_FIRST_BUFFER)
        try:
            while received := src.recv_into(buffer):
                dst.sendall(memoryview(buffer)[:received])
                if received == len(buffer) and len(buffer) < _MAX_BUFFER:
                    buffer = bytearray(2 * len(buffer))
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            # A reset on one side ends the other direction too.
            self.abort()
        self._finish(directions=1)

    def abort(self) -> None:
        """Wake both directions (their blocked syscalls return); the sockets close once both end."""
        with self._lock:
            self._aborted = True
            sockets = [self._client, self._backend]
        for sock in sockets:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _finish(self, directions: int) -> None:
        with self._lock:
            self._running -= directions
            last = self._running == 0
        if last:
            self._client.close()
            if self._backend is not None:
                self._backend.close()
            self._owner.discard(self)


class Relays:
    """The live relayed connections of one front."""

    def __init__(self) -> None:
        self._connections: set[_RelayedConnection] = set()
        self._lock = threading.Lock()
        self._closed = False

    def start(self, client: socket.socket, target: str, first_bytes: bytes) -> None:
        """Relay ``client`` (a connected socket, now owned here) to a new connection to
        ``target``, sending ``first_bytes`` (what was read from the client) first."""
        client.setblocking(True)
        connection = _RelayedConnection(client, target, first_bytes, self)
        with self._lock:
            if self._closed:
                client.close()
                return
            self._connections.add(connection)
            # Started under the lock: ``close`` never sees a connection whose thread is unstarted.
            connection.upstream.start()

    def discard(self, connection: _RelayedConnection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def close(self, timeout_s: float) -> None:
        """End every relayed connection and wait (up to ``timeout_s`` in all) for its threads."""
        with self._lock:
            self._closed = True
            connections = list(self._connections)
        for connection in connections:
            connection.abort()
        deadline = time.monotonic() + timeout_s
        for connection in connections:
            # Upstream first: once it has ended, the reply thread was started or never will be.
            connection.upstream.join(max(0.0, deadline - time.monotonic()))
            if connection.reply is not None:
                connection.reply.join(max(0.0, deadline - time.monotonic()))
