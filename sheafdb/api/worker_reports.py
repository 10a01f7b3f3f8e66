"""What a query worker tells the primary (``serve --workers N``): its calls and its memory.

The server's ``/metrics`` counts every call, and its memory budget is the whole server's, but
a worker serves its searches and builds its own structures (columns it read, masks, pk
lookups) in its own process. So each worker tallies the calls it served (``CallTally``, the
sink of its metrics interceptor) and, every ``REPORT_INTERVAL_S``, sends one report over its
handoff socket (a SOCK_SEQPACKET: one message per report): the calls since the previous
report, their latencies, and the bytes its memory ledger holds. The primary's supervisor
thread receives it and hands it to ``apply_report``: the calls join the primary's counters
and latency histograms, the bytes its accountant's other-process bytes (a load must fit the
sum; a worker that dies is dropped from it).

Threads and locks: ``CallTally._lock`` guards the tally (gRPC's handler threads add, the
reporter thread drains); the reporter is one daemon thread per worker.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("sheafdb.worker")

REPORT = b"report "
REPORT_INTERVAL_S = 0.5
# Latencies kept per report and function (the count is exact past it; the histogram samples).
_MAX_LATENCIES = 4096


class CallTally:
    """The calls this worker served since its last report (a ``MetricsInterceptor`` sink)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str, str], int] = {}
        self._latencies: dict[str, list[float]] = {}

    def grpc_call(self, function: str, db: str, collection: str, *, failed: bool, started_at: float) -> None:
        elapsed_ms = (time.monotonic() - started_at) * 1000
        total = (function, "total", db, collection)
        outcome = (function, "fail" if failed else "success", db, collection)
        with self._lock:
            counts = self._counts
            counts[total] = counts.get(total, 0) + 1
            counts[outcome] = counts.get(outcome, 0) + 1
            observed = self._latencies.setdefault(function, [])
            if len(observed) < _MAX_LATENCIES:
                observed.append(elapsed_ms)

    def drain(self) -> tuple[dict[tuple[str, str, str, str], int], dict[str, list[float]]]:
        with self._lock:
            counts, self._counts = self._counts, {}
            latencies, self._latencies = self._latencies, {}
        return counts, latencies


@dataclass(frozen=True)
class WorkerReport:
    used_bytes: int
    counts: dict[tuple[str, str, str, str], int]
    latencies_ms: dict[str, list[float]]

    def encode(self) -> bytes:
        body = {
            "used_bytes": self.used_bytes,
            "counts": [[*key, count] for key, count in self.counts.items()],
            "latencies_ms": self.latencies_ms,
        }
        return REPORT + json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, message: bytes) -> WorkerReport:
        body: dict[str, Any] = json.loads(message[len(REPORT) :])
        return cls(
            used_bytes=int(body["used_bytes"]),
            counts={(str(f), str(s), str(d), str(c)): int(n) for f, s, d, c, n in body["counts"]},
            latencies_ms={str(k): [float(x) for x in v] for k, v in body["latencies_ms"].items()},
        )


class WorkerReporter:
    """The worker's reporter thread: a report every ``REPORT_INTERVAL_S`` until stopped."""

    def __init__(self, handoff: socket.socket, tally: CallTally, used_bytes: Callable[[], int]) -> None:
        self._handoff = handoff
        self._tally = tally
        self._used_bytes = used_bytes
        self._last_used = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sheafdb-worker-report", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(REPORT_INTERVAL_S):
            self.send()

    def send(self) -> None:
        try:
            self._last_used = self._used_bytes()
        except Exception:  # noqa: BLE001 - e.g. the catalog busy: the calls still go out
            log.exception("query worker could not read its memory ledger")
        counts, latencies = self._tally.drain()
        report = WorkerReport(self._last_used, counts, latencies)
        try:
            self._handoff.send(report.encode())
        except OSError:  # the primary is gone (or stopping): the worker stops on its own
            self._stopping.set()

    def stop(self) -> None:
        """Stop, after one last report (calls served since the previous one are not lost)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self.send()
