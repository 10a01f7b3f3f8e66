"""One listener for both protocols (Milvus serves gRPC and REST on 19530).

grpcio's server cannot share a port with HTTP/1.1, so a small asyncio front owns the public
port and looks at the first bytes of every connection:

- the HTTP/2 client preface (``PRI * HTTP/2.0``) -> the bytes are spliced to the gRPC server,
  which listens on an internal address (``unix:/path`` or ``127.0.0.1:port``);
- anything else is HTTP/1.1 -> the connection is handed, in place, to uvicorn's HTTP protocol
  running the REST app (no second hop), or spliced to ``rest_target`` when one is given.

Threads: the front runs one event loop in its own thread (``FrontThread``); every connection's
state lives on that loop, so nothing here needs a lock. The REST app's blocking work goes to
anyio's worker threads (see ``rest/app.py``).
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

from sheafdb.errors import UnsafeBindRefused

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


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


async def _open_backend(target: str, protocol_factory: Callable[[], asyncio.Protocol]) -> asyncio.Transport:
    loop = asyncio.get_running_loop()
    if target.startswith("unix:"):
        transport, _ = await loop.create_unix_connection(protocol_factory, target[len("unix:") :])
    else:
        host, _, port = target.rpartition(":")
        transport, _ = await loop.create_connection(protocol_factory, host, int(port))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert isinstance(transport, asyncio.Transport)
    return transport


class _Pipe(asyncio.Protocol):
    """One direction's reader: forwards what it receives to ``peer``, with back-pressure."""

    def __init__(self, peer: asyncio.Transport) -> None:
        self.peer = peer
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.peer.write(data)

    def eof_received(self) -> bool:
        if self.peer.can_write_eof():
            self.peer.write_eof()
        return True  # keep our side open until the peer closes too

    def connection_lost(self, exc: Exception | None) -> None:
        self.peer.close()

    # Our transport's buffer is full: stop reading from the peer until it drains.
    def pause_writing(self) -> None:
        self.peer.pause_reading()

    def resume_writing(self) -> None:
        self.peer.resume_reading()


class _Sniffer(asyncio.Protocol):
    """A new client connection, until its first bytes say which protocol it speaks."""

    def __init__(self, front: ProtocolFront) -> None:
        self._front = front
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._decided = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._decided:
            self._buffer += data  # arrived while the backend connection was opening
            return
        self._buffer += data
        head = self._buffer[: len(HTTP2_PREFACE)]
        if HTTP2_PREFACE.startswith(head) and len(head) < len(HTTP2_PREFACE):
            return  # could still be either: wait for more
        self._decided = True
        assert self._transport is not None
        if head == HTTP2_PREFACE:
            self._splice(self._front.grpc_target)
        elif self._front.rest_target is not None:
            self._splice(self._front.rest_target)
        else:
            self._front.serve_http(self._transport, self._buffer)

    def _splice(self, target: str) -> None:
        client = self._transport
        assert client is not None
        client.pause_reading()
        self._front.spawn(self._connect(client, target))

    async def _connect(self, client: asyncio.Transport, target: str) -> None:
        try:
            backend = await _open_backend(target, lambda: _Pipe(client))
        except OSError:
            client.close()
            return
        if client.is_closing():  # the client left while we were connecting
            backend.close()
            return
        client.set_protocol(_Pipe(backend))
        backend.write(self._buffer)
        self._buffer = b""
        client.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._buffer = b""


class ProtocolFront:
    """The front's listening socket and its per-connection dispatch (on the running loop)."""

    def __init__(self, grpc_target: str, rest_app: Any = None, rest_target: str | None = None) -> None:
        if (rest_app is None) == (rest_target is None):
            raise ValueError("give exactly one of rest_app (served in place) and rest_target (spliced)")
        self.grpc_target = grpc_target
        self.rest_target = rest_target
        self._uvicorn: uvicorn.Config | None = None
        if rest_app is not None:
            self._uvicorn = uvicorn.Config(rest_app, lifespan="off", access_log=False, log_level="warning")
            self._uvicorn.load()
        self._state = ServerState()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Sniffer(self), host, port, reuse_address=True, backlog=1024
        )
        return int(self._server.sockets[0].getsockname()[1])

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def serve_http(self, transport: asyncio.Transport, first_bytes: bytes) -> None:
        """Hand the connection to uvicorn's HTTP/1.1 protocol, replaying what was read."""
        config = self._uvicorn
        assert config is not None
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=self._state, app_state={}, _loop=asyncio.get_running_loop()
        )
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(first_bytes)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for connection in list(self._state.connections):
            connection.shutdown()
        for task in list(self._tasks):
            task.cancel()


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
