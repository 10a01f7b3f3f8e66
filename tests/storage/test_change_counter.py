"""The shared change counters (storage/change_counter.py) between real processes: a bump in
the primary's process is read by another's mapping, the counters are independent, and a
primary that starts again never takes a counter back to a value a reader saw."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sheafdb.storage.change_counter import COUNTERS_FILE, ChangeCounter, Slot

_BUMP = """
import sys
from pathlib import Path
from sheafdb.storage.change_counter import ChangeCounter, Slot
counter = ChangeCounter.publish(Path(sys.argv[1]), Slot.DATA)
print(counter.value(), flush=True)
for _ in range(int(sys.argv[2])):
    counter.bump()
print(counter.value(), flush=True)
"""


def _publish_in_another_process(data_dir: Path, bumps: int) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", _BUMP, str(data_dir), str(bumps)], check=True, capture_output=True, text=True
    )
    started, ended = done.stdout.split()
    return int(started), int(ended)


def test_another_process_sees_every_bump(tmp_path: Path) -> None:
    started, ended = _publish_in_another_process(tmp_path, 5)
    assert ended == started + 5
    reader = ChangeCounter.follow(tmp_path, Slot.DATA)
    try:
        assert reader.value() == ended
        assert not reader.writable
        # A primary that starts again moves past everything read before, then counts on.
        again, last = _publish_in_another_process(tmp_path, 3)
        assert again > ended and last == again + 3
        assert reader.value() == last  # the same mapping: the file was never replaced
    finally:
        reader.close()


def test_counters_are_independent(tmp_path: Path) -> None:
    data = ChangeCounter.publish(tmp_path, Slot.DATA)
    credentials = ChangeCounter.publish(tmp_path, Slot.CREDENTIALS)
    follower = ChangeCounter.follow(tmp_path, Slot.CREDENTIALS)
    try:
        before = follower.value()
        data.bump()
        assert follower.value() == before
        credentials.bump()
        assert follower.value() == before + 1
        assert (tmp_path / COUNTERS_FILE).stat().st_size >= 16
    finally:
        for counter in (data, credentials, follower):
            counter.close()


def test_a_follower_without_a_primary_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ChangeCounter.follow(tmp_path, Slot.DATA)
