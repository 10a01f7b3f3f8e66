"""The relay threads on their own: real sockets to a raw unix-socket backend (no gRPC)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sheafdb.api.relay import Relays

BackendHandler = Callable[[socket.socket], None]


class RawBackend:
    """A unix-socket server running ``handler`` on each accepted connection, in a thread."""

    def __init__(self, path: Path, handler: BackendHandler) -> None:
        self.target = f"unix:{path}"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(8)
        self._handler = handler
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # the listener closed
            while True:
                connection, _ = self._listener.accept()
                threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            self._handler(connection)

    def close(self) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)


@pytest.fixture
def relays() -> Iterator[Relays]:
    running = Relays()
    yield running
    running.close(timeout_s=5)


def relay_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sheafdb-relay")]


def receive_all(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(1 << 20):
        data += chunk
    return bytes(data)


def test_first_bytes_then_both_directions_and_half_close(tmp_path: Path, relays: Relays) -> None:
    """The backend gets the replayed head, then the rest; after the client's half-close it still
    answers, and its own close ends the client's stream."""

    def echo_upper(connection: socket.socket) -> None:
        connection.sendall(receive_all(connection).upper())

    backend = RawBackend(tmp_path / "b.sock", echo_upper)
    client, front_side = socket.socketpair()
    with client:
        relays.start(front_side, backend.target, b"head-")
        client.sendall(b"and the rest")
        client.shutdown(socket.SHUT_WR)
        assert receive_all(client) == b"HEAD-AND THE REST"
    backend.close()


def test_an_unreachable_backend_closes_the_client(tmp_path: Path, relays: Relays) -> None:
    client, front_side = socket.socketpair()
    with client:
        relays.start(front_side, f"unix:{tmp_path}/nobody.sock", b"PRI")
        client.settimeout(10)
        assert client.recv(10) == b""


def test_a_slow_reader_holds_the_backend_back(tmp_path: Path, relays: Relays) -> None:
    """The backend writes far more than the client reads: it must stall once the socket
    buffers and one relay buffer are full (no unbounded buffering), then everything it wrote
    arrives intact once the client reads."""
    offered = 256 * 1024 * 1024
    written = threading.Event()
    sent_before_stall: list[int] = []

    def flood(connection: socket.socket) -> None:
        connection.setblocking(False)
        chunk = memoryview(bytes(range(256)) * 4096)  # 1 MiB of a recognisable pattern
        total = 0
        while total < offered:
            # Stalled: not writable for a whole second while nobody reads the other end.
            if not select.select([], [connection], [], 1.0)[1]:
                break
            try:
                total += connection.send(chunk[total % len(chunk) :])
            except BlockingIOError:
                continue
        sent_before_stall.append(total)
        written.set()
        connection.setblocking(True)
        connection.shutdown(socket.SHUT_WR)
        # Keep the connection open until the client has read everything.
        connection.recv(1)

    backend = RawBackend(tmp_path / "b.sock", flood)
    client, front_side = socket.socketpair()
    with client:
        relays.start(front_side, backend.target, b"")
        assert written.wait(60)
        assert sent_before_stall[0] < 64 * 1024 * 1024
        received = receive_all(client)
    assert len(received) == sent_before_stall[0]
    assert received == (bytes(range(256)) * (len(received) // 256 + 1))[: len(received)]
    backend.close()


def test_closing_ends_open_connections_and_their_threads(tmp_path: Path) -> None:
    backend = RawBackend(tmp_path / "b.sock", lambda connection: connection.recv(1))
    relays = Relays()
    clients = []
    for _ in range(3):
        client, front_side = socket.socketpair()
        clients.append(client)
        relays.start(front_side, backend.target, b"x")
    relays.close(timeout_s=5)
    assert relay_threads() == []
    for client in clients:
        client.settimeout(10)
        assert client.recv(10) == b""
        client.close()
    # A connection offered after closing is refused (closed at once).
    late, front_side = socket.socketpair()
    with late:
        relays.start(front_side, backend.target, b"x")
        late.settimeout(10)
        assert late.recv(10) == b""
    backend.close()


def test_a_tcp_backend_connects_in_the_background(relays: Relays) -> None:
    """A host:port backend: its connect completes in the relay's loop, then bytes flow."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(receive_all(connection)[::-1])

    server = threading.Thread(target=answer, daemon=True)
    server.start()
    client, front_side = socket.socketpair()
    with client:
        relays.start(front_side, f"127.0.0.1:{port}", b"abc")
        client.sendall(b"def")
        client.shutdown(socket.SHUT_WR)
        assert receive_all(client) == b"fedcba"
    server.join(10)
    listener.close()


def test_a_refused_tcp_backend_closes_the_client(relays: Relays) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client, front_side = socket.socketpair()
    with client:
        relays.start(front_side, f"127.0.0.1:{port}", b"PRI")
        client.settimeout(10)
        assert client.recv(10) == b""


def test_a_held_back_side_is_read_again_and_round_trips_go_on(tmp_path: Path, relays: Relays) -> None:
    """The client uploads more than the buffers hold to a backend that reads slowly (the relay
    stops reading the client while bytes for the backend are pending), then the two exchange
    many small messages: each side is watched again once its peer drained, every round trip
    answers (the relay only touches epoll when what it waits for changes)."""
    upload = 32 * 1024 * 1024
    rounds = 300

    def slow_then_echo(connection: socket.socket) -> None:
        received = 0
        while received < upload:
            chunk = connection.recv(64 * 1024)
            assert chunk
            received += len(chunk)
            if received < 4 * 1024 * 1024:
                threading.Event().wait(0.001)  # slow at first: the relay must hold the client back
        connection.sendall(b"uploaded")
        for _ in range(rounds):
            message = connection.recv(64)
            connection.sendall(message.upper())

    backend = RawBackend(tmp_path / "b.sock", slow_then_echo)
    client, front_side = socket.socketpair()
    with client:
        client.settimeout(60)
        relays.start(front_side, backend.target, b"")
        client.sendall(bytes(upload))
        assert client.recv(8) == b"uploaded"
        for i in range(rounds):
            client.sendall(b"ping %d" % i)
            assert client.recv(64) == b"PING %d" % i
    backend.close()
