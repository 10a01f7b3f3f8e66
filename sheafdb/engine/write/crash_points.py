"""Test-only crash injection: die like SIGKILL at a named point of a seal or compaction.

The crash tests run a real engine in a subprocess with ``SHEAFDB_TEST_CRASH_AT=<point>`` and
check what a restart recovers. ``os._exit`` skips every cleanup (no finally, no atexit, no
flush of Python buffers), which is what a kill at that instant leaves on disk. Unset in
production: the check is one environment lookup per seal step.
"""

from __future__ import annotations

import os

CRASH_ENV = "SHEAFDB_TEST_CRASH_AT"
CRASH_EXIT_CODE = 77

# The windows the data plane must survive (see sealing.py and compaction.py for the order).
SEAL_AFTER_DELETES_FILE = "seal-after-deletes-file"  # deletes registered, row segments not yet
SEAL_AFTER_SEGMENT_FILES = "seal-after-segment-files"  # a segment dir written, not registered
SEAL_AFTER_FIRST_SEGMENT = "seal-after-first-segment"  # one partition registered, others not
SEAL_BEFORE_TRIM = "seal-before-trim"  # everything registered, the log not trimmed
COMPACT_AFTER_WRITE = "compact-after-write"  # merged segment written, catalog not swapped
COMPACT_AFTER_INDEX_FILES = "compact-after-index-files"  # merged segment + its index files, no swap
COMPACT_AFTER_SWAP = "compact-after-swap"  # catalog swapped, old files still on disk
TRUNCATE_AFTER_LOG = "truncate-after-log"  # truncate record logged, catalog untouched
TRUNCATE_BEFORE_TRIM = "truncate-before-trim"  # catalog emptied, the log not trimmed
WRITE_AFTER_LOG = "write-after-log"  # a write's record is durable, not applied nor acknowledged


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os._exit(CRASH_EXIT_CODE)
