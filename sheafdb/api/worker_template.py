"""The template process the query workers of ``serve --workers N`` are forked from.

A worker started as a fresh interpreter costs ~60 MB of its own: Python, grpc, faiss, pyarrow
and the engine imported again. Forked instead from a process that already imported them, it
shares those pages copy-on-write with the template, and PSS splits them among the processes.

The primary cannot fork itself once it serves: grpcio's threads (and the engine's) would be
copied mid-work into a child that has none of them. So ``WorkerTemplate.start`` runs before
anything starts a thread: it imports what a worker runs, calls ``gc.freeze()`` (the cyclic
collector then never writes into those objects, which would copy their pages), and forks the
template, which shares the primary's own pages too. ("No thread" means none of Python's;
numpy's BLAS pool and Arrow's allocator thread exist from their import on and have fork
handlers.) In a process that already has threads (an embedding program, or a new template
after the first one died), the template is a fresh interpreter instead (``python -m
sheafdb.api.worker_template``): workers still share its pages, not the primary's.

What each worker still holds of its own (~15 MiB at 20k rows, measured): mostly pages of the
template's that it touched, differing in a few bytes (reference counts, the allocator's free
lists: CPython 3.11 writes those on every use of an object); ~2.5 MiB are new mappings (its
threads' stacks, allocator arenas). The loaded segments are the mapped files (faiss indexes
with IO_FLAG_MMAP_IFC), shared.

Protocol, over one SOCK_SEQPACKET pair (the control socket): the primary sends a worker's
arguments (JSON) with its handoff socket attached (SCM_RIGHTS); the template forks twice (the
middle process exits at once) and answers ``pid N``. The primary is a child subreaper
(PR_SET_CHILD_SUBREAPER), so the orphaned worker becomes the primary's own child: the primary
sees its death and reaps it as with any child (``WorkerProcess``), and the template holds no
state about it. The template keeps no descriptor of the primary's but its control socket, and
a worker none of the template's but its own handoff socket. When the control socket closes
(``stop``, or the primary died, even by SIGKILL) the template exits; workers end on their own
handoff socket's end, as before.

The template is one thread waiting on the control socket; it serves no request.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import NoReturn

log = logging.getLogger("sheafdb.workers")

# A worker's arguments (a few hundred bytes: paths and numbers).
_MAX_REQUEST = 1 << 16
# How long the primary waits for the template to answer a fork.
_SPAWN_TIMEOUT_S = 30.0
_PR_SET_CHILD_SUBREAPER = 36
# Shown by ps for a worker: the command that starts the same worker as a fresh interpreter.
WORKER_COMMAND = "-m sheafdb.api.query_worker_entry"


def _preload() -> None:
    """Everything a worker runs, imported so the workers share it (and ``gc.freeze``)."""
    # What else a worker imports on its first calls (grpc's server and channel, the log
    # files, the masked arrays pyarrow checks for): imported once here, not in each worker.
    import grpc._channel  # noqa: F401
    import grpc._server  # noqa: F401
    import numpy.ma  # noqa: F401
    import setproctitle  # noqa: F401 - every worker names itself with it

    import sheafdb.api.query_worker  # noqa: F401 - grpc, the follower, the engine, faiss, pyarrow
    import sheafdb.storage.file_logs  # noqa: F401

    gc.freeze()


class WorkerProcess:
    """A child of the primary (a worker, or the template), reaped by pid as Popen would."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)  # readable once the process has ended

    def poll(self) -> int | None:
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
                os.close(self._pidfd)
        return self.returncode

    def wait(self, timeout_s: float) -> int | None:
        """Its exit code, or None when it still runs after ``timeout_s``."""
        if self.returncode is None:
            select.select([self._pidfd], [], [], max(0.0, timeout_s))
        return self.poll()

    def kill(self) -> None:
        if self.poll() is None:  # not reaped yet, so the pid is still this process's
            os.kill(self.pid, signal.SIGKILL)
            self.wait(_SPAWN_TIMEOUT_S)


class WorkerTemplate:
    """The primary's side: start the template, ask it for workers, stop it."""

    def __init__(self, control: socket.socket, process: WorkerProcess) -> None:
        self._control = control
        self.process = process
        self._lock = threading.Lock()

    @classmethod
    def start(cls) -> WorkerTemplate:
        _become_subreaper()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        forked = threading.active_count() == 1
        if forked:
            _preload()
            pid = os.fork()
            if pid == 0:
                ours.close()
                _serve(theirs)
        else:
            os.set_inheritable(theirs.fileno(), True)
            command = [sys.executable, "-m", "sheafdb.api.worker_template", str(theirs.fileno())]
            pid = os.posix_spawn(sys.executable, command, os.environ)
        theirs.close()
        ours.settimeout(_SPAWN_TIMEOUT_S)
        how = "forked from this process" if forked else "a fresh interpreter"
        log.info("query worker template started (pid %d, %s)", pid, how)
        return cls(ours, WorkerProcess(pid))

    def spawn(self, arguments: Sequence[str], handoff: socket.socket) -> WorkerProcess:
        """A worker running ``query_worker.main(arguments + ["--handoff-fd", <its fd>])``, our
        child. ConnectionError: the template is gone; OSError: it could not fork."""
        with self._lock:
            socket.send_fds(self._control, [json.dumps(list(arguments)).encode()], [handoff.fileno()])
            answer = self._control.recv(_MAX_REQUEST)
        if not answer:
            raise ConnectionError("the worker template is gone")
        if not answer.startswith(b"pid "):
            raise OSError(f"the worker template could not start a worker: {answer.decode(errors='replace')}")
        return WorkerProcess(int(answer[4:]))

    def close(self) -> None:
        """Close the control socket: the template exits (its workers live on)."""
        self._control.close()

    def stop(self, timeout_s: float) -> None:
        """``close``, and wait for the template's end; kill it past ``timeout_s``."""
        self.close()
        if self.process.wait(timeout_s) is None:
            self.process.kill()


def _become_subreaper() -> None:
    """Orphaned descendants (the workers, once the template's middle process exits) become
    this process's children."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _serve(control: socket.socket) -> NoReturn:
    """The template's life: fork a worker per request until the control socket closes."""
    # Nothing of the primary's: its descriptors (closed; nothing here uses their objects)
    # and its signal handlers (Ctrl-C reaches the whole group: the primary decides).
    os.closerange(3, control.fileno())
    os.closerange(control.fileno() + 1, os.sysconf("SC_OPEN_MAX"))
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        try:
            request, fds, _flags, _addr = socket.recv_fds(control, _MAX_REQUEST, 1)
        except OSError:
            os._exit(0)
        if not request:
            os._exit(0)  # the primary closed its end, or died
        try:
            answer = b"pid %d" % _fork_worker(control, json.loads(request), fds[0])
        except (OSError, ValueError, IndexError) as exc:
            answer = f"error {exc}".encode()
        finally:
            for fd in fds:
                os.close(fd)
        try:
            control.sendall(answer)
        except OSError:
            os._exit(0)


def _fork_worker(control: socket.socket, arguments: list[str], handoff_fd: int) -> int:
    """Fork twice: the worker's pid (its parent already exited: it is the primary's child now)."""
    reader, writer = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            control.close()
            os.close(reader)
            worker = os.fork()
            if worker == 0:
                os.close(writer)
                _run_worker([*arguments, "--handoff-fd", str(handoff_fd)])
            os.write(writer, str(worker).encode())
        finally:
            os._exit(0)
    os.close(writer)
    try:
        said = os.read(reader, 32)
    finally:
        os.close(reader)
        os.waitpid(middle, 0)
    if not said:
        raise OSError("fork failed")
    return int(said)


def _run_worker(arguments: list[str]) -> NoReturn:
    import setproctitle

    from sheafdb.api.query_worker import main

    signal.signal(signal.SIGINT, signal.default_int_handler)
    setproctitle.setproctitle(" ".join([sys.executable, WORKER_COMMAND, *arguments]))
    code = 1
    try:
        code = main(arguments)
    except BaseException:  # noqa: BLE001 - the worker's end: say why, never return to the template
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    from sheafdb.api.client_libraries import keep_client_libraries_out

    keep_client_libraries_out()
    _preload()
    _serve(socket.socket(fileno=int(sys.argv[1])))
