"""Searching the sources of one small request at the same time, one core each.

A collection holds several sealed segments plus growing rows; a search of a few queries walks
each one's graph on the request thread alone (index/faiss_threads.py: fewer than
WIDE_MIN_QUERIES queries run on one OpenMP thread), one after another on one core. faiss
releases the GIL while it searches, so here the request thread and CORES - 1 helper threads
take the sources from one shared counter until none is left: every core walks a graph, and
each call still runs on one OpenMP thread, so no team is stacked on a busy core. A batch of
WIDE_MIN_QUERIES or more already spreads its queries over every core inside faiss: its
sources stay sequential.

Threads: ``_POOL`` (CORES - 1 threads named ``sheafdb-segment-search``, made on first use)
runs helpers; a helper that starts after the request thread took the last source finds none
left and returns at once, and the request thread never waits for a helper that has not
started (it waits for the sources, not the helpers). Errors are raised as the sequential
loop would: the first failing source's, in source order.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sheafdb.index.faiss_threads import CORES, WIDE_MIN_QUERIES

T = TypeVar("T")

_POOL: ThreadPoolExecutor | None = None
# Guards the lazy creation of _POOL (two first searches at once make one pool).
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(CORES - 1, thread_name_prefix="sheafdb-segment-search")
        return _POOL


def run_all(tasks: Sequence[Callable[[], T]], nq: int) -> list[T]:
    """Every task's result in task order; spread over the cores when a batch of ``nq``
    queries would otherwise leave them idle (several tasks, fewer than WIDE_MIN_QUERIES)."""
    if len(tasks) < 2 or CORES < 2 or nq >= WIDE_MIN_QUERIES:
        return [task() for task in tasks]
    total = len(tasks)
    outcomes: list[tuple[bool, object]] = [(False, None)] * total
    taken = itertools.count()  # next() on a count is atomic under the GIL: each task runs once
    finished = itertools.count(1)
    all_done = threading.Event()

    def drain() -> None:
        while (i := next(taken)) < total:
            try:
                outcomes[i] = (True, tasks[i]())
            except BaseException as error:  # re-raised by the request thread, in task order
                outcomes[i] = (False, error)
            if next(finished) == total:
                all_done.set()

    pool = _pool()
    for _ in range(min(CORES, total) - 1):
        pool.submit(drain)
    drain()
    all_done.wait()
    results: list[T] = []
    for ok, value in outcomes:
        if not ok:
            assert isinstance(value, BaseException)
            raise value
        results.append(value)  # type: ignore[arg-type]
    return results
