"""Who is the cluster's writer: an election on the catalog's lease row, with fencing.

Why: with the catalog and the log in PostgreSQL and the segments in S3, any machine can run
the writer, and a second ``sheafdb serve`` on the same backends must neither write beside
the first (two writers would hand out the same lsns and ids) nor sit idle when the first
dies. So every writer process contends for one lease (lease_rows.py, name ``"writer"``):
the holder writes, the others wait as standbys and take over once the holder stops renewing
(killed, paused, cut off) and its lease expires. A takeover bumps the fencing token, and the
new writer recovers from the catalog and the log only after that, so it sees every append
the old one committed; the old one's next append or catalog write carries the old token and
is refused (pg_log.py, sql_catalog.py), so a paused writer that wakes up cannot write what
the new one would not see. A holder that fails to renew its lease before it expires, or
finds it taken, sets ``lost``: the server stops serving and exits (a supervisor restarts it
as a standby).

Fail-stop (as Milvus's coordinators exit when their etcd session is gone): a store that lost
the answer to a commit of this writer's (a catalog write, a log append found committed
unacknowledged) calls ``step_down``. The writer's memory may then differ from PostgreSQL, and
only a recovery from PostgreSQL knows the truth, so it resigns the lease (token + 1: its own
later writes are refused; expired: a standby takes over at once) and leaves by the same path
as a deposed writer (``lost``, exit code 3).

This lease makes the coordinator (DDL, the catalog, seals, placement). In cluster mode the
appends to a collection's log are fenced by that collection's own lease instead
(``log/<collection id>``, engine/write/log_ownership.py).

Threads: ``sheafdb-writer-lease`` renews the lease every ``ttl_s / 4`` while it is held.
``lease`` is replaced (never mutated) by that thread; readers see the old or the new one.
``sheafdb-writer-lease-watch`` steps down once the lease held has expired unrenewed, even
while a renewal hangs (a network that neither answers nor resets: a renewal then waits on its
connection for as long as TCP does). ``sheafdb-writer-step-down`` resigns the lease after a
fail-stop, off the thread of the write that failed, running the resignation itself on
``sheafdb-writer-resign`` (so a hanging one is waited for at most a ttl). ``_lose_lock`` makes
the step-down happen once.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

from sheafdb.errors import CommitOutcomeUnknown
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.lease_rows import WRITER_LEASE, Lease

log = logging.getLogger("sheafdb.writer")

DEFAULT_LEASE_TTL_S = 5.0


def advertised_address(host: str, port: int) -> str:
    """The "host:port" others reach this server at: a wildcard bind names this machine."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"{host}:{port}"


class WriterElection:
    """Contends for the lease ``name`` as ``holder`` ("host:port", where proxies relay writes).

    ``catalog`` is the election's own (not the engine's): renewals never queue behind the
    engine's catalog transactions. It is closed by ``close``.
    """

    def __init__(
        self,
        catalog: Catalog,
        holder: str,
        *,
        name: str = WRITER_LEASE,
        ttl_s: float = DEFAULT_LEASE_TTL_S,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self._catalog = catalog
        self.holder = holder
        self.name = name
        self.ttl_s = ttl_s
        self.lease: Lease | None = None
        self.lost = threading.Event()
        self._on_lost = on_lost
        self._closing = threading.Event()
        self._renewer: threading.Thread | None = None
        self._resigner: threading.Thread | None = None
        self._lose_lock = threading.Lock()

    def wait_until_leader(self, cancel: threading.Event | None = None) -> Lease | None:
        """Block until this process holds the lease and return it (renewed from then on);
        None when ``cancel`` was set first (the process is stopping as a standby)."""
        announced: tuple[str, int] | None = None
        while not (cancel is not None and cancel.is_set()) and not self._closing.is_set():
            lease = self._catalog.try_acquire_lease(self.name, self.holder, self.ttl_s)
            if lease is not None:
                self.lease = lease
                log.info("holding the %s lease (token %d): serving as the writer", self.name, lease.token)
                self._renewer = threading.Thread(target=self._renew, name="sheafdb-writer-lease", daemon=True)
                self._renewer.start()
                threading.Thread(target=self._watch, name="sheafdb-writer-lease-watch", daemon=True).start()
                return lease
            current = self._catalog.current_lease(self.name)
            if current is not None and (current.holder, current.token) != announced:
                announced = (current.holder, current.token)
                log.info(
                    "standby: %s holds the %s lease (token %d); waiting to take over",
                    current.holder,
                    self.name,
                    current.token,
                )
            wait_s = self.ttl_s / 4
            if current is not None:
                wait_s = min(wait_s, max(0.05, current.expires_at - time.time()))
            (cancel or self._closing).wait(wait_s)
        return None

    def _renew(self) -> None:
        while not self._closing.wait(self.ttl_s / 4) and not self.lost.is_set():
            held = self.lease
            assert held is not None
            try:
                renewed = self._catalog.renew_lease(held, self.ttl_s)
            except Exception as exc:  # noqa: BLE001 - the database may be back before the lease ends
                log.warning("could not renew the %s lease: %s", self.name, exc)
                if time.time() < held.expires_at:
                    continue
                renewed = None
            if renewed is None:
                self._lose(held)
                return
            self.lease = renewed

    def _watch(self) -> None:
        while not self._closing.wait(self.ttl_s / 4) and not self.lost.is_set():
            held = self.lease
            assert held is not None
            if time.time() >= held.expires_at:
                self._lose(held)
                return

    def _lose(self, held: Lease) -> None:
        if not self._mark_lost():
            return
        log.error(
            "lost the %s lease (token %d): another writer may hold it; this one stops writing",
            self.name,
            held.token,
        )
        if self._on_lost is not None:
            self._on_lost()

    def _mark_lost(self) -> bool:
        """Set ``lost``; False if it was set already (the step-down is under way)."""
        with self._lose_lock:
            if self.lost.is_set():
                return False
            self.lost.set()
            return True

    def step_down(self, error: CommitOutcomeUnknown) -> None:
        """Fail-stop: a commit of this writer's went unanswered (``error``); resign the lease
        and leave as a deposed writer. Returns at once: the caller raises ``error``."""
        held = self.lease
        if held is None or not self._mark_lost():
            return
        log.error(
            "stepping down as the writer (%s lease, token %d): %s; a standby or a restart "
            "recovers the state from the catalog database",
            self.name,
            held.token,
            error.message,
        )
        # Not on the write's thread: the database may be as unreachable as it just was.
        name = "sheafdb-writer-step-down"
        threading.Thread(target=self._leave, args=(held,), name=name, daemon=True).start()

    def _leave(self, held: Lease) -> None:
        """Resign ``held`` (waiting at most a ttl: unrenewed, it expires by then), then go."""
        self._resigner = threading.Thread(
            target=self._resign, args=(held,), name="sheafdb-writer-resign", daemon=True
        )
        self._resigner.start()
        self._resigner.join(self.ttl_s)
        if self._resigner.is_alive():
            log.warning("giving up the %s lease hangs; it expires unrenewed", self.name)
        if self._on_lost is not None:
            self._on_lost()

    def _resign(self, held: Lease) -> None:
        try:
            self._catalog.resign_lease(held)
            log.info("gave up the %s lease (token %d) and fenced that token", self.name, held.token)
        except Exception as exc:  # noqa: BLE001 - it then expires by itself, unrenewed
            log.warning("could not give up the %s lease (it expires unrenewed): %s", self.name, exc)

    def close(self) -> None:
        """Stop renewing; a lease still held is given up at once (a standby takes over
        without waiting out the ttl). Call after the engine closed: nothing writes any more."""
        self._closing.set()
        renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(self.ttl_s)
            if renewer.is_alive():
                # A renewal hangs on a silent network, holding the catalog: the lease expires
                # by itself, and the connection goes with the process.
                log.warning("a renewal of the %s lease still hangs; not giving it up", self.name)
                return
        if self._resigner is not None and self._resigner.is_alive():
            return  # as a hanging renewal: it holds the catalog, and goes with the process
        if self.lease is not None and not self.lost.is_set():
            try:
                self._catalog.release_lease(self.lease)
            except Exception:  # noqa: BLE001 - it then expires by itself
                log.exception("could not give up the %s lease", self.name)
        self._catalog.close()
