"""Writes on the cluster: the coordinator alone against the coordinator and a shard writer, side
by side in one run.

The set-up is bench/scale_out.py's cluster (PostgreSQL and SeaweedFS from scripts/services/, a
local Ray cluster, a writer and a proxy) plus, in the second configuration, a shard writer
(``serve --cluster ... --role shard-writer``). Each configuration makes two new collections
(an auto-id INT64 key, a 128-d vector, a VARCHAR tag), waits until their logs are owned (alone:
both by the coordinator's process; with the shard writer: one each, the adoption rule sharing
new logs out), and sends pre-serialized InsertRequests of ``--batch`` rows through the proxy from
``--clients`` connections (alternating between the collections; grpcio client threads) for
``--seconds``. Then it drops them (so the next configuration starts with no logs owned).
Rounds alternate the configurations; the tables hold the medians over rounds.

Printed and written to docs/benchmarks.md (section ``shard-writers``): rows/s, p99 per call,
and the CPU each process role spent per 1,000 rows (the proxy, the coordinator, the shard
writer, PostgreSQL), which shows where the appending moved.

Usage: .venv/bin/python bench/shard_writers.py [--seconds S] [--clients N] [--batch ROWS]
    [--rounds N] [--doc PATH | --no-doc]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil
import psycopg
from harness.doc_sections import put_section
from memory_timeline import machine
from pymilvus import DataType, MilvusClient
from pymilvus.grpc_gen import milvus_pb2, schema_pb2
from scale_out import _cpu, commit, launch, ray_cluster, running_service
from server_memory import free_port
from workers_clients import channel

REPO = Path(__file__).resolve().parents[1]
SECTION = "shard-writers"
SERVICE = "/milvus.proto.milvus.MilvusService/"
DIM = 128
ALONE, SHARED = "coordinator alone", "coordinator + 1 shard writer"
OWNER_WAIT_S = 60.0
NOTE = (
    "On this 2-core machine the proxy, both writers, PostgreSQL, the S3 server and the Ray node "
    "share two cores, and together they need about the same CPU per row in both configurations: "
    "rows/s stays where the cores put it. What the shard writer changes is where the CPU goes: the "
    "appending (validation, ids, the log's group commit) leaves the coordinator, which keeps "
    "following the logs and sealing; on machines with cores to spare, that share is what a second "
    "writer adds."
)


@dataclass
class Results:
    """Per configuration, a list over rounds of (rows/s, p99 ms, CPU s per 1k rows by role)."""

    rounds: dict[str, list[tuple[float, float, dict[str, float]]]] = field(default_factory=dict)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8, help="connections, half per collection")
    parser.add_argument("--batch", type=int, default=500, help="rows per InsertRequest")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--no-doc", action="store_true")
    return parser.parse_args(argv)


def insert_request(name: str, rows: int) -> bytes:
    """One pre-serialized InsertRequest of ``rows`` rows (auto id: no key column)."""
    vectors = np.random.default_rng(7).standard_normal((rows, DIM)).astype(np.float32)
    request = milvus_pb2.InsertRequest(collection_name=name, num_rows=rows)
    vec = schema_pb2.FieldData(type=schema_pb2.DataType.FloatVector, field_name="vec")
    vec.vectors.dim = DIM
    vec.vectors.float_vector.data.extend(vectors.ravel().tolist())
    tag = schema_pb2.FieldData(type=schema_pb2.DataType.VarChar, field_name="tag")
    tag.scalars.string_data.data.extend(f"tag-{i % 7}" for i in range(rows))
    request.fields_data.extend([vec, tag])
    return bytes(request.SerializeToString())


def create(client: MilvusClient, name: str) -> int:
    schema = client.create_schema(auto_id=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    client.create_collection(name, schema=schema)
    return int(client.describe_collection(name)["collection_id"])


def owners(catalog: str, collection_ids: list[int]) -> list[str | None]:
    with psycopg.connect(catalog) as db:
        found = dict(
            db.execute(
                "SELECT name, holder FROM leases "
                "WHERE name = ANY(%s) AND expires_at > extract(epoch from now())",
                ([f"log/{cid}" for cid in collection_ids],),
            ).fetchall()
        )
    return [found.get(f"log/{cid}") for cid in collection_ids]


def wait_owned(catalog: str, collection_ids: list[int], distinct: int) -> list[str]:
    deadline = time.monotonic() + OWNER_WAIT_S
    while time.monotonic() < deadline:
        found = owners(catalog, collection_ids)
        if all(found) and len(set(found)) == distinct:
            return [str(f) for f in found]
        time.sleep(0.1)
    raise RuntimeError(f"the logs were not owned as expected: {owners(catalog, collection_ids)}")


def run_load(port: int, payloads: list[bytes], clients: int, seconds: float) -> tuple[int, list[float]]:
    """Closed-loop Insert calls from ``clients`` threads, each on its own gRPC connection and
    sending its collection's pre-serialized request (clients alternate between the payloads)
    for ``seconds``: the calls made and their latencies. grpcio's client, not bench/h2_load.py:
    a request of hundreds of KiB needs HTTP/2 flow control on the sending side, which that lean
    client does not do; a call here costs the server milliseconds, so the client's share is
    small beside it."""
    channels = [channel(port) for _ in range(clients)]
    calls = [ch.unary_unary(SERVICE + "Insert") for ch in channels]
    samples: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    for i, call in enumerate(calls):
        call(payloads[i % len(payloads)], timeout=120)  # connect, and the first write of each collection
    deadline = time.perf_counter() + seconds

    def client(i: int) -> None:
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                calls[i](payloads[i % len(payloads)], timeout=120)
                samples[i].append(time.perf_counter() - started)
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for ch in channels:
            ch.close()
    if errors:
        raise errors[0]
    flat = sorted(s for per in samples for s in per)
    return len(flat), flat


@dataclass
class Deployment:
    work: Path
    env: dict[str, str]
    common: list[str]
    catalog: str
    postgres_pid: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def start(self, role: str) -> None:
        port = free_port()
        command = [sys.executable, "-m", "sheafdb", "serve", "--role", role, *self.common]
        command += ["--data-dir", str(self.work / f"{role}-{port}"), "--port", str(port)]
        self.processes[role] = launch(command, port, self.env, self.work / f"{role}-{port}.log")
        self.ports[role] = port

    def stop(self, role: str) -> None:
        process = self.processes.pop(role)
        process.terminate()
        process.wait(30)
        self.ports.pop(role)

    def cpu_by_role(self) -> dict[str, float]:
        roles = {name: [psutil.Process(process.pid)] for name, process in self.processes.items()}
        postgres = psutil.Process(self.postgres_pid)
        roles["PostgreSQL"] = [postgres, *postgres.children()]
        return {name: sum(_cpu(p) for p in processes) for name, processes in roles.items()}


@contextmanager
def deployment(work: Path) -> Iterator[Deployment]:
    with ExitStack() as stack:
        pg = stack.enter_context(running_service("postgres"))
        s3 = stack.enter_context(running_service("s3"))
        ray_address = stack.enter_context(ray_cluster(1))
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": (s3 / "access_key").read_text().strip(),
            "AWS_SECRET_ACCESS_KEY": (s3 / "secret_key").read_text().strip(),
        }
        objects = (
            f"s3://sheafdb/shard-writers?endpoint_override={(s3 / 'endpoint').read_text().strip()}"
            "&scheme=http&region=us-east-1&allow_bucket_creation=true"
        )
        catalog = (pg / "url").read_text().strip()
        made = Deployment(
            work, env, ["--cluster", ray_address, "--catalog", catalog, "--objects", objects], catalog,
            int((pg / "pid").read_text()),
        )  # fmt: skip
        try:
            made.start("writer")
            made.start("proxy")
            yield made
        finally:
            for role in list(made.processes):
                try:
                    made.stop(role)
                except subprocess.TimeoutExpired:
                    made.processes[role].kill()


def measure(
    made: Deployment, config: str, round_no: int, args: argparse.Namespace
) -> tuple[float, float, dict[str, float]]:
    if config == SHARED and "shard-writer" not in made.processes:
        made.start("shard-writer")
    if config == ALONE and "shard-writer" in made.processes:
        made.stop("shard-writer")
    client = MilvusClient(uri=f"http://127.0.0.1:{made.ports['proxy']}")
    names = [f"r{round_no}_{'shared' if config == SHARED else 'alone'}_{i}" for i in range(2)]
    try:
        ids = [create(client, name) for name in names]
        wait_owned(made.catalog, ids, 2 if config == SHARED else 1)
        payloads = [insert_request(name, args.batch) for name in names]
        cpu_before = made.cpu_by_role()
        started = time.perf_counter()
        calls, samples = run_load(made.ports["proxy"], payloads, args.clients, args.seconds)
        wall = time.perf_counter() - started
        cpu_after = made.cpu_by_role()
        rows = calls * args.batch
        per_1k = {role: (cpu_after[role] - cpu_before.get(role, 0.0)) * 1e6 / rows for role in cpu_after}
        p99 = samples[int(0.99 * (len(samples) - 1))] * 1000
        return rows / wall, p99, per_1k
    finally:
        for name in names:
            client.drop_collection(name)
        client.close()


def render(results: Results, args: argparse.Namespace, command: str, machine_line: str, when: str) -> str:
    roles = ["proxy", "writer", "shard-writer", "PostgreSQL"]
    lines = [
        "## Writes on the cluster: the coordinator alone and with a shard writer",
        "",
        f"`{command}` — {when}, commit {commit()}, {machine_line}.",
        "",
        f"Two new auto-id collections per configuration, {args.clients} connections through one "
        "proxy (alternating between the collections), pre-serialized InsertRequests of "
        f"{args.batch} x {DIM}-d rows, "
        f"{args.seconds:g} s per round, medians of {args.rounds} alternating rounds. With the shard "
        "writer, each owns one collection's log; alone, the coordinator's process owns both.",
        "",
        "| configuration | rows/s | p99 per call (ms) | "
        + " | ".join(f"CPU ms per 1k rows: {role}" for role in roles)
        + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in roles) + " |",
    ]
    base = None
    for config in (ALONE, SHARED):
        runs = results.rounds.get(config, [])
        if not runs:
            continue
        rate = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        cpu = {role: statistics.median(r[2].get(role, 0.0) for r in runs) for role in roles}
        ratio = "" if base is None else f" ({rate / base:.2f}x)"
        base = rate if base is None else base
        cells = " | ".join(
            "-" if config == ALONE and role == "shard-writer" else f"{cpu[role]:.1f}" for role in roles
        )
        lines.append(f"| {config} | {rate:,.0f}{ratio} | {p99:.1f} | {cells} |")
    lines += ["", NOTE]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    results = Results()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()[0]
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sheafdb-shards-")))
        made = stack.enter_context(deployment(work))
        for round_no in range(args.rounds):
            for config in (ALONE, SHARED) if round_no % 2 == 0 else (SHARED, ALONE):
                try:
                    rate, p99, per_1k = measure(made, config, round_no, args)
                except Exception:
                    for log in sorted(work.glob("*.log")):
                        print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
                    raise
                results.rounds.setdefault(config, []).append((rate, p99, per_1k))
                cpu = ", ".join(f"{role} {ms:.1f}" for role, ms in per_1k.items())
                print(f"round {round_no} {config}: {rate:,.0f} rows/s, p99 {p99:.1f} ms")
                print(f"  CPU ms per 1k rows: {cpu}")
    command = "bench/shard_writers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(results, args, command.strip(), machine(), when)
    text += f"\nLoad average before the run: {load_before:.2f}.\n"
    print(text)
    if not args.no_doc:
        put_section(args.doc, SECTION, text)


if __name__ == "__main__":
    main()
