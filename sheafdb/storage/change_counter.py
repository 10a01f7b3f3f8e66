"""Change counters in shared memory: how an embedded query worker knows, without a syscall,
that the primary changed nothing since its last look (``serve --workers N``).

``<data dir>/change-counters`` is one page, mapped ``MAP_SHARED`` by the primary and by every
query worker. It holds one 8-byte counter per source a worker follows (``Slot``), each at an
8-byte-aligned offset, each on its own (no two are ever read as one state):

- ``DATA``: the catalog (every committed SQLite transaction, sqlite_catalog.py) and the logs
  of every collection (every record appended, wal.py).
- ``CREDENTIALS``: the credential store (every committed change, credentials.py).

**Ordering.** The primary bumps a counter only after the change it announces is visible to
another process (the SQLite COMMIT returned; the log record's ``write`` returned, and was
fsync'd when fsync is on), and it acknowledges the call only after the bump. A worker reads the
counter *before* it looks at the data, and remembers the value it read. A later read that finds
the same value knows that no change was announced since that look began, so everything
acknowledged before the call came in was already seen by that look: it skips the look. A bump
can never be seen before its data: on x86-64 stores become visible in program order (TSO) and
the data's stores were done by the kernel before the write / COMMIT returned.

**Atomicity.** Each counter is read and written as one aligned 8-byte access: numpy's uint64
item get / set on a well-behaved (aligned, native-order) array is one typed 64-bit load / store
in C, which x86-64 (and aarch64) perform atomically: a reader sees the old value or the new,
never a mix of their bytes.

**Crashes and restarts.** A primary that dies between a change and its bump never acknowledged
that change, so a worker that sees no bump misses nothing it was promised. A primary that
starts (again) sets each counter to ``max(value + 1, time.time_ns())``: past every value any
process read before (a generation), even when the page was lost with the machine, so a worker
that outlived the old primary cannot mistake a new count for the one it last saw. The file is
never truncated or replaced: a worker's mapping stays the primary's.

One writer per data dir (the server's lock on it); bumps of one counter are serialised by a
lock in the writer's process. Readers only load.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from enum import IntEnum
from pathlib import Path

import numpy as np

from sheafdb.storage.catalog import Catalog
from sheafdb.storage.file_logs import FileLogs
from sheafdb.storage.log import LogStore
from sheafdb.storage.sqlite_catalog import SqliteCatalog

COUNTERS_FILE = "change-counters"
_FILE_BYTES = mmap.PAGESIZE


class Slot(IntEnum):
    """Which counter of the file (its index: 8 bytes each)."""

    DATA = 0
    CREDENTIALS = 1


class ChangeCounter:
    """One counter of ``<data dir>/change-counters``: ``publish`` (the primary) or ``follow``."""

    def __init__(self, fd: int, *, writable: bool, slot: Slot) -> None:
        try:
            access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
            self._map = mmap.mmap(fd, _FILE_BYTES, access=access)
        finally:
            os.close(fd)  # the mapping keeps the file
        cells = np.frombuffer(self._map, dtype=np.uint64, count=1, offset=8 * int(slot))
        assert cells.flags.aligned  # one 64-bit access per get / set (the module docstring)
        self._cells = cells
        self.writable = writable
        self._lock = threading.Lock()

    @classmethod
    def publish(cls, data_dir: Path, slot: Slot) -> ChangeCounter:
        """The primary's: creates the file if needed and starts the counter past every value
        it held (the module docstring)."""
        fd = os.open(Path(data_dir) / COUNTERS_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < _FILE_BYTES:
                os.ftruncate(fd, _FILE_BYTES)  # grows only: a mapped page is never cut off
        except BaseException:
            os.close(fd)
            raise
        counter = cls(fd, writable=True, slot=slot)
        counter._cells[0] = max(counter.value() + 1, time.time_ns())
        return counter

    @classmethod
    def follow(cls, data_dir: Path, slot: Slot) -> ChangeCounter:
        """A worker's, read-only. FileNotFoundError: no primary published it."""
        return cls(os.open(Path(data_dir) / COUNTERS_FILE, os.O_RDONLY), writable=False, slot=slot)

    def value(self) -> int:
        return int(self._cells.item(0))

    def bump(self) -> None:
        """Announce a change, once it is visible to other processes."""
        with self._lock:
            self._cells[0] = self._cells.item(0) + 1

    def close(self) -> None:
        """Unmap (the numpy view goes first: a buffer still exported cannot be unmapped)."""
        del self._cells
        self._map.close()


def publish_data_changes(data_dir: Path, catalog: Catalog, logs: LogStore) -> ChangeCounter | None:
    """The primary's ``DATA`` counter, bumped from now on by every commit of the embedded
    catalog and every record appended to a log opened after this call; None with other
    backends (PostgreSQL: a follower reads its counters in the log tail's statement)."""
    if not (isinstance(catalog, SqliteCatalog) and isinstance(logs, FileLogs)):
        return None
    counter = ChangeCounter.publish(data_dir, Slot.DATA)
    catalog.on_commit = counter.bump
    logs.on_append = counter.bump
    return counter
