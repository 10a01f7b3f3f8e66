"""HTTP/2 frames (RFC 9113 section 4 and 6): types, flags, error codes, and how to write them.

Only what a gRPC server needs to write: SETTINGS, PING and SETTINGS acks, WINDOW_UPDATE,
RST_STREAM, GOAWAY, DATA, and the response's header blocks. Those blocks are fixed bytes
in HPACK (RFC 7541): static-table references and literals "without indexing", so writing
them never touches the encoder's dynamic table and a connection needs no encoder state.
"""

from __future__ import annotations

import struct
from urllib.parse import quote

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER = 9

DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Error codes (RFC 9113 section 7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB

# Settings identifiers.
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME = 16384
MAX_FRAME_LIMIT = (1 << 24) - 1
MAX_WINDOW = (1 << 31) - 1

_HEAD = struct.Struct(">BHBBI")  # length split as 8 + 16 bits, type, flags, stream id
_U32 = struct.Struct(">I")


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    length = len(payload)
    return _HEAD.pack(length >> 16, length & 0xFFFF, kind, flags, stream_id) + payload


def frame_head(kind: int, flags: int, stream_id: int, length: int) -> bytes:
    return _HEAD.pack(length >> 16, length & 0xFFFF, kind, flags, stream_id)


def settings(values: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", key, value) for key, value in values.items()))


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, _U32.pack(code))


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream_id, code) + debug)


# -- HPACK, write side ---------------------------------------------------------------------------
def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 section 5.1: ``value`` with an N-bit prefix, ``first`` the pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(text: bytes) -> bytes:
    return _integer(len(text), 7, 0) + text  # not Huffman-coded


def _literal(name: bytes, value: bytes) -> bytes:
    """A literal field without indexing, its name a literal too (never enters a table)."""
    return b"\x00" + _string(name) + _string(value)


# ":status: 200" is static entry 8; "content-type" static entry 31, its value a literal.
RESPONSE_HEADERS = b"\x88" + _integer(31, 4, 0) + _string(b"application/grpc")
OK_TRAILERS = _literal(b"grpc-status", b"0")


def trailers(code: int, message: str, metadata: tuple[tuple[str, str | bytes], ...] = ()) -> bytes:
    """The trailers block of a finished call: its status, its message (percent-encoded as the
    gRPC spec asks) and any trailing metadata the handler set."""
    block = _literal(b"grpc-status", str(code).encode())
    if message:
        block += _literal(b"grpc-message", quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~").encode())
    for key, value in metadata:
        block += _literal(key.encode(), value if isinstance(value, bytes) else value.encode())
    return block
