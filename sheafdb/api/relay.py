"""Byte relays between accepted client connections and a backend address: the cluster proxy's
gRPC hop and the front's REST splice (``rest_target``). A server's own gRPC connections are
not relayed: its wire loop adopts them (api/wire/).

One thread (``sheafdb-relay``, started with the first connection) pumps every relayed
connection of a ``Relays``: an epoll loop over non-blocking sockets that, for each readable
socket, reads into one shared buffer and writes it to the other side. Under load one wakeup
serves every connection that became ready together, and no other thread of the process has
to hand the interpreter lock to a relay per message: at 16 concurrent clients this costs the
server less CPU per call than the two blocking threads per connection it replaced
(``bench/cpu_per_search.py``; those threads were themselves ~0.08 ms faster per round trip
than relaying on the front's asyncio loop, ``bench/front_latency.py``).

Flow control is the kernel's: when a write does not go out whole, the rest is kept (at most
one read's worth per direction) and the source is not read again until it has gone, so a
slow receiver holds the sender back through the socket buffers, never through memory here.
A side's end of stream (EOF) half-closes the other side once its pending bytes are out; a
reset or error on either side ends both. A connection is closed once both directions ended.

Threads and locks: ``Relays._lock`` guards the connections waiting to be adopted by the loop
and the closed flag (``start`` runs on the front's loop thread);
everything else belongs to the loop thread alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
from typing import Any

# One read: small calls fit many times over; a multi-MB insert moves in few large syscalls.
_READ_BUFFER = 1024 * 1024
# The backend socket's buffers: big enough that a whole ~3 MB insert request fits in flight
# (the kernel caps this at net.core.wmem_max / rmem_max).
_BACKEND_SOCKET_BUFFER = 4 * 1024 * 1024
# How long the loop waits for a unix backend's accept queue to make room.
_UNIX_CONNECT_S = 5.0
_IN = select.EPOLLIN
_OUT = select.EPOLLOUT


def _backend_socket(target: str) -> tuple[socket.socket, Any]:
    """A socket for ``unix:/path`` or ``host:port``, and the address to connect: a TCP one
    non-blocking (its connect completes in the loop), a unix one blocking (a unix connect that
    cannot complete at once fails with EAGAIN instead of going on in the background; a local
    accept queue is full only for an instant)."""
    if target.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(_UNIX_CONNECT_S)
        address: Any = target[len("unix:") :]
    else:
        host, _, port = target.rpartition(":")
        family, kind, proto, _, address = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BACKEND_SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BACKEND_SOCKET_BUFFER)
    if sock.family != socket.AF_UNIX:
        sock.setblocking(False)
    return sock, address


class _Side:
    """One socket of a relayed connection, and what is still to be written to it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.pending = b""  # bytes read from the peer, not yet written here
        self.reading = True  # this side's stream has not ended
        self.shut_after_pending = False  # the peer ended: half-close once pending is out
        self.registered: int | None = None  # the events epoll watches for it (None: not yet)
        self.peer: _Side

    def mask(self) -> int:
        # Read only while the peer has taken everything read before (flow control).
        return (_IN if self.reading and not self.peer.pending else 0) | (_OUT if self.pending else 0)


class _Connection:
    def __init__(self, client: socket.socket, backend: socket.socket) -> None:
        self.client = _Side(client)
        self.backend = _Side(backend)
        self.client.peer, self.backend.peer = self.backend, self.client
        self.connected = False


class Relays:
    """The live relayed connections of one front."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._adopt: list[tuple[socket.socket, str, bytes]] = []
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._epoll = select.epoll()
        self._epoll.register(self._wake_r, _IN)
        # Loop thread only: fd -> (connection, the side that fd is).
        self._sides: dict[int, tuple[_Connection, _Side]] = {}
        self._buffer = bytearray(_READ_BUFFER)

    def start(self, client: socket.socket, target: str, first_bytes: bytes) -> None:
        """Relay ``client`` (a connected socket, now owned here) to a new connection to
        ``target``, sending ``first_bytes`` (what was read from the client) first."""
        with self._lock:
            if self._closed:
                client.close()
                return
            self._adopt.append((client, target, first_bytes))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sheafdb-relay", daemon=True)
                self._thread.start()
            self._wake()

    def close(self, timeout_s: float) -> None:
        """End every relayed connection and wait (up to ``timeout_s``) for the relay thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._wake()
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                return  # still winding down: it keeps its descriptors
        else:
            self._shut_all()
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _wake(self) -> None:
        """Under ``_lock``: make the loop look at the adoptions and the closed flag."""
        with contextlib.suppress(BlockingIOError):  # full: a wakeup is pending anyway
            os.write(self._wake_w, b"x")

    # -- the loop thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                for fd, events in self._epoll.poll():
                    if fd == self._wake_r:
                        if not self._woken():
                            return
                        continue
                    found = self._sides.get(fd)
                    if found is not None:
                        self._ready(found[0], found[1], events)
        finally:
            self._shut_all()

    def _woken(self) -> bool:
        """Adopt the new connections; False once closed."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        with self._lock:
            adopt, self._adopt = self._adopt, []
            closed = self._closed
        for client, target, first_bytes in adopt:
            if closed:
                client.close()
            else:
                self._adopt_one(client, target, first_bytes)
        return not closed

    def _adopt_one(self, client: socket.socket, target: str, first_bytes: bytes) -> None:
        client.setblocking(False)
        try:
            backend, address = _backend_socket(target)
        except OSError:
            client.close()
            return
        connection = _Connection(client, backend)
        connection.backend.pending = first_bytes
        for side in (connection.client, connection.backend):
            self._sides[side.fd] = (connection, side)
        try:
            backend.connect(address)
            connection.connected = True
        except (BlockingIOError, InterruptedError):
            pass  # in progress (TCP): writable once connected
        except OSError:
            self._end(connection)
            return
        backend.setblocking(False)
        if connection.connected:
            self._register(connection.client, connection.client.mask())
            self._register(connection.backend, connection.backend.mask())
        else:
            self._register(connection.backend, _OUT)

    def _ready(self, connection: _Connection, side: _Side, events: int) -> None:
        if not connection.connected:
            if not events & (_OUT | select.EPOLLERR | select.EPOLLHUP):
                return  # not the connect's outcome (an event of an earlier socket on this fd)
            # The backend's connect finished (or failed).
            if side.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                self._end(connection)
                return
            connection.connected = True
            self._register(connection.client, connection.client.mask())
            self._update(side)
            return
        try:
            if events & _OUT and side.pending:
                self._write(side)
            if events & (_IN | select.EPOLLHUP | select.EPOLLERR) and side.reading and not side.peer.pending:
                self._read(side)
        except OSError:  # a reset on one side ends the other direction too
            self._end(connection)
            return
        if events & (select.EPOLLHUP | select.EPOLLERR) and not (side.reading or side.pending):
            # Shut both ways (or failed) with nothing left to do on it: epoll would report it
            # again and again.
            self._end(connection)
            return
        if not (connection.client.reading or connection.client.pending) and not (
            connection.backend.reading or connection.backend.pending
        ):
            self._end(connection)
            return
        self._update(connection.client)
        self._update(connection.backend)

    def _read(self, side: _Side) -> None:
        try:
            received = side.sock.recv_into(self._buffer)
        except (BlockingIOError, InterruptedError):
            return
        peer = side.peer
        if received == 0:
            side.reading = False
            peer.shut_after_pending = True
            if not peer.pending:
                self._half_close(peer)
            return
        data = memoryview(self._buffer)[:received]
        try:
            sent = peer.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < received:
            peer.pending = bytes(data[sent:])

    def _write(self, side: _Side) -> None:
        try:
            sent = side.sock.send(side.pending)
        except (BlockingIOError, InterruptedError):
            return
        side.pending = side.pending[sent:]
        if not side.pending and side.shut_after_pending:
            self._half_close(side)

    def _half_close(self, side: _Side) -> None:
        side.shut_after_pending = False
        try:
            side.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise

    def _register(self, side: _Side, mask: int) -> None:
        self._epoll.register(side.fd, mask)
        side.registered = mask

    def _update(self, side: _Side) -> None:
        """Watch what ``side`` now waits for. Level-triggered: an unchanged mask needs no call
        (the common case, a message read and passed on whole: no epoll_ctl per message, no
        release of the interpreter lock for it)."""
        mask = side.mask()
        if mask == side.registered:
            return
        with contextlib.suppress(OSError):
            self._epoll.modify(side.fd, mask)
            side.registered = mask

    def _end(self, connection: _Connection) -> None:
        for side in (connection.client, connection.backend):
            if self._sides.pop(side.fd, None) is None:
                continue
            with contextlib.suppress(OSError):
                self._epoll.unregister(side.fd)
            side.sock.close()

    def _shut_all(self) -> None:
        connections = {id(c): c for c, _ in self._sides.values()}
        for connection in connections.values():
            self._end(connection)
        with self._lock:
            adopt, self._adopt = self._adopt, []
        for client, _, _ in adopt:
            client.close()
