"""What every serving process shares: the life cycle ``cli.run_until_signalled`` drives.

Three kinds of process serve Milvus's protocols on one port: the server (server.py: embedded,
or a cluster's writer), the cluster's proxy and its shard writers (api/cluster/). Each starts
its parts and then listens through a front (front.py: gRPC and REST on the port); ``wait``
blocks until ``stop``, which runs at most once and releases the parts in the order the
subclass's ``_release`` gives; ``stepped_down`` is set by a process that lost a lease it needs
(the serve loop then leaves with exit code 3).

Locks: ``_lock`` makes ``stop`` run once.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

from sheafdb.api.front import FrontThread, ProtocolFront

log = logging.getLogger("sheafdb.server")


class StartupError(Exception):
    """The process cannot start (port taken, data dir unusable); the message says why."""


class ServingProcess(ABC):
    # Names the process in its "... stopped" line.
    label = "SheafDB"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port  # the one asked for; the bound one once listening (0: any free port)
        self._front: FrontThread | None = None
        self.stepped_down = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def _release(self) -> None:
        """Stop every part that started, each before what it calls into (also after a failed
        start: only what was set is released)."""

    def cancel_standby(self) -> None:  # noqa: B027 - a hook: only server.Server's writer waits
        """A stop asked while ``start`` waits as a standby. Nothing to cancel unless the
        process can wait as one (server.Server's writer)."""

    def wait(self) -> None:
        self._stopped.wait()

    def stop(self) -> None:
        """Refuse new calls, let in-flight ones finish (up to the grace), release the parts."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._release()
            self._stopped.set()
            log.info("%s stopped", self.label)

    def _listen(self, front: ProtocolFront) -> None:
        """Serve ``front`` on the process's port (the last step of a start)."""
        self._front = FrontThread(front, self.host, self.port)
        try:
            self.port = self._front.start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from exc

    def _stop_front(self) -> None:
        if self._front is not None:
            self._front.stop()
            self._front = None
