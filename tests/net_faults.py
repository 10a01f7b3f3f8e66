"""Network faults for the tests, made with real sockets: a TCP relay between a client and a
server (PostgreSQL) that cuts, loses answers or goes silent on demand."""

from __future__ import annotations

import socket
import threading


class Relay:
    """A TCP relay to ``target`` ("host", port) that can fail like a network: ``cut`` closes
    every connection; ``lose_next_reply`` lets the server's next answer vanish and closes
    that client's side (the server ran the statement; the client never hears of it);
    ``lose_reply`` does so for one chosen answer (to a chosen request) on one connection;
    ``freeze`` swallows every byte from then on, closing nothing (a silent partition)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._lose_reply = threading.Event()
        # (request, answer): on the first connection to send ``request``, lose ``answer``.
        self._chosen: tuple[bytes, bytes] | None = None
        self._frozen = threading.Event()
        # Chunks the clients sent: one per round trip while a client waits for each answer
        # (a statement, or a pipelined batch, goes out in one write).
        self.sends = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, server]
            armed: list[bytes] = []  # the answer this connection is to lose, once chosen
            threading.Thread(target=self._pump, args=(client, server, False, armed), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True, armed), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool, armed: list[bytes]) -> None:
        try:
            while data := source.recv(65536):
                if self._frozen.is_set():
                    continue
                if not replies:
                    with self._lock:
                        self.sends += 1
                        if self._chosen is not None and self._chosen[0] in data:
                            armed.append(self._chosen[1])
                            self._chosen = None
                if replies and (self._lose_reply.is_set() or (armed and armed[0] in data)):
                    self._lose_reply.clear()
                    # The client's side only; the server's stays open, its session idle.
                    sink.shutdown(socket.SHUT_RDWR)
                    return
                sink.sendall(data)
        except OSError:
            return

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def lose_next_reply(self) -> None:
        self._lose_reply.set()

    def lose_reply(self, request: bytes, answer: bytes) -> None:
        """On the next connection to send a request containing ``request``, lose the first
        answer from then on that contains ``answer`` (as ``lose_next_reply``)."""
        with self._lock:
            self._chosen = (request, answer)

    def freeze(self) -> None:
        self._frozen.set()

    def close(self) -> None:
        self._listener.close()
        self.cut()
