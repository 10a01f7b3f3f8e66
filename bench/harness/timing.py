"""Latency samples and their summaries (percentiles, throughput); no system-specific code."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Run ``fn`` once: its result and the seconds it took."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def latencies_ms(calls: list[Callable[[], T]]) -> tuple[list[T], list[float]]:
    """Run each call in turn (one client, no overlap): results and per-call milliseconds."""
    results: list[T] = []
    samples: list[float] = []
    for call in calls:
        result, seconds = timed(call)
        results.append(result)
        samples.append(seconds * 1e3)
    return results, samples


def p50(samples: list[float]) -> float:
    return float(np.percentile(samples, 50))


def p99(samples: list[float]) -> float:
    return float(np.percentile(samples, 99))


def sequential_qps(samples_ms: list[float]) -> float:
    """Queries per second of a single client issuing one query at a time."""
    return 1e3 / float(np.mean(samples_ms))
