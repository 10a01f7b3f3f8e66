"""Reading a log another process writes: complete records only, nothing ever changed on
disk, rotation followed, and trimmed records it never read reported as a gap."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from sheafdb.storage.wal import WriteAheadLog
from sheafdb.storage.wal_tail import LogGap, WalTail


def _batch(value: int) -> pa.Table:
    return pa.table({"x": [value]})


def test_a_tail_reads_what_was_appended_since_its_last_read(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, fsync=False, max_file_bytes=400)  # rotates every few records
    tail = WalTail(tmp_path)
    assert tail.read_new() == []
    seen: list[int] = []
    for i in range(30):
        wal.append("insert", 1, i, _batch(i))
        if i % 4 == 0:
            seen += [r.batch.column("x")[0].as_py() for r in tail.read_new()]
    seen += [r.batch.column("x")[0].as_py() for r in tail.read_new()]
    assert seen == list(range(30))
    assert len(wal.files()) > 3
    wal.close()


def test_a_half_written_record_is_left_for_the_next_read_and_the_file_untouched(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, fsync=False)
    wal.append("insert", 1, 1, _batch(1))
    wal.close()
    (path,) = wal.files()
    whole = path.read_bytes()
    wal = WriteAheadLog(tmp_path, fsync=False)
    wal.append("insert", 1, 2, _batch(2))
    wal.close()
    second = path.read_bytes()[len(whole) :]
    path.write_bytes(whole + second[:10])  # the writer is in the middle of record 2
    tail = WalTail(tmp_path)
    assert [r.lsn for r in tail.read_new()] == [1]
    assert path.stat().st_size == len(whole) + 10  # a reader never truncates
    with open(path, "ab") as f:
        f.write(second[10:])
        os.fsync(f.fileno())
    assert [r.lsn for r in tail.read_new()] == [2]


def test_records_trimmed_before_they_were_read_are_a_gap(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, fsync=False, max_file_bytes=200)
    tail = WalTail(tmp_path)
    wal.append("insert", 1, 1, _batch(1))
    assert [r.lsn for r in tail.read_new()] == [1]
    for i in range(2, 10):
        wal.append("insert", 1, i, _batch(i))
    wal.trim(8)  # a seal made lsns up to 8 a segment
    with pytest.raises(LogGap):
        tail.read_new()
    wal.close()
