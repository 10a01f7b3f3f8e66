"""bench/memory_timeline.py run tiny end to end against a real SheafDB server (Milvus Lite is
left out: a big download): every step is recorded, the plot is drawn, its section goes into
the report between its markers (replaced, not repeated, when written again), and bench/run.py's
rewrite of the report keeps it. No timing asserted."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

from harness.doc_sections import carry_sections  # noqa: E402
from memory_timeline import write_section  # noqa: E402 - bench/ is not a package on the path


def timeline(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, str(REPO / "bench" / "memory_timeline.py"),
            "--n", "3000", "--dim", "16", "--idle-seconds", "1", "--cycles", "2", "--systems", "sheafdb",
            "--out", str(root / "out"), "--doc", str(root / "docs" / "benchmarks.md"),
            "--png", str(root / "docs" / "benchmarks" / "memory_timeline.png"),
        ],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("timeline")
    (root / "docs").mkdir()
    (root / "docs" / "benchmarks.md").write_text("# Benchmarks\n\nwritten by bench/run.py\n")
    done = timeline(root)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def test_every_step_is_recorded_with_what_it_did(tiny: Path) -> None:
    results = json.loads((tiny / "out" / "results.json").read_text())
    steps = {s["name"]: s for s in results["runs"]["sheafdb"]["steps"]}
    assert list(steps)[:4] == [
        "started (empty)",
        "built (insert, flush, index, compact)",
        "released: the baseline",
        "full load",
    ]
    assert steps["released: the baseline"]["accounted_mib"] == 0
    assert steps["full load"]["accounted_mib"] > steps["partial load (pk, vector)"]["accounted_mib"] > 0
    assert steps["partial load (pk, vector)"]["note"].startswith("only pk and vector loaded")
    online = steps["online field change (+tag, num, text)"]["note"]
    assert online.startswith("text, tag, num loaded while serving") and ", 0 failed" in online
    assert steps["idle (no reads)"]["note"].startswith("released by sheafdb.idle_release_seconds=1")
    assert steps["idle (no reads)"]["accounted_mib"] == 0
    # (Its figure is not checked: a 1 s idle limit may release the collection again meanwhile.)
    assert steps["first read after idle"]["note"] == "reload-on-read: the read waits for the load"
    assert all(s["rss_mib"] > 0 for s in steps.values())
    assert results["runs"]["sheafdb"]["samples"]
    notes = results["runs"]["sheafdb"]["notes"]
    assert any(n.startswith("first read after the idle step, 2 cycles: ") for n in notes)
    if importlib.util.find_spec("matplotlib") is not None:  # the bench extra: drawn when there
        assert (tiny / "docs" / "benchmarks" / "memory_timeline.png").stat().st_size > 0


def test_the_section_is_replaced_and_kept_by_the_main_report(tiny: Path) -> None:
    doc = tiny / "docs" / "benchmarks.md"
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nwritten by bench/run.py\n")
    assert (
        text.count("<!-- section: memory-timeline -->")
        == 1
        == text.count("<!-- end section: memory-timeline -->")
    )
    if importlib.util.find_spec("matplotlib") is not None:
        assert "![memory over time](benchmarks/memory_timeline.png)" in text
    assert "bench/memory_timeline.py --n 3000 --dim 16" in text
    write_section(doc, (tiny / "out" / "section.md").read_text())  # what a second run does
    again = doc.read_text()
    assert again == text
    assert again.count("<!-- section: memory-timeline -->") == 1
    kept = carry_sections(again, "# Benchmarks\n\nrewritten by bench/run.py\n")
    assert kept.count("<!-- section: memory-timeline -->") == 1
    assert kept.strip().endswith("<!-- end section: memory-timeline -->")
