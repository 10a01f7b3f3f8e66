"""One gRPC call on the wire server: its context (what a handler asks of grpc.ServicerContext)
and running it, from the request's bytes to the response's (gRPC's 5-byte framing, gzip).

``run`` never raises: every outcome becomes either a response message with OK trailers or
a trailers-only status, as grpcio's server answers (an abort's code and details; UNKNOWN
"Exception calling application: ..." for anything else a handler raises; INTERNAL for a
request that does not parse; RESOURCE_EXHAUSTED past the message limit).
"""

from __future__ import annotations

import base64
import struct
import time
import zlib
from collections.abc import Sequence
from typing import Any

import grpc

from sheafdb.api.wire import frames

_LENGTH = struct.Struct(">I")
# grpc-timeout units (gRPC over HTTP/2: "Timeout -> TimeoutValue TimeoutUnit").
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


class _Aborted(Exception):
    """Raised by ``abort`` (grpcio raises a plain Exception there; handlers let it pass)."""


def parse_timeout(value: str) -> float | None:
    """Seconds of a ``grpc-timeout`` value (None when malformed: no deadline)."""
    if not 2 <= len(value) <= 9 or value[-1] not in _UNITS or not value[:-1].isdigit():
        return None
    return int(value[:-1]) * _UNITS[value[-1]]


class CallContext:
    """The servicer context of a wire call: metadata, deadline, peer, abort, status, trailers."""

    __slots__ = ("_metadata", "_deadline", "_peer", "code", "details", "trailing", "cancelled")

    def __init__(
        self, metadata: tuple[tuple[str, str | bytes], ...], deadline: float | None, peer: str
    ) -> None:
        self._metadata = metadata
        self._deadline = deadline  # time.monotonic() based
        self._peer = peer
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.trailing: tuple[tuple[str, str | bytes], ...] = ()
        self.cancelled = False

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def peer(self) -> str:
        return self._peer

    def is_active(self) -> bool:
        return not self.cancelled

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        if code is grpc.StatusCode.OK:  # as grpcio: aborting with OK is a bug of the caller
            code = grpc.StatusCode.UNKNOWN
        self.code = code
        self.details = details
        raise _Aborted(details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self.trailing = tuple(metadata)


def _status(code: grpc.StatusCode, message: str, context: CallContext | None = None) -> bytes:
    return frames.trailers(code.value[0], message, _wire_metadata(context))


def _wire_metadata(context: CallContext | None) -> tuple[tuple[str, str | bytes], ...]:
    if context is None or not context.trailing:
        return ()
    return tuple(
        (
            key,
            base64.b64encode(value).rstrip(b"=")
            if key.endswith("-bin") and isinstance(value, bytes)
            else value,
        )
        for key, value in context.trailing
    )


def too_large(size: int, limit: int) -> bytes:
    return _status(
        grpc.StatusCode.RESOURCE_EXHAUSTED, f"Received message larger than max ({size} vs. {limit})"
    )


def unimplemented(message: str) -> bytes:
    return _status(grpc.StatusCode.UNIMPLEMENTED, message)


def request_payload(body: bytes | bytearray, encoding: str | None, limit: int) -> bytes | tuple[bytes]:
    """The request message of a unary call's body, or ``(trailers,)`` saying why there is none."""
    if len(body) < 5:
        return (_status(grpc.StatusCode.INTERNAL, "Missing request message"),)
    size = _LENGTH.unpack_from(body, 1)[0]
    if size > limit:
        return (too_large(size, limit),)
    if len(body) != 5 + size:
        return (_status(grpc.StatusCode.INTERNAL, "Expected exactly one request message"),)
    payload = bytes(memoryview(body)[5:])
    if not body[0]:
        return payload
    if encoding != "gzip":
        return (unimplemented(f"Compression algorithm '{encoding or 'identity'}' is not supported"),)
    try:
        inflater = zlib.decompressobj(wbits=31)
        payload = inflater.decompress(payload, limit + 1)
    except zlib.error:
        return (_status(grpc.StatusCode.INTERNAL, "Failed to decompress the request message"),)
    if len(payload) > limit:
        return (too_large(len(payload), limit),)
    return payload


def run(
    handler: grpc.RpcMethodHandler, payload: bytes, context: CallContext, send_limit: int
) -> tuple[bytes | None, bytes]:
    """The handler on ``payload``: (the framed response or None, the trailers block)."""
    deserialize = handler.request_deserializer
    try:
        request: Any = deserialize(payload) if deserialize is not None else payload
    except Exception:  # noqa: BLE001 - any parse failure is the client's
        return None, _status(grpc.StatusCode.INTERNAL, "Exception deserializing request!")
    behaviour = handler.unary_unary
    try:
        response = behaviour(request, context)
    except Exception as exc:  # noqa: BLE001 - becomes the call's status, as in grpcio
        if context.code is not None:
            return None, _status(context.code, context.details, context)
        return None, _status(grpc.StatusCode.UNKNOWN, f"Exception calling application: {exc}", context)
    if context.code is not None and context.code is not grpc.StatusCode.OK:
        return None, _status(context.code, context.details, context)
    serialize = handler.response_serializer
    try:
        message = serialize(response) if serialize is not None else response
    except Exception:  # noqa: BLE001
        return None, _status(grpc.StatusCode.INTERNAL, "Failed to serialize response!")
    if len(message) > send_limit:
        return None, _status(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"Sent message larger than max ({len(message)} vs. {send_limit})",
        )
    trailers = frames.OK_TRAILERS if not context.trailing else _status(grpc.StatusCode.OK, "", context)
    return b"\x00" + _LENGTH.pack(len(message)) + message, trailers
