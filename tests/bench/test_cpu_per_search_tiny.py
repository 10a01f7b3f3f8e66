"""bench/cpu_per_search.py end to end at a tiny size: it builds, serves with --workers 1 and
2, and writes its table (the figures themselves are not judged here: tests never time)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_bench_measures_both_servers_and_writes_its_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Report\n")
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "cpu_per_search.py"),
            *("--rows", "2000", "--seconds", "0.5", "--rounds", "1", "--clients", "4"),
            *("--doc", str(doc)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    section = doc.read_text()
    assert "<!-- section: cpu-per-search -->" in section
    assert re.search(r"faiss alone .*: \d+ us CPU", section)
    for workers in (1, 2):
        row = re.search(rf"^\| {workers} \| [\d,]+ \| [\d.]+ \| [\d,]+ \| [\d.]+x \|$", section, re.M)
        assert row is not None, section


@pytest.mark.slow
def test_the_bench_serves_a_baseline_commit_in_turn(tmp_path: Path) -> None:
    """``--baseline REV``: that commit's code and this tree's, each with --workers 1 and 2."""
    doc = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "cpu_per_search.py"),
            *("--rows", "2000", "--seconds", "0.5", "--rounds", "1", "--clients", "2"),
            *("--baseline", "HEAD", "--doc", str(doc)),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    section = doc.read_text()
    for code in ("before", "after"):
        for workers in (1, 2):
            row = rf"^\| {code} `\w+` \| {workers} \| [\d,]+ \| [\d.]+ \| [\d,]+ \| [\d.]+x \|$"
            assert re.search(row, section, re.M) is not None, section
