"""bench/search_handler_cpu.py end to end at a tiny size, with a baseline commit measured in
turn (the figures themselves are not judged here: tests never time)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_bench_measures_the_handler_and_its_parts_for_both_trees() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "search_handler_cpu.py"),
            *("--rows", "2000", "--calls", "300", "--rounds", "1", "--baseline", "HEAD"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for tree in ("before", "after"):
        row = re.search(rf"^{tree} \S+\+?\s+(?:[\d.]+\s+){{6}}[\d.]+$", done.stdout, re.M)
        assert row is not None, done.stdout
