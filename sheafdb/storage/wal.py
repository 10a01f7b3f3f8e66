"""The per-collection write-ahead log: every write is durable here before it is acknowledged.

Layout: a directory of files ``wal-<first lsn>.log``, each a sequence of records

    header  magic "SWAL" | crc32 | length | lsn | partition id | timestamp | kind length
    body    kind (UTF-8) | the batch as Arrow IPC *stream* bytes (``length`` bytes)

The crc covers the body and every header field after itself, so a record torn by a crash
mid-write (or corrupted) is detected. Opening the log scans it, truncates any torn tail and
deletes what follows it, so new appends always continue a clean, gap-free sequence of lsns.
A file is fsync'd before the log rotates away from it, so only the tail of the last file can
ever be torn.

Group commit: appenders write their record under ``_cond``'s lock, then wait until an fsync
covers their lsn. The first waiter to find no fsync running becomes the leader: it fsyncs
*outside* the lock (others keep writing meanwhile) and wakes everyone its fsync covered; the
rest either were covered or elect the next leader. N concurrent appenders share ~1 fsync.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.ipc as ipc

from sheafdb.errors import UnexpectedError
from sheafdb.storage.log import LogRecord
from sheafdb.storage.object_store import fsync_dir

MAGIC = b"SWAL"
# magic, crc32, length, lsn, partition id, timestamp, kind length
_HEADER = struct.Struct("<4sIIQqQH")
# The crc covers the body, then the header from here on (length .. kind length).
_CRC_FROM = 8
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
_FILE_NAME = re.compile(r"^wal-(\d{20})\.log$")


# The file log's records are the engine's log records (storage/log.py).
WalRecord = LogRecord


def _file_name(first_lsn: int) -> str:
    return f"wal-{first_lsn:020d}.log"


def log_file_firsts(directory: Path) -> list[int]:
    """The first lsn of every log file in ``directory``, ascending."""
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := _FILE_NAME.match(p.name)) is not None)


def log_file(directory: Path, first_lsn: int) -> Path:
    return directory / _file_name(first_lsn)


def decode_batch(payload: memoryview) -> pa.Table:
    return ipc.open_stream(pa.py_buffer(payload)).read_all()


def serialize_batch(batch: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, batch.schema) as writer:
        writer.write_table(batch)
    return sink.getvalue()


@dataclass(frozen=True)
class ScannedRecord:
    """One valid record read back: its header fields, its payload, where it ends in the file."""

    lsn: int
    kind: str
    partition_id: int
    timestamp: int
    payload: memoryview
    end: int


def scan_records(f: BinaryIO, expected_lsn: int) -> Iterator[ScannedRecord]:
    """Valid records of one file, in order; stops at the first torn, corrupt or out-of-sequence
    record (``expected_lsn``: the lsn the first record must carry). Reads record by record, so
    each payload is its own buffer and a kept batch never pins the rest of the file."""
    offset = 0
    while len(header := f.read(_HEADER.size)) == _HEADER.size:
        magic, crc, length, lsn, partition_id, timestamp, kind_len = _HEADER.unpack(header)
        if magic != MAGIC or lsn != expected_lsn:
            return
        # A corrupt length reads to the end of the file and is caught by the size check.
        body = f.read(kind_len + length)
        if len(body) != kind_len + length or zlib.crc32(header[_CRC_FROM:], zlib.crc32(body)) != crc:
            return
        try:
            kind = body[:kind_len].decode("utf-8")
        except UnicodeDecodeError:
            return
        offset += _HEADER.size + len(body)
        yield ScannedRecord(lsn, kind, partition_id, timestamp, memoryview(body)[kind_len:], offset)
        expected_lsn += 1


class WriteAheadLog:
    """Append-only, crash-safe log of write batches for one collection (a CollectionLog).

    Locks: ``_cond`` (a Condition on one mutex) guards the active file descriptor, its size,
    the lsn counters and the list of files; records are written under it so they land in lsn
    order. ``_flushing`` says a leader is fsyncing outside the lock; while it is set nobody
    closes or rotates the descriptor it is syncing.
    """

    def __init__(
        self,
        directory: Path,
        *,
        fsync: bool = True,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        on_append: Callable[[], None] | None = None,
    ) -> None:
        """``on_append``: told of each record once it is in the file (and durable), before
        ``append`` returns (the query workers' change counter, change_counter.py)."""
        self.directory = Path(directory)
        self._on_append = on_append
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._max_file_bytes = max_file_bytes
        self._cond = threading.Condition(threading.Lock())
        self._flushing = False
        self._failure: BaseException | None = None
        self._closed = False
        # First lsn of every file, ascending; the last one is the active file.
        self._firsts: list[int] = []
        self._next_lsn = self._recover()
        self._written_lsn = self._next_lsn - 1
        self._durable_lsn = self._written_lsn
        active = self._path(self._firsts[-1])
        self._fd = os.open(active, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._active_size = os.fstat(self._fd).st_size
        fsync_dir(self.directory)

    def _path(self, first_lsn: int) -> Path:
        return self.directory / _file_name(first_lsn)

    def _unlink(self, firsts: list[int]) -> None:
        for first in firsts:
            self._path(first).unlink()

    def _recover(self) -> int:
        """Find the valid records, cut the log after the last one; returns the next lsn."""
        firsts = log_file_firsts(self.directory)
        next_lsn = firsts[0] if firsts else 1
        for i, first in enumerate(firsts):
            if first != next_lsn:
                # A gap in the lsn sequence: this file and all later ones are unreachable.
                self._unlink(firsts[i:])
                firsts = firsts[:i]
                break
            path = self._path(first)
            valid_end = 0
            with open(path, "rb") as f:
                for rec in scan_records(f, first):
                    valid_end = rec.end
                    next_lsn = rec.lsn + 1
            if valid_end < path.stat().st_size:
                # The torn or corrupt tail, and every later file, go.
                with open(path, "r+b") as f:
                    f.truncate(valid_end)
                    os.fsync(f.fileno())
                self._unlink(firsts[i + 1 :])
                firsts = firsts[: i + 1]
                break
        if not firsts:
            firsts = [next_lsn]
            self._path(next_lsn).touch()
        self._firsts = firsts
        return next_lsn

    # -- writing ----------------------------------------------------------------------------
    def append(
        self, kind: str, partition_id: int, timestamp: int, batch: pa.Table, write_id: str | None = None
    ) -> int:
        """Append one record; returns its lsn once it is durable (fsync'd, when fsync is on).
        ``write_id`` is not kept: the file log has no room for it, and only a cluster proxy,
        whose writer logs in PostgreSQL, tags writes (storage/log.py)."""
        payload = serialize_batch(batch)
        kind_bytes = kind.encode("utf-8")
        # The costly part of the crc (the body) is computed before taking the lock.
        body_crc = zlib.crc32(payload, zlib.crc32(kind_bytes))
        with self._cond:
            self._check_usable()
            if self._active_size >= self._max_file_bytes:
                self._rotate_locked()
            lsn = self._next_lsn
            unsigned = _HEADER.pack(MAGIC, 0, payload.size, lsn, partition_id, timestamp, len(kind_bytes))
            crc = zlib.crc32(unsigned[_CRC_FROM:], body_crc)
            header = _HEADER.pack(MAGIC, crc, payload.size, lsn, partition_id, timestamp, len(kind_bytes))
            self._write_locked([header, kind_bytes, memoryview(payload)])
            self._next_lsn = lsn + 1
            self._written_lsn = lsn
            if self._fsync:
                self._wait_durable_locked(lsn)
            if self._on_append is not None:
                self._on_append()
            return lsn

    def _check_usable(self) -> None:
        if self._closed:
            raise UnexpectedError("write-ahead log is closed")
        if self._failure is not None:
            raise UnexpectedError(f"write-ahead log failed earlier: {self._failure}")

    def _write_locked(self, parts: list[bytes | memoryview]) -> None:
        start = self._active_size
        total = sum(len(p) for p in parts)
        try:
            written = 0
            views = [memoryview(p).cast("B") for p in parts]
            while written < total:
                # writev may write less than asked: skip what went out and write the rest.
                skip, pending = written, []
                for v in views:
                    if skip >= len(v):
                        skip -= len(v)
                        continue
                    pending.append(v[skip:])
                    skip = 0
                written += os.writev(self._fd, pending)
        except OSError as exc:
            # Never leave half a record in the middle of the log: cut it off again.
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                self._failure = exc
            raise UnexpectedError(f"write-ahead log write failed: {exc}") from exc
        self._active_size = start + total

    def _wait_durable_locked(self, lsn: int) -> None:
        while self._durable_lsn < lsn:
            if self._failure is not None:
                raise UnexpectedError(f"write-ahead log fsync failed: {self._failure}")
            if self._flushing:
                self._cond.wait()
                continue
            # Leader: one fsync for every record written so far.
            self._flushing = True
            target, fd = self._written_lsn, self._fd
            self._cond.release()
            error: OSError | None = None
            try:
                os.fsync(fd)
            except OSError as exc:
                error = exc
            finally:
                self._cond.acquire()
                self._flushing = False
            if error is not None:
                self._failure = error
            else:
                self._durable_lsn = max(self._durable_lsn, target)
            self._cond.notify_all()

    def _settle_locked(self) -> None:
        """Wait for a running leader, then make everything written durable (before a close)."""
        while self._flushing:
            self._cond.wait()
        if self._fsync and self._durable_lsn < self._written_lsn:
            os.fsync(self._fd)
            self._durable_lsn = self._written_lsn
            self._cond.notify_all()

    def _rotate_locked(self) -> None:
        self._settle_locked()
        os.close(self._fd)
        self._firsts.append(self._next_lsn)
        self._fd = os.open(self._path(self._next_lsn), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._active_size = 0
        fsync_dir(self.directory)

    # -- reading and trimming ---------------------------------------------------------------
    def replay(self, after_lsn: int = 0) -> Iterator[WalRecord]:
        """Records with lsn > after_lsn in order, up to what was written when replay began."""
        with self._cond:
            firsts = list(self._firsts)
            last_lsn = self._written_lsn
        for i, first in enumerate(firsts):
            next_first = firsts[i + 1] if i + 1 < len(firsts) else last_lsn + 1
            if next_first - 1 <= after_lsn or first > last_lsn:
                continue
            try:
                f = open(self._path(first), "rb")
            except FileNotFoundError:  # trimmed meanwhile: it only held records already sealed
                continue
            with f:
                for rec in scan_records(f, first):
                    if rec.lsn > last_lsn:
                        return
                    if rec.lsn > after_lsn:
                        batch = decode_batch(rec.payload)
                        yield WalRecord(rec.lsn, rec.kind, rec.partition_id, rec.timestamp, batch)

    def find_write(self, write_id: str) -> WalRecord | None:
        """None: the file log keeps no write ids (``append``)."""
        return None

    def trim(self, up_to_lsn: int) -> None:
        """Delete every file that holds only records with lsn <= up_to_lsn."""
        with self._cond:
            self._check_usable()
            if self._active_size > 0 and self._written_lsn <= up_to_lsn:
                self._rotate_locked()
            keep_from = 0
            for i in range(len(self._firsts) - 1):
                if self._firsts[i + 1] - 1 <= up_to_lsn:
                    self._path(self._firsts[i]).unlink(missing_ok=True)
                    keep_from = i + 1
            if keep_from:
                self._firsts = self._firsts[keep_from:]
                fsync_dir(self.directory)

    @property
    def last_lsn(self) -> int:
        """The lsn of the last record appended (0 when the log never held one)."""
        with self._cond:
            return self._written_lsn

    def files(self) -> list[Path]:
        with self._cond:
            return [self._path(first) for first in self._firsts]

    def close(self) -> None:
        """Make everything written durable and close; idempotent."""
        with self._cond:
            if self._closed:
                return
            try:
                self._settle_locked()
            finally:
                self._closed = True
                os.close(self._fd)
