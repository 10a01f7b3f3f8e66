"""One HTTP/2 server connection carrying gRPC calls (RFC 9113), driven by the loop thread.

``feed`` takes the bytes read from the socket and parses frames; a request whose stream
ended (headers and its whole body in) goes to ``on_request``. ``respond`` queues a call's
answer: its headers, its DATA within the client's flow-control windows (connection and
stream), its trailers. What is written waits in ``out`` until the loop sends it (one send
for everything queued in one pass); DATA beyond the client's windows waits on its stream
until a WINDOW_UPDATE, and beyond ``_OUT_HIGH`` bytes unsent on the socket the connection
stops taking more from its streams: a slow reader holds its answers back, not our memory.

A protocol violation raises ``ConnectionError_`` (the loop writes its GOAWAY and closes);
one confined to a stream resets that stream only. Everything here runs on the loop thread.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Callable
from typing import Any

from hpack.exceptions import HPACKError

from sheafdb.api.wire import frames as f
from sheafdb.api.wire.headers import HeaderDecoder, RequestHead

# What this server allows a client (SETTINGS): streams at once, and its windows per stream
# and per connection (raised at once from 64 KiB: a request is read whole anyway).
MAX_CONCURRENT_STREAMS = 1024
RECV_WINDOW = 1 << 22
CONNECTION_WINDOW = 1 << 24
# The largest frame a client may send: big requests (inserts) arrive in few frames.
MAX_FRAME_SIZE = 1 << 20
# Header blocks past this many bytes (before decoding) end the connection.
MAX_HEADER_BLOCK = 1 << 20
# Unsent bytes on the socket above which no more DATA is taken from the streams.
_OUT_HIGH = 1 << 20
_U32 = struct.Struct(">I")
_SETTING = struct.Struct(">HI")


class ConnectionError_(Exception):  # noqa: N801 - not the builtin: an HTTP/2 connection error
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Stream:
    """One request stream and, once answered, what is still to be sent on it."""

    __slots__ = (
        "id",
        "head",
        "block",
        "body",
        "recv_closed",
        "recv_unacked",
        "send_window",
        "pending",
        "trailer",
        "answered",
        "cancelled",
        "refused",
        "call",
    )

    def __init__(self, stream_id: int, send_window: int) -> None:
        self.id = stream_id
        self.head: RequestHead | None = None
        self.block = b""  # a header block still in CONTINUATIONs
        self.body = bytearray()
        self.recv_closed = False
        self.recv_unacked = 0
        self.send_window = send_window
        self.pending: memoryview | None = None  # response DATA not yet within the windows
        self.trailer = b""  # its HEADERS frame, queued once ``pending`` is out
        self.answered = False
        self.cancelled = False  # reset by the client: its answer is dropped
        self.refused = False  # answered early (e.g. too big): the rest of its body is dropped
        self.call: Any = None  # the context of its call while the pool runs it

    def cancel(self) -> None:
        """Reset by the client or its connection gone: nothing more is sent for it."""
        self.cancelled = True
        if self.call is not None:
            self.call.cancelled = True  # the handler's ``context.is_active()`` turns False


class Connection:
    def __init__(self, on_request: Callable[[Connection, Stream], None], peer: str, max_message: int) -> None:
        """``on_request(connection, stream)``: a request is complete (``stream.recv_closed``),
        or, unfinished, already larger than ``max_message`` bytes (to be refused)."""
        self._on_request = on_request
        self.max_message = max_message
        self.peer = peer
        self._in = bytearray()
        self._preface_seen = False
        self._decoder = HeaderDecoder(MAX_HEADER_BLOCK)
        self.streams: dict[int, Stream] = {}
        self._last_stream = 0
        self._continuing: Stream | None = None  # the stream whose header block is open
        self._continuing_end_stream = False
        self._send_window = f.DEFAULT_WINDOW
        self._initial_send_window = f.DEFAULT_WINDOW
        self._send_max_frame = f.DEFAULT_MAX_FRAME
        self._recv_unacked = 0
        self.out: list[bytes] = [
            f.settings(
                {
                    f.SETTINGS_MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                    f.SETTINGS_INITIAL_WINDOW_SIZE: RECV_WINDOW,
                    f.SETTINGS_MAX_FRAME_SIZE: MAX_FRAME_SIZE,
                    f.SETTINGS_ENABLE_PUSH: 0,
                }
            ),
            f.window_update(0, CONNECTION_WINDOW - f.DEFAULT_WINDOW),
        ]
        self.out_bytes = 0  # unsent bytes the loop holds for the socket (it keeps this count)
        self._blocked: dict[int, Stream] = {}  # answered streams with DATA waiting for windows
        self.goaway_sent = False
        self.peer_gone = False  # the client sent GOAWAY
        self.owner: Any = None  # the loop's record of this connection

    @property
    def last_stream(self) -> int:
        return self._last_stream

    # -- input --------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        buffer = self._in
        buffer += data
        offset = 0
        if not self._preface_seen:
            if len(buffer) < len(f.PREFACE):
                return
            if not buffer.startswith(f.PREFACE):
                raise ConnectionError_(f.PROTOCOL_ERROR, "not an HTTP/2 client preface")
            self._preface_seen = True
            offset = len(f.PREFACE)
        end = len(buffer)
        view = memoryview(buffer)
        try:
            while end - offset >= f.FRAME_HEADER:
                length = (buffer[offset] << 16) | (buffer[offset + 1] << 8) | buffer[offset + 2]
                if length > MAX_FRAME_SIZE:
                    raise ConnectionError_(f.FRAME_SIZE_ERROR, "frame larger than SETTINGS_MAX_FRAME_SIZE")
                if end - offset - f.FRAME_HEADER < length:
                    break
                kind = buffer[offset + 3]
                flags = buffer[offset + 4]
                stream_id = _U32.unpack_from(buffer, offset + 5)[0] & 0x7FFFFFFF
                start = offset + f.FRAME_HEADER
                offset = start + length
                self._frame(kind, flags, stream_id, view[start:offset])
        except ConnectionError_:
            self._in = bytearray()  # the connection ends: the traceback may still hold views of it
            raise
        view.release()
        del buffer[:offset]

    def _frame(self, kind: int, flags: int, stream_id: int, payload: memoryview) -> None:
        if self._continuing is not None and kind != f.CONTINUATION:
            raise ConnectionError_(f.PROTOCOL_ERROR, "header block interrupted")
        if kind == f.DATA:
            self._data(flags, stream_id, payload)
        elif kind == f.HEADERS:
            self._headers(flags, stream_id, payload)
        elif kind == f.CONTINUATION:
            self._continuation(flags, stream_id, payload)
        elif kind == f.WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == f.SETTINGS:
            self._settings(flags, stream_id, payload)
        elif kind == f.PING:
            if stream_id != 0:
                raise ConnectionError_(f.PROTOCOL_ERROR, "PING on a stream")
            if len(payload) != 8:
                raise ConnectionError_(f.FRAME_SIZE_ERROR, "PING payload is not 8 bytes")
            if not flags & f.ACK:  # keepalive: answered always (see loop.py)
                self.out.append(f.frame(f.PING, f.ACK, 0, bytes(payload)))
        elif kind == f.RST_STREAM:
            if stream_id == 0:
                raise ConnectionError_(f.PROTOCOL_ERROR, "RST_STREAM on stream 0")
            if len(payload) != 4:
                raise ConnectionError_(f.FRAME_SIZE_ERROR, "RST_STREAM payload is not 4 bytes")
            self._idle_check(stream_id)
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                stream.cancel()
                self._blocked.pop(stream_id, None)
        elif kind == f.PRIORITY:
            if stream_id == 0:
                raise ConnectionError_(f.PROTOCOL_ERROR, "PRIORITY on stream 0")
            if len(payload) != 5:
                raise ConnectionError_(f.FRAME_SIZE_ERROR, "PRIORITY payload is not 5 bytes")
        elif kind == f.GOAWAY:
            if stream_id != 0:
                raise ConnectionError_(f.PROTOCOL_ERROR, "GOAWAY on a stream")
            self.peer_gone = True
        elif kind == f.PUSH_PROMISE:
            raise ConnectionError_(f.PROTOCOL_ERROR, "a client cannot push")
        # Frames of unknown types are ignored (RFC 9113 section 4.1).

    def _idle_check(self, stream_id: int) -> None:
        if stream_id > self._last_stream:
            raise ConnectionError_(f.PROTOCOL_ERROR, "frame on an idle stream")

    def _unpad(self, flags: int, payload: memoryview) -> memoryview:
        if not flags & f.PADDED:
            return payload
        if len(payload) < 1 or payload[0] >= len(payload):
            raise ConnectionError_(f.PROTOCOL_ERROR, "padding longer than the frame")
        return payload[1 : len(payload) - payload[0]]

    def _data(self, flags: int, stream_id: int, payload: memoryview) -> None:
        if stream_id == 0:
            raise ConnectionError_(f.PROTOCOL_ERROR, "DATA on stream 0")
        self._recv_unacked += len(payload)  # padding counts against the windows too
        if self._recv_unacked > CONNECTION_WINDOW:
            raise ConnectionError_(f.FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        if self._recv_unacked >= CONNECTION_WINDOW // 2:
            self.out.append(f.window_update(0, self._recv_unacked))
            self._recv_unacked = 0
        stream = self.streams.get(stream_id)
        if stream is None or stream.recv_closed:
            self._idle_check(stream_id)
            if stream is not None:  # half-closed by the client: a stream error
                self._reset(stream, f.STREAM_CLOSED)
            return  # a stream we reset or finished: frames still in flight are dropped
        stream.recv_unacked += len(payload)
        if stream.recv_unacked > RECV_WINDOW:
            raise ConnectionError_(f.FLOW_CONTROL_ERROR, "DATA beyond the stream window")
        body = self._unpad(flags, payload)
        if not stream.refused:
            stream.body += body
        if flags & f.END_STREAM:
            self._end_of_request(stream)
            return
        if stream.recv_unacked >= RECV_WINDOW // 2:
            self.out.append(f.window_update(stream_id, stream.recv_unacked))
            stream.recv_unacked = 0
        if not stream.refused and self._too_large(stream.body):
            self._on_request(self, stream)  # unfinished and already too large: refused now

    def _headers(self, flags: int, stream_id: int, payload: memoryview) -> None:
        if stream_id == 0:
            raise ConnectionError_(f.PROTOCOL_ERROR, "HEADERS on stream 0")
        payload = self._unpad(flags, payload)
        if flags & f.PRIORITY_FLAG:
            if len(payload) < 5:
                raise ConnectionError_(f.FRAME_SIZE_ERROR, "HEADERS too short for its priority")
            payload = payload[5:]
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id <= self._last_stream:
                # Trailers of a stream already reset or answered: decoded (the table must stay
                # in step with the client's encoder) and dropped.
                stream = Stream(stream_id, 0)
                stream.cancelled = True
            else:
                if stream_id % 2 == 0:
                    raise ConnectionError_(f.PROTOCOL_ERROR, "a client stream id must be odd")
                self._last_stream = stream_id
                stream = Stream(stream_id, self._initial_send_window)
                if len(self.streams) >= MAX_CONCURRENT_STREAMS or self.goaway_sent:
                    stream.cancelled = True
                    self.out.append(f.rst_stream(stream_id, f.REFUSED_STREAM))
                else:
                    self.streams[stream_id] = stream
        elif stream.recv_closed:
            raise ConnectionError_(f.STREAM_CLOSED, "HEADERS on a half-closed stream")
        stream.block = bytes(payload)
        self._continuing = stream
        self._continuing_end_stream = bool(flags & f.END_STREAM)
        if flags & f.END_HEADERS:
            self._header_block_done()

    def _continuation(self, flags: int, stream_id: int, payload: memoryview) -> None:
        stream = self._continuing
        if stream is None or stream.id != stream_id:
            raise ConnectionError_(f.PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
        stream.block += payload
        if len(stream.block) > MAX_HEADER_BLOCK:
            raise ConnectionError_(f.ENHANCE_YOUR_CALM, "header block too large")
        if flags & f.END_HEADERS:
            self._header_block_done()

    def _header_block_done(self) -> None:
        stream = self._continuing
        assert stream is not None
        self._continuing = None
        try:
            head = self._decoder.decode(stream.block)
        except HPACKError as exc:
            raise ConnectionError_(f.COMPRESSION_ERROR, f"header block: {exc}") from exc
        except binascii.Error as exc:
            raise ConnectionError_(f.PROTOCOL_ERROR, f"a -bin header is not base64: {exc}") from exc
        stream.block = b""
        if stream.cancelled:
            return
        if stream.head is None:
            stream.head = head
        # (A second block is the request's trailers: gRPC requests carry none worth reading.)
        if self._continuing_end_stream:
            self._end_of_request(stream)

    def _end_of_request(self, stream: Stream) -> None:
        stream.recv_closed = True
        if not stream.refused:
            self._on_request(self, stream)

    def _too_large(self, body: bytearray) -> bool:
        """The body so far announces (or already holds) more than one message may carry."""
        if len(body) > self.max_message + 5:
            return True
        return len(body) >= 5 and _U32.unpack_from(body, 1)[0] > self.max_message

    def _window_update(self, stream_id: int, payload: memoryview) -> None:
        if len(payload) != 4:
            raise ConnectionError_(f.FRAME_SIZE_ERROR, "WINDOW_UPDATE payload is not 4 bytes")
        increment = _U32.unpack(payload)[0] & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                raise ConnectionError_(f.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > f.MAX_WINDOW:
                raise ConnectionError_(f.FLOW_CONTROL_ERROR, "connection window past 2^31-1")
            return
        self._idle_check(stream_id)
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if increment == 0:
            self._reset(stream, f.PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > f.MAX_WINDOW:
            self._reset(stream, f.FLOW_CONTROL_ERROR)

    def _settings(self, flags: int, stream_id: int, payload: memoryview) -> None:
        if stream_id != 0:
            raise ConnectionError_(f.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & f.ACK:
            if payload:
                raise ConnectionError_(f.FRAME_SIZE_ERROR, "SETTINGS ack with a payload")
            return
        if len(payload) % 6:
            raise ConnectionError_(f.FRAME_SIZE_ERROR, "SETTINGS payload not a multiple of 6")
        for index in range(0, len(payload), 6):
            key, value = _SETTING.unpack_from(payload, index)
            if key == f.SETTINGS_INITIAL_WINDOW_SIZE:
                if value > f.MAX_WINDOW:
                    raise ConnectionError_(f.FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE past 2^31-1")
                delta = value - self._initial_send_window
                self._initial_send_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
            elif key == f.SETTINGS_MAX_FRAME_SIZE:
                if not f.DEFAULT_MAX_FRAME <= value <= f.MAX_FRAME_LIMIT:
                    raise ConnectionError_(f.PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
                self._send_max_frame = value
            elif key == f.SETTINGS_ENABLE_PUSH and value > 1:
                raise ConnectionError_(f.PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH not 0 or 1")
            # The header table size only bounds an encoder's dynamic table: ours has none.
        self.out.append(f.frame(f.SETTINGS, f.ACK, 0))

    def _reset(self, stream: Stream, code: int) -> None:
        stream.cancelled = True
        self.streams.pop(stream.id, None)
        self._blocked.pop(stream.id, None)
        self.out.append(f.rst_stream(stream.id, code))

    # -- output -------------------------------------------------------------------------------
    def respond(self, stream: Stream, message: bytes | None, trailer_block: bytes) -> None:
        """Queue a call's answer: ``message`` (a gRPC-framed body, or None for a trailers-only
        answer) and the trailers. A stream the client reset gets nothing."""
        if stream.cancelled or stream.answered:
            return
        stream.answered = True
        if message is None:
            self.out.append(self._header_frames(stream.id, f.RESPONSE_HEADERS + trailer_block, f.END_STREAM))
            self._finished(stream)
            return
        self.out.append(self._header_frames(stream.id, f.RESPONSE_HEADERS, 0))
        stream.trailer = self._header_frames(stream.id, trailer_block, f.END_STREAM)
        stream.pending = memoryview(message)
        self._send_data(stream)
        if stream.pending is not None:
            self._blocked[stream.id] = stream

    def _header_frames(self, stream_id: int, block: bytes, flags: int) -> bytes:
        """A header block as one HEADERS frame, or, past the client's frame size (a long error
        message), HEADERS and CONTINUATIONs."""
        size = self._send_max_frame
        if len(block) <= size:
            return f.frame_head(f.HEADERS, flags | f.END_HEADERS, stream_id, len(block)) + block
        parts = [block[i : i + size] for i in range(0, len(block), size)]
        frames = [f.frame(f.HEADERS, flags, stream_id, parts[0])]
        frames += [f.frame(f.CONTINUATION, 0, stream_id, part) for part in parts[1:-1]]
        frames.append(f.frame(f.CONTINUATION, f.END_HEADERS, stream_id, parts[-1]))
        return b"".join(frames)

    def _send_data(self, stream: Stream) -> None:
        """As much of the stream's DATA as the windows (and the socket's backlog) allow."""
        pending = stream.pending
        assert pending is not None
        out = self.out
        sent = 0
        total = len(pending)
        while sent < total:
            room = min(self._send_window, stream.send_window, self._send_max_frame, total - sent)
            if room <= 0 or self.out_bytes > _OUT_HIGH:
                break
            out.append(f.frame_head(f.DATA, 0, stream.id, room))
            out.append(pending[sent : sent + room].tobytes() if sent or room < total else bytes(pending))
            self.out_bytes += room
            self._send_window -= room
            stream.send_window -= room
            sent += room
        if sent == total:
            stream.pending = None
            out.append(stream.trailer)
            stream.trailer = b""
            self._finished(stream)
        elif sent:
            stream.pending = pending[sent:]

    def _finished(self, stream: Stream) -> None:
        self._blocked.pop(stream.id, None)
        if stream.recv_closed:
            self.streams.pop(stream.id, None)
        else:  # answered before the client ended its side (e.g. refused): it need not go on
            stream.refused = True
            self.out.append(f.rst_stream(stream.id, f.NO_ERROR))
            self.streams.pop(stream.id, None)

    def send_blocked(self) -> None:
        """After window updates or a drained socket: move waiting DATA out."""
        for stream in list(self._blocked.values()):
            if self._send_window <= 0 or self.out_bytes > _OUT_HIGH:
                return
            self._send_data(stream)

    @property
    def has_blocked(self) -> bool:
        return bool(self._blocked)

    def goaway(self, code: int = f.NO_ERROR, debug: bytes = b"") -> None:
        if not self.goaway_sent:
            self.goaway_sent = True
            self.out.append(f.goaway(self._last_stream, code, debug))
