"""A raw HTTP/2 client for protocol tests: frames written by hand, headers by ``hpack``.

It speaks only what a test asks of it (no automatic window updates or acks), so a test can
drive the server through the corners of RFC 9113 that the SDKs never reach.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from hpack import Decoder, Encoder

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8
SERVICE = "/milvus.proto.milvus.MilvusService/"


@dataclass
class Frame:
    kind: int
    flags: int
    stream: int
    payload: bytes


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    length = len(payload)
    return struct.pack(">BHBBI", length >> 16, length & 0xFFFF, kind, flags, stream) + payload


def grpc_message(body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(body)) + body


class RawH2:
    def __init__(self, port: int, settings: dict[int, int] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self._buffer = b""
        payload = b"".join(struct.pack(">HI", k, v) for k, v in (settings or {}).items())
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, payload))

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request_headers(self, method: str, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
        """An encoded request header block (the dynamic table of this connection's encoder)."""
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", SERVICE + method),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *extra,
        ]
        return bytes(self.encoder.encode(headers))

    def unary(self, stream: int, method: str, body: bytes) -> None:
        """A whole unary request: HEADERS, then one DATA ending the stream."""
        block = self.request_headers(method)
        self.send(
            frame(HEADERS, END_HEADERS, stream, block) + frame(DATA, END_STREAM, stream, grpc_message(body))
        )

    def read_frame(self) -> Frame:
        while len(self._buffer) < 9:
            self._fill()
        length = int.from_bytes(self._buffer[:3], "big")
        while len(self._buffer) < 9 + length:
            self._fill()
        kind, flags = self._buffer[3], self._buffer[4]
        stream = int.from_bytes(self._buffer[5:9], "big") & 0x7FFFFFFF
        payload, self._buffer = self._buffer[9 : 9 + length], self._buffer[9 + length :]
        return Frame(kind, flags, stream, payload)

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk

    def headers_of(self, item: Frame) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.decoder.decode(item.payload)}

    def response(self, stream: int, *, grant: bool = False) -> tuple[dict[str, str], bytes, list[Frame]]:
        """Read until ``stream`` ends: its headers and trailers merged, its DATA bytes, and the
        frames of other streams or the connection seen meanwhile. ``grant``: give back every
        DATA frame's bytes at once (WINDOW_UPDATE on the stream and the connection)."""
        headers: dict[str, str] = {}
        body = b""
        others: list[Frame] = []
        while True:
            item = self.read_frame()
            if item.stream != stream:
                if item.kind == HEADERS:  # keep the decoder's table in step
                    self.headers_of(item)
                others.append(item)
                continue
            if item.kind == HEADERS:
                headers.update(self.headers_of(item))
            elif item.kind == DATA:
                body += item.payload
                if grant and item.payload:
                    size = struct.pack(">I", len(item.payload))
                    self.send(frame(WINDOW_UPDATE, 0, stream, size) + frame(WINDOW_UPDATE, 0, 0, size))
            elif item.kind == RST_STREAM:
                headers["rst"] = str(int.from_bytes(item.payload, "big"))
                return headers, body, others
            if item.flags & END_STREAM:
                return headers, body, others

    def until(self, kind: int) -> Frame:
        """The next frame of ``kind`` (frames before it are dropped, their headers decoded)."""
        while True:
            item = self.read_frame()
            if item.kind == HEADERS:
                self.headers_of(item)
            if item.kind == kind:
                return item
