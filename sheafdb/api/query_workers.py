"""The query worker processes of ``sheafdb serve --workers N``, seen from the primary.

The primary starts N worker processes (query_worker.py), forked from the worker template
(worker_template.py, handed in by the server, which forked it before any thread existed;
ours to stop), each with a handoff socket (one end of a SOCK_SEQPACKET pair; the worker gets
the other, its only descriptor from us). Each worker is the primary's child. The
front hands each accepted gRPC connection to the next ready worker in turn (``hand_off``:
the connected socket itself, sent with SCM_RIGHTS, plus the bytes the front read from it),
so no byte of that connection passes through the primary again. When no worker is ready
(starting, restarting) the front gives the connection to the primary's own wire server
(api/wire/), which serves every call: nothing is refused while a worker is down.

A supervisor thread (``sheafdb-workers``) notices a worker's death within ~0.1 s (its
process ended) and starts a new one from the same template (from a new template when that
one died); a worker is ready once it says so over its handoff
socket. Each worker also reports there every ~0.5 s the calls it served and the bytes its
memory ledger holds (worker_reports.py); the supervisor hands each report to ``on_report``
(and None when that worker is gone: its bytes leave the server's sum). ``stop`` closes the
handoff sockets (each worker then stops serving, letting its in-flight calls finish) and
waits for the processes, killing any that outlive the wait, then ends the template.

Locks: ``_lock`` guards the slots (process, socket, ready and ended flags) between the
front's loop thread (``hand_off``), the supervisor and ``stop``. ``on_report`` runs on the
supervisor thread (for a worker's end, under ``_lock``: it must not call back here).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sheafdb.api.query_worker import READY
from sheafdb.api.worker_reports import REPORT, WorkerReport
from sheafdb.api.worker_template import WorkerProcess, WorkerTemplate
from sheafdb.engine.follower import FollowerConfig

log = logging.getLogger("sheafdb.workers")

# How often the supervisor looks at the processes (death is seen within this).
_POLL_S = 0.1
# A worker that has not said it is ready after this long is killed and started again.
_START_TIMEOUT_S = 120.0
# Workers hold nothing to save: past this they are killed (the whole stop must fit in 2 s).
_STOP_WAIT_S = 1.0
# The largest message a worker sends (a report; SOCK_SEQPACKET delivers whole messages).
_MAX_MESSAGE = 1 << 20


@dataclass(eq=False)
class _Slot:
    index: int
    process: WorkerProcess | None = None
    handoff: socket.socket | None = None
    started_at: float = 0.0
    ready: bool = False
    ended: bool = False  # its handoff socket reached EOF (the worker is exiting)


class QueryWorkers:
    def __init__(
        self,
        backends: FollowerConfig,
        count: int,
        primary_target: str,
        template: WorkerTemplate,
        *,
        auth_enabled: bool,
        max_workers: int,
        max_message_bytes: int,
        memory_budget_bytes: int | None = None,
        on_report: Callable[[int, WorkerReport | None], None] | None = None,
    ) -> None:
        self._backends = backends
        """``memory_budget_bytes``: the whole server's (each worker's ledger is charged
        against it through the reports); ``on_report(index, report)`` gets each worker's
        reports on the supervisor thread, and None when that worker is gone."""
        self._memory_budget = memory_budget_bytes
        self._on_report = on_report
        self._primary_target = primary_target
        self._template = template  # ours from now on: ``stop`` ends it
        self._auth = auth_enabled
        self._max_workers = max_workers
        self._max_message_bytes = max_message_bytes
        self._slots = [_Slot(i) for i in range(count)]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._next = 0
        self._supervisor = threading.Thread(target=self._supervise, name="sheafdb-workers", daemon=True)

    def start(self, wait_ready_s: float = _START_TIMEOUT_S) -> None:
        """Start every worker and the supervisor; wait (bounded) until they are all ready."""
        with self._lock:
            for slot in self._slots:
                self._spawn(slot)
        self._supervisor.start()
        deadline = time.monotonic() + wait_ready_s
        while time.monotonic() < deadline and not all(s.ready for s in self._slots):
            time.sleep(0.02)

    # -- the front's side --------------------------------------------------------------------
    def hand_off(self, client: socket.socket, first_bytes: bytes) -> bool:
        """Give ``client`` to the next ready worker; False when none took it (the caller keeps
        it). The caller closes its own descriptor after a True."""
        with self._lock:
            ready = [s for s in self._slots if s.ready and s.handoff is not None]
            for step in range(len(ready)):
                slot = ready[(self._next + step) % len(ready)]
                assert slot.handoff is not None
                try:
                    socket.send_fds(slot.handoff, [first_bytes], [client.fileno()])
                except OSError:  # dead, or too busy to take it now (the socket is non-blocking)
                    continue
                self._next = (self._next + step + 1) % len(ready)
                return True
        return False

    # -- processes ---------------------------------------------------------------------------
    def _spawn(self, slot: _Slot) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        arguments = [
            "--data-dir",
            str(self._backends.data_dir),
            *(["--catalog", self._backends.catalog_url] if self._backends.catalog_url else []),
            *(["--objects", self._backends.objects_url] if self._backends.objects_url else []),
            *(
                ["--object-cache-bytes", str(self._backends.object_cache_bytes)]
                if self._backends.object_cache_bytes is not None
                else []
            ),
            "--primary",
            self._primary_target,
            "--max-workers",
            str(self._max_workers),
            "--max-message-bytes",
            str(self._max_message_bytes),
            *(["--auth"] if self._auth else []),
            *(["--memory-budget", str(self._memory_budget)] if self._memory_budget is not None else []),
        ]
        try:
            try:
                slot.process = self._template.spawn(arguments, theirs)
            except ConnectionError:
                # The template died: a new one (a fresh interpreter: this process has threads now).
                log.warning("the query worker template ended; starting it again")
                self._template.stop(0)
                self._template = WorkerTemplate.start()
                slot.process = self._template.spawn(arguments, theirs)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        slot.handoff = ours
        slot.started_at = time.monotonic()
        slot.ready = False
        slot.ended = False

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                watched = {s.handoff: s for s in self._slots if s.handoff is not None and not s.ended}
            if watched:
                readable, _, _ = select.select(list(watched), [], [], _POLL_S)
                for sock in readable:
                    self._receive(watched[sock], sock)
            else:
                self._stopping.wait(_POLL_S)
            with self._lock:
                if self._stopping.is_set():
                    return
                for slot in self._slots:
                    self._check(slot)

    def _receive(self, slot: _Slot, sock: socket.socket) -> None:
        """Every message waiting on a worker's handoff socket: ``ready``, or a report."""
        while True:
            try:
                said = sock.recv(_MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                said = b""
            if not said:
                with self._lock:
                    slot.ended = slot.handoff is sock or slot.ended
                return
            if said == READY:
                with self._lock:
                    if slot.handoff is sock:
                        slot.ready = True
                log.info(
                    "query worker %d (pid %d) ready", slot.index, slot.process.pid if slot.process else 0
                )
            elif said.startswith(REPORT) and self._on_report is not None:
                try:
                    report = WorkerReport.decode(said)
                except (ValueError, KeyError, TypeError):
                    log.warning("query worker %d sent an unreadable report", slot.index)
                    continue
                self._on_report(slot.index, report)

    def _check(self, slot: _Slot) -> None:
        """Under ``_lock``: start a worker again when it died, never became ready, or could not
        be started at the last try."""
        process = slot.process
        if process is not None:
            code = process.poll()
            late = not slot.ready and time.monotonic() - slot.started_at > _START_TIMEOUT_S
            if code is None and not late:
                return
            if late:
                process.kill()
            log.warning(
                "query worker %d (pid %d) %s; starting it again",
                slot.index,
                process.pid,
                "did not start in time" if late else f"ended with code {process.returncode}",
            )
            self._close_handoff(slot)
            slot.process = None
            if self._on_report is not None:
                self._on_report(slot.index, None)
        try:
            self._spawn(slot)
        except OSError as exc:  # tried again at the next look
            log.error("query worker %d could not be started: %s", slot.index, exc)

    def _close_handoff(self, slot: _Slot) -> None:
        if slot.handoff is not None:
            slot.handoff.close()
            slot.handoff = None
        slot.ready = False

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor.is_alive():
            self._supervisor.join(timeout=2)
        with self._lock:
            processes = [s.process for s in self._slots if s.process is not None]
            for slot in self._slots:
                self._close_handoff(slot)  # the worker's handoff loop ends: it stops
        self._template.close()  # and the template ends
        deadline = time.monotonic() + _STOP_WAIT_S
        for process in processes:
            if process.wait(deadline - time.monotonic()) is None:
                process.kill()
        self._template.stop(deadline - time.monotonic())
