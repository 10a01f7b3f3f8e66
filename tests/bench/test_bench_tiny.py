"""The benchmark harness, run tiny end to end: it must produce its JSON and its report.

Real SheafDB server process and real faiss; Milvus Lite is left out (a big download) and an
unknown system is asked for to check it is skipped with a line saying so. No timing asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    root = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [
            sys.executable, str(REPO / "bench" / "run.py"),
            "--n", "2000", "--dim", "16", "--repeats", "1",
            "--systems", "sheafdb,faiss,no-such-system",
            "--out", str(root / "out"), "--doc", str(root / "docs" / "benchmarks.md"), "--no-install",
        ],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    return done, root


def test_harness_succeeds_and_says_what_it_skipped(
    tiny_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    done, _ = tiny_run
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SKIP no-such-system: unknown system" in done.stdout


def test_results_json_holds_both_systems(tiny_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, root = tiny_run
    results = json.loads((root / "out" / "results.json").read_text())
    assert results["config"] == {
        "n": 2000,
        "dim": 16,
        "repeats": 1,
        "metric": "L2",
        "M": 16,
        "efConstruction": 200,
    }
    assert set(results["raw"]) == {"sheafdb", "faiss"}
    assert results["errors"] == []
    sheaf = results["raw"]["sheafdb"][0]
    for key in (
        "insert_rows_per_s",
        "load_s",
        "rss_after_load_mib",
        "search_p50_ms_ef64",
        "restart_to_serving_s",
    ):
        assert key in sheaf["metrics"]
    # The workload's answers are checked against the exact ground truth, so recall means something.
    assert sheaf["metrics"]["count_filtered_correct"] == 1.0
    assert 0.0 <= sheaf["metrics"]["recall10_ef64"] <= 1.0
    assert sheaf["rss_trace"]["samples"] and sheaf["ef_sweep"]
    assert results["summary"]["faiss"]["search_p50_ms_ef64"]["median"] > 0


def test_report_has_ratios_machine_and_command(
    tiny_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, root = tiny_run
    text = (root / "docs" / "benchmarks.md").read_text()
    assert "SheafDB / faiss" in text
    assert "bench/run.py --n 2000 --dim 16" in text
    assert " cores, " in text
    assert "Skipped no-such-system" in text
    assert "| search p50, nq=1, ef=64 | ms | lower |" in text
