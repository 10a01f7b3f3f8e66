"""Memory over time: SheafDB and Milvus Lite driven through the same load lifecycle in one run.

Run: .venv/bin/python bench/memory_timeline.py [--n 200000] [--dim 128] [--idle-seconds 10]
        [--out bench/out/memory_timeline] [--doc docs/benchmarks.md] [--no-install]

Each system is a real server in its own process on a fresh data dir: ``sheafdb serve`` and
Milvus Lite 3.2.2's server (``python -m milvus_lite server``, the process pymilvus spawns for
``MilvusClient("./file.db")``; it runs from the harness's ``.bench-venv``). One after the
other (two cores: side by side at once would measure each against the other's CPU), both go
through the same steps on the same data:

  build (create, insert, flush, HNSW index, compaction) -> release (the baseline) -> full load -> searches
  -> release -> partial load (pk, vector) -> online field change (+ the scalar fields, under a
  search loop) -> idle (no reads for ``--idle-seconds``) -> first read -> searches.

SheafDB's collection has ``sheafdb.online_load_change=true``; before the idle step it gets
``sheafdb.idle_release_seconds`` and ``sheafdb.reload_on_read=true``, so it releases itself and
its first read loads it again. Milvus Lite has neither: where it refuses a step the table says
so, and what a Lite user does instead (release + load) is measured in its place.

Memory is the server's RSS, its child processes included, read from outside (psutil) every
0.25 s and after each step (after a 1 s settle). The results go to ``--out`` as JSON, the plot
to docs/benchmarks/memory_timeline.png, and the ``memory-timeline`` section (bench/harness/doc_sections.py)
of ``--doc`` is replaced (bench/run.py keeps such sections when it rewrites the file).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import re
import shutil
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from harness.dataset import clustered_vectors
from harness.servers import (
    REPO_ROOT,
    RssSampler,
    RunningServer,
    ServerKind,
    ensure_bench_venv,
    milvus_lite_kind,
    sheafdb_kind,
)
from pymilvus import DataType, MilvusClient
from pymilvus.client.types import LoadState

COLLECTION = "timeline"
INSERT_BATCH = 5_000
TEXT_CHARS = 200  # the VARCHAR payload: makes the scalar fields a visible share of memory
SETTLE_S = 1.0
LOADED_SEARCHES = 30
WAIT_S = 600.0
SHEAFDB = "sheafdb"
LITE = "milvus-lite"
ALL_FIELDS = ["pk", "vector", "tag", "num", "text"]
PARTIAL_FIELDS = ["pk", "vector"]
SECTION_START = "<!-- section: memory-timeline -->"
SECTION_END = "<!-- end section: memory-timeline -->"


@dataclass(frozen=True)
class Data:
    vectors: np.ndarray
    queries: np.ndarray
    tags: list[str]
    texts: list[str]

    @property
    def n(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def make_data(n: int, dim: int) -> Data:
    rng = np.random.default_rng(7)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz ", dtype=np.uint8)
    chars = letters[rng.integers(0, len(letters), size=(n, TEXT_CHARS))]
    texts = [row.tobytes().decode() for row in chars]
    return Data(
        clustered_vectors(n, dim, seed=1),
        clustered_vectors(200, dim, seed=2),
        [f"t{i % 100}" for i in range(n)],
        texts,
    )


@dataclass
class Step:
    name: str
    rss_mib: float
    seconds: float
    note: str = ""
    accounted_mib: float | None = None  # SheafDB's own ledger (/v2/sheafdb/memory)


@dataclass
class Run:
    system: str
    steps: list[Step] = field(default_factory=list)
    samples: list[tuple[float, float]] = field(default_factory=list)
    phases: list[tuple[float, str]] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _schema(dim: int) -> Any:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    schema.add_field("num", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=TEXT_CHARS * 2)
    return schema


def _error_text(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    if callable(code):  # a raw gRPC error (a method pymilvus does not wrap)
        code = getattr(code(), "name", code())
    message = getattr(exc, "message", None) or (details() if callable(details) else str(exc))
    return f"code {code}: {message}" if code is not None else message


class Driver:
    """One system through every step; ``run.steps`` gets one row per step."""

    def __init__(
        self, kind: ServerKind, data: Data, workdir: Path, idle_s: float, cycles: int, ef_construction: int
    ) -> None:
        self.kind = kind
        self.ef_construction = ef_construction
        self.data = data
        self.workdir = workdir
        self.idle_s = idle_s
        self.cycles = cycles
        self.is_sheafdb = kind.name == SHEAFDB
        self.run = Run(kind.name)
        self.sampler = RssSampler(interval_s=0.25)
        self._query = 0
        self.loaded_whole = False  # the partial load loaded every field anyway

    # -- plumbing ------------------------------------------------------------------------------
    def _rss(self, server: RunningServer) -> float:
        time.sleep(SETTLE_S)
        return server.rss_bytes() / 2**20

    def _accounted(self, server: RunningServer) -> float | None:
        if not self.is_sheafdb:
            return None
        request = urllib.request.Request(
            f"{server.uri}/v2/sheafdb/memory", data=b"{}", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            body = json.loads(reply.read())
        return float(body["data"]["usedBytes"]) / 2**20

    def _record(self, server: RunningServer, name: str, seconds: float, note: str = "") -> None:
        rss = self._rss(server)
        self.run.steps.append(Step(name, rss, seconds, note, self._accounted(server)))
        print(f"  {self.kind.name:12s} {name:40s} {rss:8.1f} MiB  {seconds:7.2f} s  {note}", flush=True)

    def _next_query(self) -> list[list[float]]:
        self._query = (self._query + 1) % len(self.data.queries)
        return [self.data.queries[self._query].tolist()]

    def _search(self, client: MilvusClient) -> float:
        start = time.perf_counter()
        client.search(COLLECTION, self._next_query(), limit=10, search_params={"params": {"ef": 64}})
        return (time.perf_counter() - start) * 1000

    def _wait_state(self, client: MilvusClient, wanted: LoadState, timeout: float) -> float:
        start = time.perf_counter()
        while client.get_load_state(COLLECTION)["state"] != wanted:
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"{self.kind.name}: not {wanted} after {timeout}s")
            time.sleep(0.1)
        return time.perf_counter() - start

    def _timed(self, fn: Callable[[], Any]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def _phase(self, name: str) -> None:
        self.sampler.phase(name)

    # -- the steps -----------------------------------------------------------------------------
    def go(self) -> Run:
        self.sampler.start()
        server = RunningServer(self.kind, self.workdir / "data", self.workdir / "server.log")
        try:
            self.sampler.follow(server)
            self._phase("start")
            client, _ = server.wait_serving()
            self._record(server, "started (empty)", 0.0)
            self._build(client, server)
            self._full_load(client, server)
            self._partial_load(client, server)
            self._online_change(client, server)
            self._idle_and_read(client, server)
            client.close()
        finally:
            server.stop()
            self.sampler.close()
        self.run.samples = list(self.sampler.samples)
        self.run.phases = list(self.sampler.phases)
        return self.run

    def _build(self, client: MilvusClient, server: RunningServer) -> None:
        data = self.data
        self._phase("build")
        start = time.perf_counter()
        properties = {"sheafdb.online_load_change": "true"} if self.is_sheafdb else {}
        client.create_collection(COLLECTION, schema=_schema(data.dim), properties=properties)
        for first in range(0, data.n, INSERT_BATCH):
            rows = [
                {
                    "pk": i,
                    "vector": data.vectors[i],
                    "tag": data.tags[i],
                    "num": i,
                    "text": data.texts[i],
                }
                for i in range(first, min(first + INSERT_BATCH, data.n))
            ]
            client.insert(COLLECTION, rows)
        client.flush(COLLECTION)
        index = client.prepare_index_params()
        index.add_index("vector", index_name="vector", index_type="HNSW", metric_type="L2",
                        params={"M": 16, "efConstruction": self.ef_construction})  # fmt: skip
        try:
            client.create_index(COLLECTION, index)
        except Exception as exc:  # noqa: BLE001 - see below
            # Milvus Lite builds in the call; a build longer than the client's keepalive pings
            # allow ends in GOAWAY, pymilvus retries, and the retry finds the index made.
            if "index already exists" not in str(exc):
                raise
        self._wait_indexed(client)
        # Both servers merge the inserted segments in the background (and index the merged
        # one): compacted by hand and waited for, so no merge runs under the steps measured.
        self._phase("compact")
        note = ""
        try:
            job = client.compact(COLLECTION)
            deadline = time.perf_counter() + WAIT_S
            while client.get_compaction_state(job) != "Completed":
                if time.perf_counter() > deadline:
                    raise RuntimeError("compaction did not complete")
                time.sleep(0.5)
        except Exception as exc:  # noqa: BLE001 - a server without compaction is reported
            note = f"compaction not available: {_error_text(exc)}"
        self._wait_indexed(client)
        try:
            segments = f"{len(client.list_persistent_segments(COLLECTION))} segment(s) after compaction"
        except Exception as exc:  # noqa: BLE001 - Milvus Lite does not list its segments
            segments = f"segments not listed: {_error_text(exc)[:60]}"
        note = note or segments
        self._record(server, "built (insert, flush, index, compact)", time.perf_counter() - start, note)
        self._phase("release")
        seconds = self._timed(lambda: client.release_collection(COLLECTION))
        self._record(server, "released: the baseline", seconds)

    def _wait_freed(self, server: RunningServer) -> None:
        """Until SheafDB's ledger is empty: a policy release shows NotLoad while it is still
        Releasing (Milvus's wire has no such state), and ends once a running loader pass stops."""
        deadline = time.perf_counter() + WAIT_S
        while (self._accounted(server) or 0.0) > 0.0:
            if time.perf_counter() > deadline:
                raise RuntimeError("the idle release never finished")
            time.sleep(0.1)

    def _wait_indexed(self, client: MilvusClient) -> None:
        deadline = time.perf_counter() + WAIT_S
        while True:
            info = client.describe_index(COLLECTION, index_name="vector")
            finished = str(info.get("state", "")).endswith("Finished")
            if finished and int(info.get("pending_index_rows", 0)) == 0:
                return
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.kind.name}: the index did not finish")
            time.sleep(0.2)

    def _full_load(self, client: MilvusClient, server: RunningServer) -> None:
        self._phase("full load")
        seconds = self._timed(lambda: client.load_collection(COLLECTION))
        self._wait_state(client, LoadState.Loaded, WAIT_S)
        self._record(server, "full load", seconds)
        self._phase("searches")
        latencies = [self._search(client) for _ in range(LOADED_SEARCHES)]
        self.run.latency_ms["search p50, loaded"] = statistics.median(latencies)
        self._record(server, f"after {LOADED_SEARCHES} searches", sum(latencies) / 1000)
        self._phase("release")
        seconds = self._timed(lambda: client.release_collection(COLLECTION))
        self._record(server, "release", seconds)

    def _partial_load(self, client: MilvusClient, server: RunningServer) -> None:
        self._phase("partial load")
        note = ""
        try:
            seconds = self._timed(lambda: client.load_collection(COLLECTION, load_fields=PARTIAL_FIELDS))
        except Exception as exc:  # noqa: BLE001 - a peer's refusal is a result, reported
            note = f"load_fields refused ({_error_text(exc)}); loaded whole"
            seconds = self._timed(lambda: client.load_collection(COLLECTION))
        self._wait_state(client, LoadState.Loaded, WAIT_S)
        if not note:
            self.loaded_whole = self._readable(client, "tag")
            note = (
                "load_fields accepted, but every field loaded (tag readable)"
                if self.loaded_whole
                else "only pk and vector loaded (a query of tag is refused)"
            )
        self._record(server, "partial load (pk, vector)", seconds, note)

    def _readable(self, client: MilvusClient, name: str) -> bool:
        try:
            client.query(COLLECTION, filter="pk >= 0", output_fields=[name], limit=1)
            return True
        except Exception:  # noqa: BLE001 - "field not loaded" is the answer looked for
            return False

    def _online_change(self, client: MilvusClient, server: RunningServer) -> None:
        """Add the scalar fields to what is loaded while a search loop runs beside it."""
        self._phase("online field change")
        loop = SearchLoop(server.uri, self.data.queries)
        loop.start()
        time.sleep(0.5)
        start = time.perf_counter()
        note: str
        try:
            client.load_collection(COLLECTION, load_fields=ALL_FIELDS)
            self._wait_state(client, LoadState.Loaded, WAIT_S)
            if not self._readable(client, "text"):
                note = "accepted, but text still not loaded"
            elif self.loaded_whole:
                note = "accepted; nothing to change: every field was loaded already"
            else:
                note = "text, tag, num loaded while serving"
        except Exception as exc:  # noqa: BLE001 - Milvus's refusal is the expected answer for Lite
            refused = _error_text(exc)
            # What a Lite user has to do instead: release, then load again (reads fail between).
            client.release_collection(COLLECTION)
            client.load_collection(COLLECTION, load_fields=ALL_FIELDS)
            self._wait_state(client, LoadState.Loaded, WAIT_S)
            note = f"refused ({refused}); did release + load instead"
        seconds = time.perf_counter() - start
        time.sleep(0.5)
        ok, failed, errors = loop.stop()
        note += f"; search loop: {ok} ok, {failed} failed" + (f" ({errors[0]})" if errors else "")
        self.run.notes.append(f"online field change: {note}")
        self._record(server, "online field change (+tag, num, text)", seconds, note)

    def _idle_and_read(self, client: MilvusClient, server: RunningServer) -> None:
        """``cycles`` times: no reads for the idle time, then one read, then reads as usual. The
        first cycle's figures are the table's steps; the first-read latency is the median."""
        if self.is_sheafdb:
            client.alter_collection_properties(
                COLLECTION,
                {"sheafdb.idle_release_seconds": str(int(self.idle_s)), "sheafdb.reload_on_read": "true"},
            )
        firsts: list[float] = []
        after: list[float] = []
        for cycle in range(self.cycles):
            self._phase("idle")
            start = time.perf_counter()
            if self.is_sheafdb:
                idle = self._wait_state(client, LoadState.NotLoad, self.idle_s + 60)
                self._wait_freed(server)
                note = f"released by sheafdb.idle_release_seconds={int(self.idle_s)} after {idle:.1f} s"
            else:
                time.sleep(self.idle_s + 1)
                state = client.get_load_state(COLLECTION)["state"]
                note = f"no idle release in Milvus Lite: {state.name} after {self.idle_s + 1:.0f} s unread"
            if cycle == 0:
                self._record(server, "idle (no reads)", time.perf_counter() - start, note)
            self._phase("first read")
            firsts.append(self._search(client))
            if cycle == 0:
                note = "reload-on-read: the read waits for the load" if self.is_sheafdb else "still loaded"
                self._record(server, "first read after idle", firsts[0] / 1000, note)
            after += [self._search(client) for _ in range(LOADED_SEARCHES)]
        self.run.latency_ms["first read after the idle step"] = statistics.median(firsts)
        self.run.latency_ms["search p50 after the first read"] = statistics.median(after)
        self.run.notes.append(
            f"first read after the idle step, {self.cycles} cycles: "
            + ", ".join(f"{ms:,.1f}" for ms in firsts)
            + " ms"
        )
        if not self.is_sheafdb:
            self._lite_manual_reload(client, server)

    def _lite_manual_reload(self, client: MilvusClient, server: RunningServer) -> None:
        """Lite's only way to give memory back and serve again: release, read (fails), load, read."""
        served: list[float] = []
        for cycle in range(self.cycles):
            self._phase("manual release")
            seconds = self._timed(lambda: client.release_collection(COLLECTION))
            if cycle == 0:
                self._record(server, "manual release (what Lite can do)", seconds)
            try:
                self._search(client)
                refused = "served"
            except Exception as exc:  # noqa: BLE001 - the expected "collection not loaded"
                refused = _error_text(exc)
            self._phase("load + read")
            start = time.perf_counter()
            client.load_collection(COLLECTION, load_fields=ALL_FIELDS)
            self._wait_state(client, LoadState.Loaded, WAIT_S)
            self._search(client)
            served.append(time.perf_counter() - start)
            if cycle == 0:
                self._record(server, "manual load + first read", served[0], f"a read before it: {refused}")
        self.run.latency_ms["manual load + first read after a release"] = statistics.median(served) * 1000


class SearchLoop:
    """Searches on its own client and thread until stopped; counts answers and failures."""

    def __init__(self, uri: str, queries: np.ndarray) -> None:
        self.client = MilvusClient(uri=uri, timeout=60)
        self.queries = queries
        self.ok = 0
        self.failed = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="search-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        i = 0
        while not self._stop.is_set():
            i = (i + 1) % len(self.queries)
            try:
                self.client.search(COLLECTION, [self.queries[i].tolist()], limit=10)
                self.ok += 1
            except Exception as exc:  # noqa: BLE001 - every failure is counted, the first kept
                self.failed += 1
                if len(self.errors) < 1:
                    self.errors.append(_error_text(exc)[:160])
                time.sleep(0.05)

    def stop(self) -> tuple[int, int, list[str]]:
        self._stop.set()
        self._thread.join()
        self.client.close()
        return self.ok, self.failed, self.errors


# -- the report ------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.3g}"


# The steps put side by side, in order; Lite's extra steps are listed after them.
COMPARED = (
    "started (empty)",
    "built (insert, flush, index, compact)",
    "released: the baseline",
    "full load",
    f"after {LOADED_SEARCHES} searches",
    "release",
    "partial load (pk, vector)",
    "online field change (+tag, num, text)",
    "idle (no reads)",
    "first read after idle",
)


def markdown(results: dict[str, Any], png: str | None) -> str:
    runs = {name: results["runs"][name] for name in (SHEAFDB, LITE) if name in results["runs"]}
    steps = {name: {s["name"]: s for s in run["steps"]} for name, run in runs.items()}
    sheaf, lite = steps.get(SHEAFDB, {}), steps.get(LITE, {})
    base_s = sheaf.get("released: the baseline", {}).get("rss_mib")
    base_l = lite.get("released: the baseline", {}).get("rss_mib")
    cfg = results["config"]
    lines = [
        SECTION_START,
        "## Memory over time: load, partial load, online field change, idle release, reload-on-read",
        "",
        "Written by `bench/memory_timeline.py` — rerun it to replace this section (bench/run.py keeps it).",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Run on {results['date']}, {results['machine']}. Shared with other work while it ran: read "
        "the ratios and the shapes, not the absolute numbers.",
        "",
        f"Data: {cfg['n']:,} × {cfg['dim']}-d float32 (clustered, seeded), INT64 pk, VARCHAR tag, INT64 "
        f"num, VARCHAR text of {TEXT_CHARS} characters; HNSW M=16 "
        f"efConstruction={cfg['ef_construction']}, L2. Both servers in their own process on a fresh "
        f"data dir, {cfg['order']}, through the same pymilvus "
        f"calls: {results['lite_note']}. RSS of the server process and its children, sampled every "
        f"0.25 s and read after each step (after a {SETTLE_S:.0f} s settle). SheafDB's collection has "
        "`sheafdb.online_load_change=true`; before the idle step it is given "
        f"`sheafdb.idle_release_seconds={int(cfg['idle_seconds'])}` and `sheafdb.reload_on_read=true`.",
        "",
        f"![memory over time]({png})" if png else "(No plot: matplotlib was not installed.)",
        "",
        "| step | SheafDB RSS (MiB) | Milvus Lite RSS (MiB) | SheafDB / Lite | SheafDB above its "
        "baseline | Lite above its baseline | SheafDB accounted (MiB) | SheafDB | Milvus Lite |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in COMPARED:
        s, m = sheaf.get(name, {}), lite.get(name, {})
        rs, rl = s.get("rss_mib"), m.get("rss_mib")
        lines.append(
            f"| {name} | {_fmt(rs)} | {_fmt(rl)} | {_ratio(rs, rl)} | "
            f"{_fmt(None if rs is None or base_s is None else rs - base_s)} | "
            f"{_fmt(None if rl is None or base_l is None else rl - base_l)} | "
            f"{_fmt(s.get('accounted_mib'), 1)} | {s.get('note', '') or '—'} | {m.get('note', '') or '—'} |"
        )
    for name, step in lite.items():
        if name not in COMPARED:
            rl = step["rss_mib"]
            lines.append(
                f"| {name} | — | {_fmt(rl)} | — | — | "
                f"{_fmt(None if base_l is None else rl - base_l)} | — | — | {step['note'] or '—'} |"
            )
    lat_s = runs.get(SHEAFDB, {}).get("latency_ms", {})
    lat_l = runs.get(LITE, {}).get("latency_ms", {})
    first_s = lat_s.get("first read after the idle step")
    manual_l = lat_l.get("manual load + first read after a release")
    lines += [
        "",
        "| read | SheafDB (ms) | Milvus Lite (ms) | SheafDB / Lite |",
        "| --- | --- | --- | --- |",
    ]
    cycles = int(cfg.get("cycles", 1))
    labels = {
        "search p50, loaded": f"search p50 on the loaded collection ({LOADED_SEARCHES} searches)",
        "first read after the idle step": f"first read after the idle step (median of {cycles})",
        "search p50 after the first read": "search p50 after that first read",
    }
    for key, label in labels.items():
        a, b = lat_s.get(key), lat_l.get(key)
        lines.append(f"| {label} | {_fmt(a, 2)} | {_fmt(b, 2)} | {_ratio(a, b)} |")
    lines.append(
        f"| after a release, until a read is served (SheafDB: reload-on-read; Lite: load + read by hand; "
        f"median of {cycles}) | "
        f"{_fmt(first_s, 2)} | {_fmt(manual_l, 2)} | {_ratio(first_s, manual_l)} |"
    )
    lines += ["", "What the run shows:", ""]
    lines += [f"- {line}" for line in results["findings"]]
    lines += [SECTION_END]
    return "\n".join(lines) + "\n"


def findings(results: dict[str, Any]) -> list[str]:
    runs = results["runs"]
    out: list[str] = []
    if results["config"].get("order") == "at the same time":
        out.append(
            "The two servers ran at the same time on a machine busy with other work: each one's "
            "latencies include the other's load (Milvus Lite's steps ran while SheafDB was still "
            "building its index), so read the memory figures, which are each server's own, and take "
            "the latencies as rough."
        )

    def rss(system: str, step: str) -> float | None:
        for s in runs.get(system, {}).get("steps", []):
            if s["name"] == step:
                return float(s["rss_mib"])
        return None

    for system, label in ((SHEAFDB, "SheafDB"), (LITE, "Milvus Lite")):
        base, full, rel = (
            rss(system, "released: the baseline"),
            rss(system, "full load"),
            rss(system, "release"),
        )
        if base is not None and full is not None and rel is not None and full > base and rel >= full:
            out.append(
                f"{label}: the full load added {full - base:,.0f} MiB; its release gave nothing back "
                f"(RSS {full:,.0f} MiB loaded, {rel:,.0f} MiB released)."
            )
        elif base is not None and full is not None and rel is not None and full > base:
            share = (full - rel) / (full - base)
            out.append(
                f"{label}: the full load added {full - base:,.0f} MiB; its release gave back "
                f"{full - rel:,.0f} MiB ({share:.0%} of what the load added)."
            )
        partial = rss(system, "partial load (pk, vector)")
        loaded_whole = any(
            s["name"] == "partial load (pk, vector)" and "every field loaded" in s["note"]
            for s in runs.get(system, {}).get("steps", [])
        )
        started = rss(system, "started (empty)")
        if loaded_whole and base is not None and started is not None:
            out.append(
                f"{label}: load_fields was accepted but every field was loaded; its RSS hardly follows "
                f"load and release: {base - started:,.0f} MiB above the empty server once the data "
                "was built, whatever the load state."
            )
        elif base is not None and full is not None and partial is not None and full > base:
            out.append(
                f"{label}: the partial load (pk, vector) added {partial - base:,.0f} MiB, "
                f"{(partial - base) / (full - base):.0%} of the full load's."
            )
    for system, label in ((SHEAFDB, "SheafDB"), (LITE, "Milvus Lite")):
        out += [f"{label}: {note}." for note in runs.get(system, {}).get("notes", [])]
    idle = rss(SHEAFDB, "idle (no reads)")
    before = rss(SHEAFDB, "online field change (+tag, num, text)")
    if idle is not None and before is not None:
        out.append(
            f"SheafDB's idle release took it from {before:,.0f} to {idle:,.0f} MiB with no call from "
            "the client; Milvus Lite has no idle release (nor pinning or priorities): its memory stays "
            "until the client releases."
        )
    latency = runs.get(SHEAFDB, {}).get("latency_ms", {})
    first, loaded_p50 = latency.get("first read after the idle step"), latency.get("search p50, loaded")
    if first and loaded_p50:
        out.append(
            f"SheafDB's first read after its idle release waited for the reload: {first:,.0f} ms, "
            f"{first / loaded_p50:,.0f}x a search on the loaded collection ({loaded_p50:.2f} ms); the "
            "reads after it are back to the loaded figure."
        )
    released = rss(LITE, "manual release (what Lite can do)")
    loaded = rss(LITE, "first read after idle")
    if released is not None and loaded is not None:
        out.append(f"Milvus Lite's own release, by hand, took it from {loaded:,.0f} to {released:,.0f} MiB.")
    return out


def write_section(doc: Path, section: str) -> None:
    text = doc.read_text() if doc.exists() else ""
    pattern = re.compile(re.escape(SECTION_START) + ".*?" + re.escape(SECTION_END) + "\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text)


def plot(results: dict[str, Any], path: Path) -> str | None:
    """Per system: the build on the left, the load lifecycle from the baseline on at the right.
    None when drawn, else why not (matplotlib is the ``bench`` extra)."""
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(name, results["runs"][name]) for name in (SHEAFDB, LITE) if name in results["runs"]]
    top = max((m for _, run in runs for _, m in run["samples"]), default=1.0) * 1.15
    fig, axes = plt.subplots(
        len(runs), 2, figsize=(12, 3.8 * len(runs)), squeeze=False, gridspec_kw={"width_ratios": [1, 3]}
    )
    colours = {SHEAFDB: "tab:blue", LITE: "tab:orange"}
    for row, (name, run) in enumerate(runs):
        phases = run["phases"]
        split = next((t for t, phase in phases if phase == "release"), phases[-1][0])
        for column, (low, high) in enumerate(((0.0, split), (split - 1.0, float("inf")))):
            ax = axes[row, column]
            shown = [(t, m) for t, m in run["samples"] if low <= t <= high and m > 0]  # 0: stopped
            ax.plot([t for t, _ in shown], [m for _, m in shown], color=colours[name], lw=1.3)
            marks = [(t, phase) for t, phase in phases if low <= t <= high]
            for i, (t, phase) in enumerate(marks):
                ax.axvline(t, color="grey", lw=0.6, ls="--")
                height = top * (0.98 if i % 2 == 0 else 0.62)
                ax.text(t, height, f" {phase}", rotation=90, va="top", fontsize=7)
            ax.set_ylim(0, top)
            ax.grid(True, alpha=0.3)
        axes[row, 0].set_ylabel("RSS (MiB)")
        axes[row, 0].set_title(f"{name}: build", fontsize=9)
        axes[row, 1].set_title(f"{name}: the load lifecycle", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("seconds since the server started")
    fig.suptitle(
        f"Server RSS (process and children), {results['config']['n']:,} × {results['config']['dim']}-d, "
        f"HNSW M=16 efConstruction={results['config']['ef_construction']}",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    cores, ram = psutil.cpu_count(logical=True), psutil.virtual_memory().total / 2**30
    return f"{cpu}, {cores} cores, {ram:.0f} GiB RAM, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--cycles", type=int, default=3, help="idle -> first read cycles (median)")
    parser.add_argument("--ef-construction", type=int, default=200, help="HNSW efConstruction")
    parser.add_argument(
        "--parallel", action="store_true", help="drive the systems at once (a machine busy with other work)"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out" / "memory_timeline")
    parser.add_argument("--doc", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--png", type=Path, default=REPO_ROOT / "docs" / "benchmarks" / "memory_timeline.png")
    parser.add_argument("--no-install", action="store_true", help="do not create the Milvus Lite venv")
    parser.add_argument("--systems", default=f"{SHEAFDB},{LITE}", help="comma-separated, in run order")
    parser.add_argument("--report-only", action="store_true", help="redraw and rewrite from --out's results")
    args = parser.parse_args()
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # refusals are results, reported below
    if args.report_only:
        results = json.loads((args.out / "results.json").read_text())
        results["findings"] = findings(results)
        report(results, args)
        return

    print(f"data: {args.n:,} x {args.dim}", flush=True)
    data = make_data(args.n, args.dim)
    systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    kinds = [sheafdb_kind()] if SHEAFDB in systems else []
    lite_note = "Milvus Lite not asked for"
    if LITE in systems:
        lite_python, why = ensure_bench_venv(install=not args.no_install)
        if lite_python is not None:
            kinds.append(milvus_lite_kind(lite_python))
            lite_note = (
                "milvus-lite 3.2.2 (`python -m milvus_lite server`, the process "
                'MilvusClient("./file.db") spawns)'
            )
        else:
            lite_note = f"Milvus Lite skipped: {why}"
            print(lite_note, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Any] = {}

    def drive(kind: ServerKind) -> None:
        workdir = args.out / kind.name
        if workdir.exists():
            shutil.rmtree(workdir)
        run = Driver(kind, data, workdir, args.idle_seconds, args.cycles, args.ef_construction).go()
        runs[kind.name] = {
            "steps": [vars(s) for s in run.steps],
            "samples": run.samples,
            "phases": run.phases,
            "latency_ms": run.latency_ms,
            "notes": run.notes,
        }
        (args.out / f"{kind.name}.json").write_text(json.dumps(runs[kind.name], indent=1))

    if args.parallel:
        with ThreadPoolExecutor(len(kinds) or 1) as pool:
            list(pool.map(drive, kinds))
    else:
        for kind in kinds:
            drive(kind)
    command = " ".join([".venv/bin/python", "bench/memory_timeline.py", *sys.argv[1:]])
    results: dict[str, Any] = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "config": {
            "n": args.n,
            "dim": args.dim,
            "idle_seconds": args.idle_seconds,
            "cycles": args.cycles,
            "ef_construction": args.ef_construction,
            "order": "at the same time" if args.parallel else "one after the other",
        },
        "lite_note": lite_note,
        "runs": runs,
    }
    results["findings"] = findings(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    report(results, args)


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    why_not = plot(results, args.png)
    try:
        png = str(args.png.resolve().relative_to(args.doc.resolve().parent))
    except ValueError:
        png = str(args.png.resolve())
    if why_not:
        print(f"no plot: {why_not}", flush=True)
    section = markdown(results, None if why_not else png)
    (args.out / "section.md").write_text(section)
    write_section(args.doc, section)
    print(section)


if __name__ == "__main__":
    main()
