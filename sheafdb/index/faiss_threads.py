"""How many OpenMP threads one faiss call runs on, decided per call in the calling thread.

libgomp keeps the thread count (the nthreads-var ICV) per thread: ``omp_set_num_threads`` in
one thread leaves every other thread at the process default, the core count (verified with
faiss-cpu 1.15's bundled libgomp). So a process-wide setting made once at import reached only
the thread that imported: the server's gRPC threads ran every batch on all cores and the index
build thread too. Each faiss call now sets the count of its own thread right before it runs.

- A search of fewer than WIDE_MIN_QUERIES queries runs on the calling thread alone: waking a
  team costs tens of microseconds that a sub-millisecond search cannot win back, and nq=1
  latency stays that of one thread.
- A larger batch runs on every core, its queries spread over the team by faiss. One such wide
  call at a time (``_WIDE_SLOT``): a concurrent large batch runs on its own thread, so parallel
  requests never stack teams on top of each other, and small requests keep a core between them.
- Builds run on every core (the build thread runs at low priority; its team inherits that).

The team's threads sleep as soon as a call ends (OMP_WAIT_POLICY=PASSIVE, set in
``sheafdb/index/__init__.py`` before faiss loads): libgomp's default spins each of them for
~8 ms after every parallel region (measured), a whole core burnt per batch on a 2-core box.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import faiss

# The process default: OMP_NUM_THREADS when set, else the cores this process may run on.
# Read at import, before any thread changes its own count.
CORES = max(1, faiss.omp_get_max_threads())
# From this many queries a search runs on every core (measured, 100k x 128-d HNSW ef 64 on
# 2 cores: nq=8 0.53 -> 0.34 ms, nq=4 0.26 -> 0.24 ms, nq=2 slower).
WIDE_MIN_QUERIES = 8
# Held by the one search running wide; taken without blocking (a busy slot means: run narrow).
_WIDE_SLOT = threading.Lock()


# What a narrow search needs around its call: nothing to undo (the count was set before).
_NARROW = nullcontext()


def search_threads(nq: int) -> AbstractContextManager[None]:
    """Inside: faiss calls of this thread use the threads a batch of ``nq`` queries is worth.

    A small batch (the common case) only sets this thread's count: no slot to give back, so
    no generator-based context is built per search."""
    if CORES > 1 and nq >= WIDE_MIN_QUERIES:
        return _wide_or_narrow()
    faiss.omp_set_num_threads(1)
    return _NARROW


@contextmanager
def _wide_or_narrow() -> Iterator[None]:
    wide = _WIDE_SLOT.acquire(blocking=False)
    faiss.omp_set_num_threads(CORES if wide else 1)
    try:
        yield
    finally:
        if wide:
            _WIDE_SLOT.release()


def use_all_cores() -> None:
    """Let this thread's following faiss calls (an index build) use every core."""
    faiss.omp_set_num_threads(CORES)
