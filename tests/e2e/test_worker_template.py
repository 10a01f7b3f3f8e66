"""``serve --workers N`` forks its query workers from a template process (api/worker_template.py):
observed from outside, on the real server: the workers share the template's interpreter pages,
a killed worker comes back from the same template (from a new one when the template itself was
killed), and a SIGKILLed primary leaves neither template nor worker behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from pymilvus import MilvusClient

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready

WORKERS = 2
WAIT_S = 60.0
MIB = 1 << 20
# Interpreter pages a worker shares with the template (anonymous, so never shared between two
# fresh interpreters: a worker started with subprocess shows almost none). Measured ~60 MB.
SHARED_AT_LEAST = 24 * MIB


class Served:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = root / "server.log"
        self.popen = start_server(root / "data", self.port, self.log, extra=("--workers", str(WORKERS)))
        wait_ready(self.popen, self.log)
        self.process = psutil.Process(self.popen.pid)

    def workers(self) -> list[psutil.Process]:
        return [p for p in _children(self.process) if "sheafdb.api.query_worker_entry" in _command(p)]

    def template(self) -> psutil.Process:
        """The one other child: forked from the primary, its command line is the primary's."""
        (template,) = [p for p in _children(self.process) if p not in self.workers()]
        return template

    def search_through_every_worker(self) -> None:
        clients = [
            MilvusClient(
                uri=f"http://127.0.0.1:{self.port}",
                token=ROOT_TOKEN,
                dedicated=True,
                grpc_options={"grpc.use_local_subchannel_pool": 1},
            )
            for _ in range(2 * WORKERS)  # connections are handed to the workers in turn
        ]
        if not clients[0].has_collection("c"):
            clients[0].create_collection("c", dimension=4)
            clients[0].insert("c", [{"id": i, "vector": [float(i), 0.0, 0.0, 1.0]} for i in range(10)])
        for client in clients:
            assert len(client.search("c", [[1.0, 0.0, 0.0, 1.0]], limit=3)[0]) == 3
            client.close()


def _children(process: psutil.Process) -> list[psutil.Process]:
    """The live children (a killed one not yet reaped, or gone meanwhile, left out)."""
    return [p for p in process.children() if _running(p)]


def _command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _rollup(pid: int) -> dict[str, int]:
    """/proc/PID/smaps_rollup in bytes."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) * 1024
    return fields


def _descriptors(pid: int) -> list[str]:
    """What each of the process's descriptors past stdin, stdout and stderr points to."""
    fds = Path(f"/proc/{pid}/fd")
    return [os.readlink(fd) for fd in fds.iterdir() if int(fd.name) > 2]


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = Served(tmp_path_factory.mktemp("template"))
    yield served
    stop_server(served.popen)


def test_workers_share_the_templates_interpreter_pages(served: Served) -> None:
    served.search_through_every_worker()  # each worker has served (its own state built)
    workers = served.workers()
    assert len(workers) == WORKERS
    for worker in workers:
        memory = _rollup(worker.pid)
        assert memory["Shared_Dirty"] >= SHARED_AT_LEAST, memory
        assert memory["Private_Dirty"] < memory["Shared_Dirty"], memory
    # The template serves nothing: almost all it holds, it shares.
    template = _rollup(served.template().pid)
    assert template["Private_Dirty"] < template["Shared_Dirty"], template


def test_the_template_and_the_workers_keep_no_descriptor_of_the_primarys(served: Served) -> None:
    # The primary holds its data dir's lock and its own sockets; the template only its control socket.
    assert any(link.endswith("sheafdb.lock") for link in _descriptors(served.process.pid))
    (control,) = _descriptors(served.template().pid)
    assert control.startswith("socket:")
    for worker in served.workers():
        assert not any(link.endswith("sheafdb.lock") for link in _descriptors(worker.pid))


def test_a_killed_worker_comes_back_from_the_same_template(served: Served) -> None:
    template = served.template().pid
    killed = served.workers()[0].pid
    os.kill(killed, signal.SIGKILL)
    wait_for(
        "a new worker", lambda: killed not in [w.pid for w in served.workers()] and len(served.workers()) == 2
    )
    served.search_through_every_worker()
    assert served.template().pid == template
    for worker in served.workers():
        assert _rollup(worker.pid)["Shared_Dirty"] >= SHARED_AT_LEAST


@pytest.mark.slow
def test_a_killed_template_is_replaced_and_workers_still_come_back(tmp_path: Path) -> None:
    served = Served(tmp_path)
    try:
        old = served.template().pid
        os.kill(old, signal.SIGKILL)
        killed = served.workers()[0].pid
        os.kill(killed, signal.SIGKILL)  # its restart needs a template
        wait_for(
            "a new template and worker",
            lambda: killed not in [w.pid for w in served.workers()] and len(served.workers()) == 2,
        )
        new = served.template()
        assert new.pid != old
        # This one is a fresh interpreter (the primary has threads now): its workers share its pages.
        assert "sheafdb.api.worker_template" in _command(new)
        served.search_through_every_worker()
        for worker in served.workers():
            assert _rollup(worker.pid)["Shared_Dirty"] >= SHARED_AT_LEAST
    finally:
        stop_server(served.popen)
    assert "query worker template ended" in served.log.read_text()


@pytest.mark.slow
def test_a_sigkilled_primary_leaves_no_template_or_worker_behind(tmp_path: Path) -> None:
    served = Served(tmp_path)
    served.search_through_every_worker()
    left = [served.template(), *served.workers()]
    assert len(left) == 1 + WORKERS
    served.popen.send_signal(signal.SIGKILL)
    served.popen.wait()
    # They are not our children: wait for each to go (init reaps them).
    wait_for("the template and the workers exit", lambda: not any(_running(p) for p in left))


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_stop_ends_the_template_too(tmp_path: Path) -> None:
    served = Served(tmp_path)
    every = [served.template(), *served.workers()]
    assert stop_server(served.popen) == 0
    gone, alive = psutil.wait_procs(every, timeout=WAIT_S)
    assert not alive
