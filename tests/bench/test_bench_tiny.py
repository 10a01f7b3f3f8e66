"""The benchmark harness, run tiny end to end: it must produce its JSON and its report.

Real SheafDB server process and real faiss; Milvus Lite is left out (a big download) and an
unknown system is asked for to check it is skipped with a line saying so. The embedded peers are
asked for with an empty venv dir and --no-install, as in CI (which must not install them): they
are skipped, saying why. A peer whose venv exists (SHEAFDB_BENCH_PEER_VENVS, default
.bench-peers/) is run for real at a tiny size. No timing asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PEER_VENVS = Path(os.environ.get("SHEAFDB_BENCH_PEER_VENVS", REPO / ".bench-peers"))
sys.path.insert(0, str(REPO / "bench"))

from harness.dataset import clustered_vectors  # noqa: E402 - bench/ is not a package on the path
from harness.targets import target_checks  # noqa: E402


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    root = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [
            sys.executable, str(REPO / "bench" / "run.py"),
            "--n", "2000", "--dim", "16", "--repeats", "1",
            "--systems", "sheafdb,faiss,no-such-system",
            "--peers", "chroma,lancedb", "--peer-venv-dir", str(root / "no-venvs"),
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
    assert "SKIP chroma: chromadb is not installed in" in done.stdout
    assert "SKIP lancedb: lancedb is not installed in" in done.stdout


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
        "quick": False,
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
        "pk_vector_files_mib",
        "partial_load_added_mib",
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
    assert "Skipped chroma" in text and "Skipped lancedb" in text
    assert "| a restarted server answers within 2 s and comes back loaded |" in text
    assert "| filtered recall@10 ≥ 0.99 at every selectivity 0.1%–50% |" in text
    assert "| search p50, nq=1, ef=64 | ms | lower |" in text


def _summary(figures: dict[str, dict[str, float]]) -> dict[str, dict[str, dict[str, float]]]:
    return {s: {k: {"min": v, "median": v, "max": v} for k, v in m.items()} for s, m in figures.items()}


def test_targets_are_judged_in_run_and_against_the_issues_reference() -> None:
    summary = _summary(
        {
            "sheafdb": {"search_p50_ms_ef64": 1.0, "recall10_ef64": 0.99, "filtered_recall10_num_5pct": 0.95},
            "milvus-lite": {"search_p50_ms_ef64": 30.0},
            "faiss": {"recall10_ef64": 1.0},
        }
    )
    checks = {c.text: c for c in target_checks(summary, {"n": 100_000, "dim": 128})}
    search = checks["search p50 nq=1 ef=64 ≤ 1/40 of Milvus Lite"]
    # 1/30 of this run's Lite misses 1/40, but 1.0 ms is under the reference's 46/40 = 1.15 ms.
    assert (search.met, search.met_reference) == (False, True)
    assert checks["recall@10 at ef=64 equal to faiss's ± 0.005"].met is False
    assert checks["filtered recall@10 ≥ 0.99 at every selectivity 0.1%–50%"].met is False
    assert checks["insert rows/s ≥ 3.5 × Milvus Lite"].met is None
    elsewhere = {c.text: c for c in target_checks(summary, {"n": 20_000, "dim": 768})}
    assert elsewhere["search p50 nq=1 ef=64 ≤ 1/40 of Milvus Lite"].met_reference is None


def test_vectors_drawn_in_chunks_are_the_same_stream() -> None:
    import harness.dataset as dataset

    whole = clustered_vectors(3000, 24, seed=5)
    previous = dataset.GENERATE_CHUNK_ROWS
    dataset.GENERATE_CHUNK_ROWS = 700
    try:
        chunked = clustered_vectors(3000, 24, seed=5)
    finally:
        dataset.GENERATE_CHUNK_ROWS = previous
    assert chunked.shape == (3000, 24) and chunked.dtype == whole.dtype
    assert float(abs(chunked - whole).max()) < 1e-4  # same draws; only BLAS blocking differs


@pytest.mark.skipif(
    not any((PEER_VENVS / p / "bin" / "python").exists() for p in ("chroma", "lancedb")),
    reason=f"no peer venv under {PEER_VENVS} (CI does not install Chroma or LanceDB)",
)
def test_installed_peers_run_on_the_same_data(tmp_path: Path) -> None:
    peers = [p for p in ("chroma", "lancedb") if (PEER_VENVS / p / "bin" / "python").exists()]
    done = subprocess.run(
        [
            sys.executable, str(REPO / "bench" / "run.py"),
            "--n", "2000", "--dim", "16", "--repeats", "1", "--quick",
            "--systems", "faiss", "--peers", ",".join(peers), "--peer-venv-dir", str(PEER_VENVS),
            "--out", str(tmp_path / "out"), "--doc", str(tmp_path / "benchmarks.md"), "--no-install",
        ],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    for peer in peers:
        metrics = results["raw"][peer][0]["metrics"]
        assert 0.9 <= metrics["recall10_ef64"] <= 1.0  # ids map back to the same rows as the truth
        assert metrics["rss_after_load_mib"] > 0
        assert results["raw"][peer][0]["ef_sweep"]
    assert (
        "SheafDB / " + {"chroma": "Chroma", "lancedb": "LanceDB"}[peers[0]]
        in (tmp_path / "benchmarks.md").read_text()
    )
