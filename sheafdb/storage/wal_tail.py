"""Reading another process's write-ahead log as it grows (``serve --workers N``).

A query worker follows the primary's log of a collection without ever writing to it: it
never truncates a torn tail (that may be a record the primary is writing right now) and
never creates a file. Records are read from where the last read stopped; a record the
primary has not finished writing looks torn and is read next time. Every acknowledged write
is in the file before its acknowledgement (``WriteAheadLog.append`` returns after the
write), and a page written by one process is seen by the next read of another, so a read
that reaches the end of the log has every acknowledged record.

When the primary trims files the tail has not read (a seal made their rows a segment), the
next record is gone: ``LogGap`` says so, and the reader must take the catalog again.

Not thread-safe: one caller at a time (the follower holds its collection's lock).
"""

from __future__ import annotations

import os
from pathlib import Path

from sheafdb.storage.log import LogGap
from sheafdb.storage.wal import WalRecord, decode_batch, log_file, log_file_firsts, scan_records

__all__ = ["LogGap", "WalTail"]


class WalTail:
    """A LogTail of the file log. Reads from the oldest record the log holds (its reader
    skips what is sealed), then on."""

    # The file log lives apart from the catalog: its reader asks the catalog itself.
    catalog_counter: int | None = None
    credential_counter: int | None = None

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.next_lsn: int | None = None  # None: nothing read yet
        # The file being read (its first lsn) and the offset after the last record read in it.
        self._first: int | None = None
        self._offset = 0
        # (first, next lsn) -> the paths the fast path stats, as strings made once: building a
        # Path costs more than its stat.
        self._paths: tuple[tuple[int, int | None], str, str] | None = None

    def read_new(self) -> list[WalRecord]:
        """Every complete record past the last one read (nothing new: two stats)."""
        records: list[WalRecord] = []
        while True:
            if self._first is None and not self._find_file():
                return records
            assert self._first is not None
            path, _ = self._current_paths()
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:  # trimmed: look for the record in the files left
                self._first = None
                continue
            if size > self._offset:
                records.extend(self._read_from(Path(path)))
            # The primary rotates to a file named by the next lsn once this one is full.
            following = self.next_lsn
            _, following_path = self._current_paths()
            if following is None or following == self._first or not os.path.exists(following_path):
                return records
            self._first, self._offset = following, 0

    def _current_paths(self) -> tuple[str, str]:
        """(the file being read, the file the next lsn would start), as strings."""
        assert self._first is not None
        key = (self._first, self.next_lsn)
        if self._paths is None or self._paths[0] != key:
            following = "" if self.next_lsn is None else str(log_file(self.directory, self.next_lsn))
            self._paths = (key, str(log_file(self.directory, self._first)), following)
        return self._paths[1], self._paths[2]

    def _find_file(self) -> bool:
        """Point at the file holding ``next_lsn``; False when it is not written yet."""
        if not self.directory.is_dir():
            return False
        firsts = log_file_firsts(self.directory)
        if self.next_lsn is None:
            if not firsts:
                return False
            self.next_lsn = firsts[0]
        holding = [first for first in firsts if first <= self.next_lsn]
        if not holding:
            if firsts:
                raise LogGap(f"log {self.directory} starts at {firsts[0]}, past {self.next_lsn}")
            return False
        self._first, self._offset = holding[-1], 0
        return True

    def _read_from(self, path: Path) -> list[WalRecord]:
        assert self._first is not None
        records: list[WalRecord] = []
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return records
        with f:
            f.seek(self._offset)
            expected = self._first if self._offset == 0 else self.next_lsn
            assert expected is not None
            base = self._offset
            for rec in scan_records(f, expected):
                self._offset = base + rec.end
                if self.next_lsn is not None and rec.lsn < self.next_lsn:
                    continue  # a file read from its start: records before the tail's position
                records.append(
                    WalRecord(rec.lsn, rec.kind, rec.partition_id, rec.timestamp, decode_batch(rec.payload))
                )
                self.next_lsn = rec.lsn + 1
        return records
