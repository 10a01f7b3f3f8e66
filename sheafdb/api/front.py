"""One listener for both protocols (Milvus serves gRPC and REST on 19530).

A small asyncio front owns the public port and looks at the first bytes of every connection:

- the HTTP/2 client preface (``PRI * HTTP/2.0``) -> gRPC: with ``serve --workers N`` the
  connection is first offered to ``hand_off`` (query_workers.py), which passes the socket
  itself to a query worker process; otherwise ``grpc_target`` takes it: a callable (the
  server's wire loop, api/wire/, adopts the socket and the bytes read) or an address
  (``unix:/path`` or ``127.0.0.1:port``: the cluster proxy's grpcio server, relayed to);
- anything else is HTTP/1.1 -> the connection is handed, in place, to uvicorn's HTTP protocol
  running the REST app (no second hop), or relayed to ``rest_target`` when one is given.

Threads: the front runs one event loop in its own thread (``FrontThread``) that accepts, reads
the first bytes and serves REST; every REST connection's state lives on that loop, so nothing
here needs a lock. A gRPC connection leaves the loop: the wire loop or a worker takes it, or
the relay's own epoll thread pumps its bytes (``relay.py``: relaying on this loop cost three
times as much per call).
The REST app's blocking work goes to anyio's worker threads (see ``rest/app.py``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from sheafdb.api.relay import Relays
from sheafdb.errors import UnsafeBindRefused

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# How long stopping waits for the relay thread (the server's whole stop must fit in 2 s).
_RELAY_STOP_S = 0.5


def check_bind_safety(host: str, *, auth_enabled: bool, insecure: bool) -> None:
    """Refuse to serve a non-loopback address with authentication off, unless ``insecure``."""
    if auth_enabled or insecure or _is_loopback(host):
        return
    raise UnsafeBindRefused(
        f"refusing to listen on {host} with authentication off: anyone who can reach this address "
        "could read, change and drop every collection. Turn authentication on, listen on 127.0.0.1, "
        "or pass --insecure if the network is trusted."
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listeners(host: str, port: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address ``host`` resolves to."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            listeners.append(sock)
            # A port with only TIME_WAIT leftovers of a previous run is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            # Port 0: every other address takes the port the first one got.
            port = port or sock.getsockname()[1]
            sock.listen(1024)
            sock.setblocking(False)
    except OSError:
        for sock in listeners:
            sock.close()
        raise
    return listeners


class ProtocolFront:
    """The front's listening sockets and its per-connection dispatch (on the running loop)."""

    def __init__(
        self,
        grpc_target: str | Callable[[socket.socket, bytes], None],
        rest_app: Any = None,
        rest_target: str | None = None,
        hand_off: Callable[[socket.socket, bytes], bool] | None = None,
    ) -> None:
        """``hand_off``: offered each gRPC connection first (``serve --workers N`` gives it to
        a query worker process); when it returns False the connection goes to ``grpc_target``:
        relayed to that address, or, a callable (the wire server's ``adopt``), handed to it."""
        if (rest_app is None) == (rest_target is None):
            raise ValueError("give exactly one of rest_app (served in place) and rest_target (spliced)")
        self.grpc_target = grpc_target
        self._hand_off = hand_off
        self.rest_target = rest_target
        self._uvicorn: uvicorn.Config | None = None
        if rest_app is not None:
            self._uvicorn = uvicorn.Config(rest_app, lifespan="off", access_log=False, log_level="warning")
            self._uvicorn.load()
        self._state = ServerState()
        self._listeners: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._relays = Relays()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._listeners = _listeners(host, port)
        for listener in self._listeners:
            self._spawn(self._accept(listener))
        return int(self._listeners[0].getsockname()[1])

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(listener)
            except OSError:  # e.g. EMFILE, or the client reset before accept: keep serving
                await asyncio.sleep(0.01)
                continue
            client.setblocking(False)
            if client.family in (socket.AF_INET, socket.AF_INET6):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._spawn(self._serve_connection(client))

    async def _serve_connection(self, client: socket.socket) -> None:
        """Read until the first bytes say which protocol this is, then route the connection."""
        loop = asyncio.get_running_loop()
        head = b""
        try:
            while HTTP2_PREFACE.startswith(head[: len(HTTP2_PREFACE)]) and len(head) < len(HTTP2_PREFACE):
                chunk = await loop.sock_recv(client, 65536)
                if not chunk:  # gone before saying anything useful
                    client.close()
                    return
                head += chunk
        except (OSError, asyncio.CancelledError):
            client.close()
            raise
        if head.startswith(HTTP2_PREFACE) and self._hand_off is not None and self._hand_off(client, head):
            client.close()  # the worker holds its own descriptor of the connection
            return
        if head.startswith(HTTP2_PREFACE) and callable(self.grpc_target):
            self.grpc_target(client, head)  # the socket is the wire server's now
            return
        if head.startswith(HTTP2_PREFACE) or self.rest_target is not None:
            target = self.grpc_target if head.startswith(HTTP2_PREFACE) else self.rest_target
            assert isinstance(target, str)
            self._relays.start(client, target, head)
        else:
            await self._serve_http(client, head)

    async def _serve_http(self, client: socket.socket, first_bytes: bytes) -> None:
        """Hand the connection to uvicorn's HTTP/1.1 protocol, replaying what was read."""
        config = self._uvicorn
        assert config is not None
        loop = asyncio.get_running_loop()
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=self._state, app_state={}, _loop=loop
        )
        await loop.connect_accepted_socket(lambda: protocol, client)
        protocol.data_received(first_bytes)

    async def close(self) -> None:
        for listener in self._listeners:
            listener.close()
        for connection in list(self._state.connections):
            connection.shutdown()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Blocks the loop while the relay thread wakes and exits (milliseconds): it is stopping.
        self._relays.close(timeout_s=_RELAY_STOP_S)


class FrontThread:
    """Runs a ``ProtocolFront`` on its own event loop thread; ``start()`` returns the port."""

    def __init__(self, front: ProtocolFront, host: str, port: int) -> None:
        self._front = front
        self._host = host
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sheafdb-front", daemon=True)

    def start(self) -> int:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._front.start(self._host, self._port), self._loop)
        return started.result()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._front.close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
