"""Network faults for the tests, made with real sockets: a TCP relay between a client and a
server (PostgreSQL) that cuts, loses answers or goes silent on demand."""

from __future__ import annotations

import socket
import threading


class Relay:
    """A TCP relay to ``target`` ("host", port) that can fail like a network: ``cut`` closes
    every connection; ``lose_next_reply`` lets the server's next answer vanish and closes
    that client's side (the server ran the statement; the client never hears of it);
    ``freeze`` swallows every byte from then on, closing nothing (a silent partition)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._lose_reply = threading.Event()
        self._frozen = threading.Event()
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
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        try:
            while data := source.recv(65536):
                if self._frozen.is_set():
                    continue
                if replies and self._lose_reply.is_set():
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

    def freeze(self) -> None:
        self._frozen.set()

    def close(self) -> None:
        self._listener.close()
        self.cut()
