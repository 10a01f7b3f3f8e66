"""Scale-out, side by side in one run: ``serve --workers 1``, ``--workers 2`` and a 2-worker cluster.

Searches/s and p99 at 1, 4 and 16 concurrent clients, each client its own gRPC connection
sending the same pre-serialized nq=1 SearchRequest (k=10, ef=64, the reply left as bytes;
bench/workers.py's clients), against:

- ``sheafdb serve --workers 1``: one process;
- ``sheafdb serve --workers 2``: the primary and two query worker processes, same data dir;
- the cluster: a local Ray cluster of 2 nodes on 127.0.0.1 (``ray.cluster_utils.Cluster``),
  PostgreSQL and SeaweedFS started by scripts/services/, a writer (``serve --cluster ...
  --role writer``) whose query workers are Ray actors on the 2 nodes, and a proxy (``--role
  proxy``) the clients talk to; the collection loaded with ``--replicas`` replicas.

Then the fan-out's added latency at nq=1: one client in sequence, p50 / p99, through the
cluster's proxy against one process (``--workers 1``). The same collection (R x 128-d HNSW,
M=16, efConstruction 100, seeded vectors) is built once for the data dir and once through the
proxy. Each round serves ``--workers 1``, ``--workers 2``, then the cluster (which stays up),
so the machine's drifting load hits them alike; the tables hold the medians over rounds.

Usage: .venv/bin/python bench/scale_out.py [--rows N] [--seconds S] [--clients 1,4,16]
    [--rounds N] [--latency-calls N] [--replicas R] [--no-cluster] [--doc PATH | --no-doc]
The figures go into --doc (docs/benchmarks.md) as its ``scale-out`` section.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil
from grpc_latency import COLLECTION, SERVICE, percentiles, raw_requests
from harness.doc_sections import put_section
from memory_timeline import machine
from pymilvus import MilvusClient
from server_memory import free_port, start
from workers_clients import build, channel, run_clients, stop, wait_loaded

REPO = Path(__file__).resolve().parents[1]
SECTION = "scale-out"
SINGLE, TWO_WORKERS, CLUSTER = "--workers 1", "--workers 2", "cluster"
START_TIMEOUT_S = 300.0


@dataclass
class Results:
    """What one run measured: per (server, clients) a list over rounds of (searches/s, CPU us, p99 ms);
    per server a list over rounds of sequential (p50 us, p99 us)."""

    throughput: dict[tuple[str, int], list[tuple[float, float, float]]] = field(default_factory=dict)
    latency: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    cluster_note: str = ""  # why the cluster was not measured, or how far it got
    cluster_cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by role while measured
    load: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load average, start and end

    def drop(self, server: str) -> None:
        if server == CLUSTER:
            self.cluster_cpu.clear()
        self.latency.pop(server, None)
        for key in [key for key in self.throughput if key[0] == server]:
            del self.throughput[key]

    def add(
        self, server: str, port: int, payload: bytes, process: psutil.Process, args: argparse.Namespace
    ) -> None:
        """One round of ``server``: the sequential latency, then each concurrency."""
        with channel(port) as sequential:
            stub = sequential.unary_unary(SERVICE + "Search")
            p50, p99, _ = percentiles(lambda: stub(payload), args.latency_calls, process)
        self.latency.setdefault(server, []).append((p50, p99))
        for clients in args.clients:
            self.throughput.setdefault((server, clients), []).append(
                run_clients(port, payload, clients, args.seconds, process)
            )


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument(
        "--clients",
        type=lambda text: [int(c) for c in text.split(",")],
        default=[1, 4, 16],
        help="concurrent clients, comma-separated",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--latency-calls", type=int, default=1000, help="sequential searches per latency figure"
    )
    parser.add_argument("--replicas", type=int, default=2, help="the cluster's replica_number (1 or 2)")
    parser.add_argument("--no-cluster", action="store_true", help="measure the --workers servers only")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--no-doc", action="store_true", help="print the section, write no file")
    args = parser.parse_args(argv)
    if args.replicas not in (1, 2):
        parser.error("--replicas must be 1 or 2 (the cluster has 2 query workers)")
    if not args.clients or min(args.clients) < 1:
        parser.error("--clients takes positive counts")
    return args


# --- the cluster ------------------------------------------------------------------------------


def service(name: str, *args: str) -> str:
    """scripts/services/NAME ARGS..., its last line of output (a start prints its state dir)."""
    done = subprocess.run(
        [str(REPO / "scripts" / "services" / name), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/services/{name} {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


@contextmanager
def running_service(name: str) -> Iterator[Path]:
    service(name, "install")
    state = Path(service(name, "start"))
    try:
        yield state
    finally:
        service(name, "stop", str(state))


@contextmanager
def ray_cluster(nodes: int) -> Iterator[str]:
    """A local Ray cluster of ``nodes`` nodes of one CPU each (``ray.cluster_utils.Cluster``, as
    tests/cluster/conftest.py builds it: every socket on 127.0.0.1, no dashboard, its files in a
    short temporary dir); yields its GCS address, which ``--cluster`` takes as well as a
    ``ray://`` client address."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keeps Ray on loopback (scale-out.md §2)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "180")  # 30 s is short on a busy machine
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    for attempt in range(3):  # a raylet has 30 s to register (fixed in Ray): too short on a busy machine
        temp_dir = tempfile.mkdtemp(prefix="sheafdb-ray-", dir="/tmp")
        cluster = Cluster()
        try:
            cluster.add_node(**node, temp_dir=temp_dir)
            for _ in range(nodes - 1):
                cluster.add_node(**node)
            cluster.wait_for_nodes()
            break
        except Exception:
            cluster.shutdown()
            _stop_started_from(temp_dir)  # a node that failed to start is not in the cluster's list
            shutil.rmtree(temp_dir, ignore_errors=True)
            if attempt == 2:
                raise
    try:
        yield str(cluster.address)
    finally:
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop_started_from(temp_dir: str) -> None:
    """Kill, by PID, the processes this process started whose command line names ``temp_dir``."""
    for process in psutil.Process().children(recursive=True):
        if any(temp_dir in part for part in _cmdline(process)):
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass


def launch(command: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A ``sheafdb serve`` process, once its port accepts connections (its output in ``log``)."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(command[3:6])} exited during start: {log.read_text()[-800:]}")
        try:
            with channel(port) as probe:
                probe.unary_unary(SERVICE + "GetVersion")(b"", timeout=1)
            return process
        except Exception:  # not listening yet (grpc.RpcError) or closed under us
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"{' '.join(command[3:6])} did not start within {START_TIMEOUT_S:.0f} s")


class ServingProcesses(psutil.Process):
    """The proxy, whose "children" for workers.run_clients's CPU sum are the cluster's other
    processes on the read path: the writer, the query workers (Ray actor processes) and
    PostgreSQL (the workers check the log there before each read). Ray's own daemons (GCS,
    raylets) and the S3 server are not counted."""

    def __init__(self, proxy: int, writer: int, postgres: int) -> None:
        super().__init__(proxy)
        self._writer = psutil.Process(writer)
        self._postgres = psutil.Process(postgres)

    def children(self, recursive: bool = False) -> list[psutil.Process]:
        return [p for role, processes in self.by_role().items() if role != "proxy" for p in processes]

    def by_role(self) -> dict[str, list[psutil.Process]]:
        actors = [p for p in psutil.Process().children(recursive=True) if _is_actor(_cmdline(p))]
        return {
            "proxy": [self],
            "writer": [self._writer],
            "query workers": actors,
            "PostgreSQL": [self._postgres, *self._postgres.children()],
        }

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds (user + system) so far of each role's processes alive now."""
        return {role: sum(_cpu(p) for p in processes) for role, processes in self.by_role().items()}


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def _is_actor(cmdline: list[str]) -> bool:
    """A Ray worker process holding an actor: ``ray::ClassName`` (``ray::IDLE`` holds none; Ray's
    ``ray::DashboardAgent`` / ``ray::RuntimeEnvAgent`` are daemons)."""
    title = cmdline[0] if cmdline else ""
    return title.startswith("ray::") and title != "ray::IDLE" and not title.endswith("Agent")


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


@contextmanager
def cluster_under_test(args: argparse.Namespace, work: Path) -> Iterator[tuple[int, ServingProcesses]]:
    """PostgreSQL, SeaweedFS, 2 Ray nodes, a writer and a proxy, the collection built through
    the proxy and loaded with ``args.replicas`` replicas; yields the proxy's port and processes."""
    with ExitStack() as stack:
        pg = stack.enter_context(running_service("postgres"))
        s3 = stack.enter_context(running_service("s3"))
        ray_address = stack.enter_context(ray_cluster(2))
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": (s3 / "access_key").read_text().strip(),
            "AWS_SECRET_ACCESS_KEY": (s3 / "secret_key").read_text().strip(),
        }
        objects = (
            f"s3://sheafdb/scale-out?endpoint_override={(s3 / 'endpoint').read_text().strip()}"
            "&scheme=http&region=us-east-1&allow_bucket_creation=true"
        )
        common = [
            "--cluster",
            ray_address,
            "--catalog",
            (pg / "url").read_text().strip(),
            "--objects",
            objects,
        ]
        ports = {}
        processes = {}
        for role in ("writer", "proxy"):
            ports[role] = free_port()
            command = [sys.executable, "-m", "sheafdb", "serve", "--role", role, *common]
            command += ["--data-dir", str(work / role), "--port", str(ports[role])]
            processes[role] = launch(command, ports[role], env, work / f"{role}.log")
            stack.callback(stop, processes[role])
        client = MilvusClient(uri=f"http://127.0.0.1:{ports['proxy']}")
        try:
            build(client, args.rows)
            if args.replicas != 1:
                client.release_collection(COLLECTION)
                client.load_collection(COLLECTION, replica_number=args.replicas)
        finally:
            client.close()
        postgres = int((pg / "pid").read_text())
        yield ports["proxy"], ServingProcesses(processes["proxy"].pid, processes["writer"].pid, postgres)


# --- the report -------------------------------------------------------------------------------


def render(results: Results, args: argparse.Namespace, command: str, machine_line: str, when: str) -> str:
    """The benchmarks.md section: the command, the machine, the two tables."""
    servers = [SINGLE, TWO_WORKERS] + ([CLUSTER] if any(s == CLUSTER for s, _ in results.throughput) else [])
    lines = [
        "## Scale-out: `--workers` and the cluster on Ray",
        "",
        "Written by `bench/scale_out.py`: rerun it to replace this section (bench/run.py keeps it).",
        "",
        f"Command: `{command}`",
        "",
        f"Run on {when}, {machine_line}, at commit {commit()}; load average (1 min) "
        f"{results.load[0]:.2f} at the start, {results.load[1]:.2f} at the end. Shared with other work "
        "while it ran: compare the rows of one run.",
        "",
        f"One collection, {args.rows:,} x 128-d float32 (seeded), HNSW M=16 efConstruction 100, L2. "
        "Each client is a thread with its own gRPC connection sending the same pre-serialized nq=1 "
        f"SearchRequest (k=10, ef=64) for {args.seconds:g} s; medians over {args.rounds} round(s), "
        "the servers in turn in each round.",
        "",
        f"- `{SINGLE}`: `sheafdb serve --workers 1`, one process.",
        f"- `{TWO_WORKERS}`: `sheafdb serve --workers 2`, the primary and two query worker processes "
        "over one data dir.",
        f"- `{CLUSTER}`: a local Ray cluster of 2 nodes (one CPU each) on 127.0.0.1, PostgreSQL and "
        "SeaweedFS (scripts/services/), a writer (`serve --cluster HOST:PORT --role writer`, the Ray "
        "GCS address) whose query workers are Ray actors on the 2 nodes, and a proxy (`--role proxy`) "
        "the clients talk to; "
        f"loaded with replica_number={args.replicas} "
        + (
            "(each search goes to one replica: one worker)."
            if args.replicas == 2
            else "(each search fans out to the replica's workers)."
        ),
        "",
        "CPU per search is user + system of the serving processes: the server and its workers; "
        "for the cluster the proxy, the writer, the query-worker actors and PostgreSQL (not Ray's own "
        "daemons, not the S3 server).",
    ]
    if results.cluster_note:
        lines += ["", f"Cluster: {results.cluster_note}"]
    lines += [
        "",
        "| clients | server | searches/s | p99 (ms) | CPU per search (us) | searches/s vs `--workers 1` |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for clients in args.clients:
        base = statistics.median(r[0] for r in results.throughput[(SINGLE, clients)])
        for server in servers:
            qps, cpu, p99 = (
                statistics.median(r[i] for r in results.throughput[(server, clients)]) for i in range(3)
            )
            lines.append(
                f"| {clients} | `{server}` | {qps:,.0f} | {p99:.2f} | {cpu:,.0f} | {qps / base:.2f}x |"
            )
    lines += [
        "",
        f"Latency at nq=1, one client in sequence ({args.latency_calls:,} searches per round; "
        "median over rounds of each round's p50 / p99):",
        "",
        "| server | p50 (ms) | p99 (ms) | p50 added vs `--workers 1` (ms) | p99 added (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    base50, base99 = (statistics.median(r[i] for r in results.latency[SINGLE]) for i in range(2))
    for server in servers:
        p50, p99 = (statistics.median(r[i] for r in results.latency[server]) for i in range(2))
        lines.append(
            f"| `{server}` | {p50 / 1000:.2f} | {p99 / 1000:.2f} | "
            f"{(p50 - base50) / 1000:+.2f} | {(p99 - base99) / 1000:+.2f} |"
        )
    total = sum(results.cluster_cpu.values())
    if total > 0:
        shares = ", ".join(f"{role} {seconds / total:.0%}" for role, seconds in results.cluster_cpu.items())
        lines += ["", f"Where the cluster's CPU went while it was measured: {shares}."]
    return "\n".join(lines) + "\n"


# --- the run ----------------------------------------------------------------------------------


def commit() -> str:
    """The code measured: HEAD's short hash, marked when sheafdb/ has uncommitted changes."""
    head = _git("rev-parse", "--short", "HEAD") or "unknown"
    return f"`{head}`" + (" with uncommitted changes" if _git("status", "--porcelain", "sheafdb") else "")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()


def print_logs(work: Path) -> None:
    """The end of the writer's and the proxy's output, to say why the cluster failed."""
    for log in sorted(work.glob("*.log")):
        print(
            f"--- {log.name} (last 3000 characters)\n{log.read_text(errors='replace')[-3000:]}",
            file=sys.stderr,
        )


def serve_rounds(data_dir: str, payload: bytes, args: argparse.Namespace, results: Results) -> None:
    """One round of the two ``--workers`` servers on the built data dir."""
    for server, workers in ((SINGLE, 1), (TWO_WORKERS, 2)):
        port = free_port()
        process = start(data_dir, port, workers)
        try:
            wait_loaded(port, payload)
            results.add(server, port, payload, psutil.Process(process.pid), args)
        finally:
            stop(process)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    command = " ".join([".venv/bin/python bench/scale_out.py", *(sys.argv[1:] if argv is None else argv)])
    work = Path(tempfile.mkdtemp(prefix="sheafdb-scale-out-"))
    results = Results()
    started_load = os.getloadavg()[0]
    try:
        data_dir = str(work / "embedded")
        port = free_port()
        builder = start(data_dir, port, 1)
        try:
            client = MilvusClient(uri=f"http://127.0.0.1:{port}")
            vectors = build(client, args.rows)
            client.close()
        finally:
            stop(builder)
        queries = (vectors[:2000] + np.float32(0.01)).astype(np.float32)
        payload = raw_requests(queries[123:124], [])["search"][1]
        with ExitStack() as stack:
            cluster: tuple[int, ServingProcesses] | None = None
            if args.no_cluster:
                results.cluster_note = "not measured in this run (--no-cluster)."
            else:
                try:
                    cluster = stack.enter_context(cluster_under_test(args, work))
                    wait_loaded(cluster[0], payload)
                except (Exception, SystemExit) as exc:  # the two others' figures still count
                    traceback.print_exc()
                    print_logs(work)
                    results.cluster_note = f"not measured: it did not start ({_reason(exc)})."
                    stack.close()
                    cluster = None
            for round_number in range(1, args.rounds + 1):
                serve_rounds(data_dir, payload, args, results)
                if cluster is None:
                    continue
                try:
                    before = cluster[1].cpu_by_role()
                    results.add(CLUSTER, cluster[0], payload, cluster[1], args)
                    for role, seconds in cluster[1].cpu_by_role().items():
                        results.cluster_cpu[role] = (
                            results.cluster_cpu.get(role, 0.0) + seconds - before[role]
                        )
                except (Exception, SystemExit) as exc:
                    traceback.print_exc()
                    print_logs(work)
                    results.drop(CLUSTER)
                    results.cluster_note = f"not measured: round {round_number} failed ({_reason(exc)})."
                    stack.close()
                    cluster = None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results.load = (started_load, os.getloadavg()[0])
    section = render(results, args, command, machine(), when)
    print(section)
    if not args.no_doc:
        put_section(args.doc, SECTION, section)
        print(f"wrote the {SECTION} section of {args.doc}")


if __name__ == "__main__":
    main()
