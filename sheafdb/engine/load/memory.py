"""The memory accountant: one per engine; every loaded structure registers its bytes here.

A key names what the bytes are (collection, partition, segment, and a field column, an index
or a primary-key lookup), so the same ledger answers "how much does this collection /
partition / field / index hold" and "does this load fit". Growing (not yet sealed) rows belong
to the write path and are not counted as loaded.

Bytes are counted from the structures themselves (Arrow buffer sizes, numpy ``nbytes``, an
index's serialized size), never from RSS: RSS is only what the tests check against.

With ``serve --workers N`` the budget is the whole server's: each query worker reports the
bytes its own ledger holds (what it built for itself: columns it read, masks, pk lookups;
the shared mapped files are counted in no one's used bytes), the primary keeps them here as
other processes' bytes (``set_process_bytes``), and a load must fit what all of them leave.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psutil
import pyarrow as pa

from sheafdb.errors import MemoryLimitExceeded

# Share of the machine's RAM loads may use when no budget is configured: the rest is left to
# growing segments, request buffers and the OS page cache.
DEFAULT_BUDGET_SHARE = 0.7

MIB = 1024 * 1024
# The kind of a memory-mapped column's block (mmap.enabled).
MAPPED = "mapped"


@dataclass(frozen=True)
class MemoryKey:
    """What a registered block of memory is.

    ``kind`` is ``"field"`` (a column of a segment), ``"mapped"`` (a memory-mapped column:
    page cache, counted apart and not against the budget), ``"index"`` (a vector index),
    ``"scalar_index"`` (a scalar or JSON path index, named by the index) or
    ``"pk_lookup"`` (the primary key -> row lookup of a segment); ``name`` the field name.
    """

    collection_id: int
    partition_id: int
    segment_id: int
    kind: str
    name: str


class Reservation:
    """Bytes promised to a load that has not registered them yet.

    A load reserves its whole plan at once, so two loads cannot both pass the budget check and
    then overshoot it together. Each register() with this reservation draws it down; close()
    gives back what the load did not use (cancelled, or the plan over-estimated).
    """

    def __init__(self, accountant: MemoryAccountant, nbytes: int) -> None:
        self._accountant = accountant
        self.remaining = nbytes

    def close(self) -> None:
        self._accountant._return_reservation(self)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryAccountant:
    # _lock guards _blocks, _reserved and _others: registration happens on load threads while
    # searches and reports read totals from request threads; workers' reports arrive on the
    # primary's supervisor thread.
    def __init__(self, budget_bytes: int | None = None) -> None:
        if budget_bytes is None:
            budget_bytes = int(psutil.virtual_memory().total * DEFAULT_BUDGET_SHARE)
        self.budget_bytes = budget_bytes
        _pin_mmap_threshold()
        _share_one_malloc_arena()
        _route_arrow_to_malloc()
        self._lock = threading.Lock()
        self._blocks: dict[MemoryKey, int] = {}
        self._reserved = 0
        # Other processes of the same server (query workers): name -> their used bytes.
        self._others: dict[str, int] = {}

    # -- the ledger ------------------------------------------------------------------------
    @property
    def used_bytes(self) -> int:
        """This process's resident bytes and the other processes' of the server."""
        with self._lock:
            return _resident(self._blocks) + sum(self._others.values())

    @property
    def available_bytes(self) -> int:
        with self._lock:
            return self.budget_bytes - _resident(self._blocks) - sum(self._others.values()) - self._reserved

    def set_process_bytes(self, name: str, nbytes: int | None) -> None:
        """Another process of this server (a query worker) holds ``nbytes`` (None: it is gone)."""
        with self._lock:
            if nbytes is None:
                self._others.pop(name, None)
            else:
                self._others[name] = nbytes

    def process_bytes(self) -> dict[str, int]:
        """Used bytes by process: this one (``primary``) and each reporting worker, or {} when
        this process is the whole server."""
        with self._lock:
            if not self._others:
                return {}
            return {"primary": _resident(self._blocks), **dict(sorted(self._others.items()))}

    def reserve(self, nbytes: int, what: str = "this load") -> Reservation:
        """Promise ``nbytes`` to a load, or refuse at once (code 3) if they do not fit."""
        with self._lock:
            available = (
                self.budget_bytes - _resident(self._blocks) - sum(self._others.values()) - self._reserved
            )
            if nbytes > available:
                free = max(available, 0)
                raise MemoryLimitExceeded(
                    f"memory limit exceeded[needed(MB)={nbytes / MIB:.1f}]"
                    f"[available(MB)={free / MIB:.1f}][budget(MB)={self.budget_bytes / MIB:.1f}]: "
                    f"{what} needs {nbytes} bytes, {free} bytes are free of the memory budget of "
                    f"{self.budget_bytes} bytes (sheafdb serve --memory-budget)"
                )
            self._reserved += nbytes
            return Reservation(self, nbytes)

    def register(self, key: MemoryKey, nbytes: int, reservation: Reservation | None = None) -> None:
        with self._lock:
            previous = self._blocks.get(key, 0)
            self._blocks[key] = nbytes
            if reservation is not None:
                drawn = min(reservation.remaining, nbytes - previous) if nbytes > previous else 0
                reservation.remaining -= drawn
                self._reserved -= drawn

    def unregister(self, key: MemoryKey) -> int:
        with self._lock:
            return self._blocks.pop(key, 0)

    def unregister_except(self, collection_id: int, keep: frozenset[int] = frozenset()) -> int:
        """Drop the blocks of a collection outside the ``keep`` partitions; returns the resident
        bytes (unmapped files give back no memory of the budget's)."""
        with self._lock:
            keys = [
                k for k in self._blocks if k.collection_id == collection_id and k.partition_id not in keep
            ]
            freed = {k: self._blocks.pop(k) for k in keys}
            return _resident(freed)

    def _return_reservation(self, reservation: Reservation) -> None:
        with self._lock:
            self._reserved -= reservation.remaining
            reservation.remaining = 0

    # -- reports ---------------------------------------------------------------------------
    def collection_bytes(self, collection_id: int) -> int:
        with self._lock:
            return sum(
                n for k, n in self._blocks.items() if k.collection_id == collection_id and k.kind != MAPPED
            )

    def segment_bytes(self, collection_id: int) -> dict[int, int]:
        """Bytes per loaded segment of a collection (GetQuerySegmentInfo's mem_size)."""
        out: dict[int, int] = {}
        with self._lock:
            for key, nbytes in self._blocks.items():
                if key.collection_id == collection_id:
                    out[key.segment_id] = out.get(key.segment_id, 0) + nbytes
        return out

    def report(self) -> Mapping[str, object]:
        """Totals per collection, and within it per partition, per field and per index."""
        with self._lock:
            blocks = dict(self._blocks)
            reserved = self._reserved
            others = sum(self._others.values())
        collections: dict[int, dict[str, Any]] = {}
        for key, nbytes in blocks.items():
            entry = collections.setdefault(
                key.collection_id,
                {"bytes": 0, "partitions": {}, "fields": {}, "indexes": {}, "mapped_bytes": 0, "mapped": {}},
            )
            if key.kind == MAPPED:
                entry["mapped_bytes"] += nbytes
                _add(entry["mapped"], key.name, nbytes)
                continue
            entry["bytes"] += nbytes
            _add(entry["partitions"], key.partition_id, nbytes)
            if key.kind in ("index", "scalar_index"):
                _add(entry["indexes"], key.name, nbytes)
            else:
                name = f"{key.name} (pk lookup)" if key.kind == "pk_lookup" else key.name
                _add(entry["fields"], name, nbytes)
        return {
            "budget_bytes": self.budget_bytes,
            "used_bytes": _resident(blocks) + others,
            "mapped_bytes": sum(n for k, n in blocks.items() if k.kind == MAPPED),
            "reserved_bytes": reserved,
            "collections": collections,
        }

    def blocks(self) -> dict[MemoryKey, int]:
        """A copy of the ledger: every registered block and its bytes (for named reports)."""
        with self._lock:
            return dict(self._blocks)

    @property
    def reserved_bytes(self) -> int:
        with self._lock:
            return self._reserved


def _resident(blocks: Mapping[MemoryKey, int]) -> int:
    """Bytes held in memory: every block but mapped files (the OS may drop those pages)."""
    return sum(n for k, n in blocks.items() if k.kind != MAPPED)


def _add(totals: dict[Any, int], key: Any, nbytes: int) -> None:
    totals[key] = totals.get(key, 0) + nbytes


def give_back_memory() -> None:
    """After a release: make the freed bytes leave the process, not just the Python heap.

    gc runs first so that reference cycles holding buffers are gone before the trims. Arrow's
    buffers come from glibc malloc (``_route_arrow_to_malloc``), like numpy's arrays and faiss's
    indexes, and every thread shares one arena (``_share_one_malloc_arena``), so one
    ``malloc_trim(0)`` hands back every free page. ``release_unused`` empties the default pool
    (a no-op for malloc; it matters only if something else chose a caching pool).
    """
    gc.collect()
    pa.default_memory_pool().release_unused()
    _malloc_trim()


def _route_arrow_to_malloc() -> None:
    """Make pyarrow allocate from glibc malloc instead of its bundled mimalloc.

    mimalloc keeps freed pages in per-thread heaps that only their own thread can purge, and
    every gRPC worker that evaluated a filter has one. Measured with bench/release_memory.py
    (100k x 128-d, HNSW, the benchmark's reads on the server's threads): with mimalloc the
    reads left RSS +26 MiB and 8 MiB stayed after release; with malloc, +5 and 4 MiB. Filter
    speed is the same (bench/filter_eval.py: 0.22 ms range, 0.42 ms prepared JSON key).
    This sets pyarrow's default; Arrow's C++ default (which ``BooleanArray.to_numpy`` and a
    few kernels still use) is fixed when pyarrow is imported, from the environment variable
    ``ARROW_DEFAULT_MEMORY_POOL=system``: the process entry point sets it (docs/internals.md).
    """
    system = pa.system_memory_pool()
    if pa.default_memory_pool().backend_name != system.backend_name:
        pa.set_memory_pool(system)


def _pin_mmap_threshold() -> None:
    """Make glibc serve every block of 1 MiB or more with its own mmap, for good.

    glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB),
    so after the first release the next load's columns land in the arenas instead, where
    ``malloc_trim`` gives back only part of them. Measured (200k rows: load, release, partial
    load, release): 14 of 31 MiB stayed resident after the second release; with the threshold
    pinned, all of it left. Loaded columns and indexes are large blocks, so this costs nothing.
    """
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
        # Pinned too: glibc doubles it with the mmap threshold's rises, and a thread arena's
        # free top shrinks only on a free() that finds it above this (malloc_trim skips it).
        _LIBC.mallopt(_M_TRIM_THRESHOLD, _MMAP_THRESHOLD_BYTES)


def _share_one_malloc_arena() -> None:
    """Make every thread allocate from glibc's main arena (threads started from now on).

    ``malloc_trim(0)`` returns the free pages inside every arena, but shrinks only the main
    arena's top: a thread arena keeps its free top chunk resident for good. Each gRPC worker
    that ran a search or filter got its own arena and left ~1 MiB there: measured (40k x 128-d,
    HNSW, reads on 8 threads, then release) 16 MiB of 48 stayed; with one arena, 2.5 MiB.
    Large blocks are mmapped (above), small ones come from per-thread tcaches without the
    arena lock, and most callers hold the GIL anyway: 128 filtered searches and queries on 8
    threads and a 100-query batch took the same time with one arena as with many.
    """
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(_M_ARENA_MAX, 1)


def _malloc_trim() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "malloc_trim") else None  # not glibc (musl, macOS): nothing to trim


_LIBC = _load_libc()
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter numbers
_M_TRIM_THRESHOLD = -1
_M_ARENA_MAX = -8
_MMAP_THRESHOLD_BYTES = 1024 * 1024
