from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheafdb.storage.wal import WalRecord, WriteAheadLog

from .storage_tables import schemas_and_tables


def small_batch(i: int) -> pa.Table:
    return pa.table({"pk": pa.array([i, i + 1], pa.int64()), "s": pa.array([f"row{i}", None])})


def records(wal: WriteAheadLog, after: int = 0) -> list[WalRecord]:
    return list(wal.replay(after))


@settings(max_examples=30, deadline=None)
@given(batches=st.lists(schemas_and_tables(max_rows=6), min_size=1, max_size=3))
def test_every_field_type_round_trips_through_the_log(batches: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wal = WriteAheadLog(Path(tmp), fsync=False)
        for i, (_, table) in enumerate(batches):
            assert wal.append("upsert" if i % 2 else "insert", 7 + i, 1000 + i, table) == i + 1
        wal.close()
        reopened = WriteAheadLog(Path(tmp), fsync=False)
        replayed = records(reopened)
        reopened.close()
    assert [r.lsn for r in replayed] == list(range(1, len(batches) + 1))
    for i, (rec, (_, table)) in enumerate(zip(replayed, batches, strict=True)):
        assert (rec.kind, rec.partition_id, rec.timestamp) == (
            "upsert" if i % 2 else "insert",
            7 + i,
            1000 + i,
        )
        assert rec.batch.schema == table.schema
        assert rec.batch.equals(table)


def test_replay_after_lsn_and_reopen_continues_the_sequence(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, fsync=False)
    for i in range(5):
        wal.append("insert", 1, i, small_batch(i))
    assert [r.lsn for r in records(wal, after=3)] == [4, 5]
    wal.close()
    wal = WriteAheadLog(tmp_path, fsync=False)
    assert wal.last_lsn == 5
    assert wal.append("delete", 1, 9, small_batch(9)) == 6
    assert [r.timestamp for r in records(wal)] == [0, 1, 2, 3, 4, 9]
    wal.close()


def _written_log(num_records: int) -> tuple[bytes, list[pa.Table]]:
    with tempfile.TemporaryDirectory() as tmp:
        wal = WriteAheadLog(Path(tmp), fsync=False)
        batches = [small_batch(i) for i in range(num_records)]
        for i, batch in enumerate(batches):
            wal.append("insert", 1, i, batch)
        wal.close()
        (only_file,) = Path(tmp).iterdir()
        return only_file.read_bytes(), batches


LOG_BYTES, LOG_BATCHES = _written_log(6)


def _recover_from(data: bytes) -> Iterator[tuple[Path, WriteAheadLog]]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "wal-00000000000000000001.log").write_bytes(data)
        wal = WriteAheadLog(Path(tmp), fsync=False)
        try:
            yield Path(tmp), wal
        finally:
            wal.close()


def _assert_prefix_then_appendable(data: bytes) -> int:
    for _, wal in _recover_from(data):
        replayed = records(wal)
        count = len(replayed)
        assert [r.lsn for r in replayed] == list(range(1, count + 1))
        assert all(r.batch.equals(LOG_BATCHES[r.lsn - 1]) for r in replayed)
        # After recovery the log takes new records cleanly right after the surviving prefix.
        assert wal.append("insert", 1, 99, small_batch(99)) == count + 1
        assert [r.lsn for r in records(wal)] == list(range(1, count + 2))
    return count


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, len(LOG_BYTES)))
def test_torn_tail_replays_a_prefix(cut: int) -> None:
    count = _assert_prefix_then_appendable(LOG_BYTES[:cut])
    assert count == 6 if cut == len(LOG_BYTES) else count < 6


@settings(max_examples=60, deadline=None)
@given(position=st.integers(0, len(LOG_BYTES) - 1), flip=st.integers(1, 255))
def test_corrupt_byte_replays_the_records_before_it(position: int, flip: int) -> None:
    data = bytearray(LOG_BYTES)
    data[position] ^= flip
    record_size = len(LOG_BYTES) // 6  # all six records have the same size
    assert _assert_prefix_then_appendable(bytes(data)) == position // record_size


def _counting_fsync(monkeypatch: pytest.MonkeyPatch, delay: float = 0.0) -> Callable[[], int]:
    """Wrap the real os.fsync to count calls (and optionally make each one slow)."""
    real_fsync = os.fsync
    calls = [0]
    lock = threading.Lock()

    def fsync(fd: int) -> None:
        with lock:
            calls[0] += 1
        time.sleep(delay)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return lambda: calls[0]


def test_each_lone_append_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = WriteAheadLog(tmp_path, fsync=True)
    count = _counting_fsync(monkeypatch)
    for i in range(5):
        wal.append("insert", 1, i, small_batch(i))
    assert count() == 5
    wal.close()
    unsynced = WriteAheadLog(tmp_path / "nosync", fsync=False)
    before = count()
    unsynced.append("insert", 1, 1, small_batch(1))
    assert count() == before
    unsynced.close()


def test_concurrent_appenders_share_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = WriteAheadLog(tmp_path, fsync=True)
    count = _counting_fsync(monkeypatch, delay=0.01)
    threads, per_thread = 8, 10
    start = threading.Barrier(threads)
    lsns: dict[int, list[int]] = {}

    def appender(t: int) -> None:
        start.wait()
        lsns[t] = [wal.append("insert", t, i, small_batch(t * 100 + i)) for i in range(per_thread)]

    workers = [threading.Thread(target=appender, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    total = threads * per_thread
    assert sorted(lsn for ls in lsns.values() for lsn in ls) == list(range(1, total + 1))
    assert all(ls == sorted(ls) for ls in lsns.values())
    assert count() <= total // 2  # while one fsync runs, the other appenders queue behind it
    replayed = records(wal)
    assert [r.lsn for r in replayed] == list(range(1, total + 1))
    for r in replayed:
        i = lsns[r.partition_id].index(r.lsn)
        assert r.batch.equals(small_batch(r.partition_id * 100 + i))
    wal.close()


def test_rotation_and_trim(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, fsync=False, max_file_bytes=1024)
    for i in range(20):
        wal.append("insert", 1, i, small_batch(i))
    assert len(wal.files()) > 3
    wal.trim(10)
    remaining = [r.lsn for r in records(wal)]
    assert remaining[0] <= 11 and remaining[-1] == 20
    assert remaining == list(range(remaining[0], 21))
    assert len(remaining) < 20
    wal.close()

    wal = WriteAheadLog(tmp_path, fsync=False, max_file_bytes=1024)
    assert [r.lsn for r in records(wal)] == remaining
    wal.trim(20)
    assert records(wal) == []
    assert len(wal.files()) == 1
    wal.close()

    # Trimming everything keeps the lsn sequence going after a restart.
    wal = WriteAheadLog(tmp_path, fsync=False, max_file_bytes=1024)
    assert wal.last_lsn == 20
    assert wal.append("insert", 1, 21, small_batch(21)) == 21
    assert [r.lsn for r in records(wal)] == [21]
    wal.close()


def test_a_missing_middle_file_cuts_the_log_there(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, fsync=False, max_file_bytes=512)
    for i in range(12):
        wal.append("insert", 1, i, small_batch(i))
    files = wal.files()
    wal.close()
    assert len(files) >= 3
    files[1].unlink()
    wal = WriteAheadLog(tmp_path, fsync=False, max_file_bytes=512)
    kept = [r.lsn for r in records(wal)]
    assert kept == list(range(1, len(kept) + 1)) and len(kept) < 12
    assert wal.append("insert", 1, 0, small_batch(0)) == len(kept) + 1
    wal.close()


def test_closed_log_refuses_appends(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    wal.close()
    wal.close()
    with pytest.raises(Exception, match="closed"):
        wal.append("insert", 1, 1, small_batch(1))


@pytest.mark.parametrize("zeros", [1, 40, 4096, 1 << 20])
def test_a_zero_filled_tail_reads_as_the_end_of_the_log(zeros: int) -> None:
    """What a crash can leave after the last record (a size extended before its data landed,
    or preallocated space): zeros are no record, they are cut away and appends follow."""
    assert _assert_prefix_then_appendable(LOG_BYTES + bytes(zeros)) == 6
    for path, wal in _recover_from(LOG_BYTES + bytes(zeros)):
        assert path.joinpath("wal-00000000000000000001.log").stat().st_size == len(LOG_BYTES)
        assert wal.last_lsn == 6


def test_zeros_in_place_of_a_whole_record_end_the_log_there() -> None:
    record_size = len(LOG_BYTES) // 6
    data = LOG_BYTES[: 2 * record_size] + bytes(record_size) + LOG_BYTES[3 * record_size :]
    assert _assert_prefix_then_appendable(data) == 2
