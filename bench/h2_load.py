"""A lean gRPC load generator for the benches: pre-encoded HTTP/2 frames on raw sockets.

The benches ask what the *server* costs per call. grpcio's Python client costs several
hundred microseconds of CPU per call, so on this 2-core machine 16 client threads take most
of a core from the server they measure. Here one thread drives every connection from one
epoll loop: each connection keeps one call in flight (a closed loop, as a blocking client
does), its request is the same pre-serialized message behind a fixed header block (literal
fields, never indexed, so the bytes never change), and the answer is read only far enough to
know the call ended and with which ``grpc-status``. A call then costs the client tens of
microseconds.

HTTP/2 as a client (RFC 9113): the preface and SETTINGS, the server's SETTINGS and PINGs
acknowledged, our receive windows kept open with WINDOW_UPDATEs, header blocks decoded in
order with one ``hpack`` decoder per connection (the server may index its headers).
"""

from __future__ import annotations

import select
import socket
import struct
import time
from dataclasses import dataclass, field

from hpack import Decoder, Encoder, NeverIndexedHeaderTuple

from sheafdb.api.wire.frames import (
    ACK,
    CONTINUATION,
    DATA,
    DEFAULT_WINDOW,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    MAX_WINDOW,
    PADDED,
    PING,
    PREFACE,
    PRIORITY_FLAG,
    RST_STREAM,
    SETTINGS,
    SETTINGS_INITIAL_WINDOW_SIZE,
    frame,
    settings,
    window_update,
)

_REOPEN_AT = 1 << 20  # give the received bytes back to the windows once this many are read
_STALL_S = 30.0


def header_block(authority: str, path: str) -> bytes:
    fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("te", "trailers"),
        ("content-type", "application/grpc"),
        ("user-agent", "sheafdb-bench"),
    ]
    return Encoder().encode([NeverIndexedHeaderTuple(k, v) for k, v in fields], huffman=False)


@dataclass
class _Connection:
    sock: socket.socket
    block: bytes
    body: bytes
    decoder: Decoder = field(default_factory=Decoder)
    stream: int = -1  # the call in flight; client streams are odd and only go up
    started: float = 0.0
    buffer: bytearray = field(default_factory=bytearray)
    headers: bytearray = field(default_factory=bytearray)  # a header block still in CONTINUATIONs
    headers_end_stream: bool = False
    unacked: int = 0  # DATA bytes received since our last WINDOW_UPDATE
    status: str | None = None

    def request(self) -> bytes:
        self.stream += 2
        self.started = time.perf_counter()
        return frame(HEADERS, END_HEADERS, self.stream, self.block) + frame(
            DATA, END_STREAM, self.stream, self.body
        )


class CallFailed(RuntimeError):
    pass


class H2Load:
    """``clients`` connections to ``127.0.0.1:port`` calling ``path`` with ``message``."""

    def __init__(self, port: int, path: str, message: bytes, clients: int) -> None:
        body = b"\x00" + struct.pack(">I", len(message)) + message
        block = header_block(f"127.0.0.1:{port}", path)
        self._epoll = select.epoll()
        self._connections: dict[int, _Connection] = {}
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(
                PREFACE
                + settings({SETTINGS_INITIAL_WINDOW_SIZE: MAX_WINDOW})
                + window_update(0, MAX_WINDOW - DEFAULT_WINDOW)
            )
            sock.setblocking(False)
            self._connections[sock.fileno()] = _Connection(sock, block, body)
            self._epoll.register(sock.fileno(), select.EPOLLIN)

    def close(self) -> None:
        for connection in self._connections.values():
            connection.sock.close()
        self._epoll.close()

    def run(self, seconds: float) -> list[float]:
        """Closed-loop calls for ``seconds``; the latency of each call, in seconds."""
        latencies: list[float] = []
        for connection in self._connections.values():
            connection.sock.sendall(connection.request())
        deadline = time.perf_counter() + seconds
        in_flight = len(self._connections)
        while in_flight:
            stopping = time.perf_counter() >= deadline
            events = self._epoll.poll(_STALL_S)
            if not events:
                raise CallFailed(f"no answer for {_STALL_S} s")
            for fd, _ in events:
                connection = self._connections[fd]
                for latency in self._read(connection):
                    latencies.append(latency)
                    if stopping:
                        in_flight -= 1
                    else:
                        connection.sock.sendall(connection.request())
        return latencies

    def _read(self, connection: _Connection) -> list[float]:
        try:
            chunk = connection.sock.recv(1 << 20)
        except BlockingIOError:
            return []
        if not chunk:
            raise CallFailed("the server closed a connection")
        buffer = connection.buffer
        buffer += chunk
        finished: list[float] = []
        replies = bytearray()
        while len(buffer) >= 9:
            length = int.from_bytes(buffer[0:3], "big")
            if len(buffer) < 9 + length:
                break
            kind, flags = buffer[3], buffer[4]
            stream = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
            payload = bytes(buffer[9 : 9 + length])
            del buffer[: 9 + length]
            if kind == SETTINGS and not flags & ACK:
                replies += frame(SETTINGS, ACK, 0, b"")
            elif kind == PING and not flags & ACK:
                replies += frame(PING, ACK, 0, payload)
            elif kind == GOAWAY:
                raise CallFailed(f"GOAWAY from the server: {payload[8:]!r}")
            elif kind == RST_STREAM and stream == connection.stream:
                raise CallFailed(f"RST_STREAM {int.from_bytes(payload, 'big')}")
            elif kind == DATA:
                connection.unacked += length
                if flags & END_STREAM:
                    finished.append(self._end(connection))
            elif kind in (HEADERS, CONTINUATION):
                if kind == HEADERS:
                    payload = _strip_headers(payload, flags)
                    connection.headers_end_stream = bool(flags & END_STREAM)
                connection.headers += payload
                if flags & END_HEADERS:
                    for name, value in connection.decoder.decode(bytes(connection.headers)):
                        if name == "grpc-status":
                            connection.status = value
                    connection.headers.clear()
                    if connection.headers_end_stream:
                        finished.append(self._end(connection))
        if connection.unacked >= _REOPEN_AT:
            replies += window_update(0, connection.unacked) + window_update(
                connection.stream, connection.unacked
            )
            connection.unacked = 0
        if replies:
            connection.sock.setblocking(True)
            connection.sock.sendall(bytes(replies))
            connection.sock.setblocking(False)
        return finished

    @staticmethod
    def _end(connection: _Connection) -> float:
        if connection.status != "0":
            raise CallFailed(f"grpc-status {connection.status} on stream {connection.stream}")
        connection.status = None
        return time.perf_counter() - connection.started


def _strip_headers(payload: bytes, flags: int) -> bytes:
    start, end = 0, len(payload)
    if flags & PADDED:
        start, end = 1, end - payload[0]
    if flags & PRIORITY_FLAG:
        start += 5
    return payload[start:end]
