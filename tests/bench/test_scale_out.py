"""bench/scale_out.py's flags and the section it writes into docs/benchmarks.md (no server run:
the figures are given; nothing is timed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

from harness.doc_sections import put_section  # noqa: E402
from scale_out import CLUSTER, SINGLE, TWO_WORKERS, Results, parse_args, render  # noqa: E402


def test_defaults_and_flags() -> None:
    args = parse_args([])
    assert args.clients == [1, 4, 16] and args.replicas == 2 and not args.no_cluster
    assert args.doc == REPO / "docs" / "benchmarks.md"
    args = parse_args(["--clients", "2,8", "--replicas", "1", "--no-cluster", "--rows", "500"])
    assert (args.clients, args.replicas, args.no_cluster, args.rows) == ([2, 8], 1, True, 500)


@pytest.mark.parametrize("argv", [["--replicas", "3"], ["--clients", "0,4"], ["--clients", "a"]])
def test_bad_flags_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def figures(servers: list[str], clients: list[int]) -> Results:
    results = Results()
    for rank, server in enumerate(servers, start=1):
        results.latency[server] = [(1000.0 * rank, 3000.0 * rank), (1200.0 * rank, 2000.0 * rank)]
        for count in clients:
            results.throughput[(server, count)] = [
                (100.0 * rank * count, 900.0, 2.5),
                (300.0 * rank * count, 700.0, 3.5),
            ]
    return results


def test_the_section_holds_every_server_and_replaces_itself(tmp_path: Path) -> None:
    args = parse_args(["--clients", "1,16", "--rounds", "2"])
    results = figures([SINGLE, TWO_WORKERS, CLUSTER], args.clients)
    results.cluster_cpu = {"proxy": 1.0, "writer": 1.0, "query workers": 2.0}
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Report\n\nbody\n")
    section = render(results, args, ".venv/bin/python bench/scale_out.py", "a machine, 2 cores", "today")
    put_section(doc, "scale-out", section)
    put_section(doc, "scale-out", section)
    text = doc.read_text()
    assert text.count("<!-- section: scale-out -->") == 1 and text.startswith("# Report\n\nbody\n")
    assert "Command: `.venv/bin/python bench/scale_out.py`" in text and "a machine, 2 cores" in text
    # medians over the two rounds: 200 searches/s per client and server rank, ratios against one process
    assert "| 16 | `--workers 1` | 3,200 | 3.00 | 800 | 1.00x |" in text
    assert "| 16 | `cluster` | 9,600 | 3.00 | 800 | 3.00x |" in text
    assert "| `cluster` | 3.30 | 7.50 | +2.20 | +5.00 |" in text
    assert "the cluster's CPU went while it was measured: proxy 25%, writer 25%, query workers 50%." in text


def test_a_run_without_the_cluster_says_why(tmp_path: Path) -> None:
    args = parse_args(["--no-cluster"])
    results = figures([SINGLE, TWO_WORKERS], args.clients)
    results.cluster_note = "not measured in this run (--no-cluster)."
    section = render(results, args, "cmd", "m", "today")
    assert "Cluster: not measured in this run (--no-cluster)." in section
    assert (
        "| `cluster`" not in section
        and "cluster's CPU" not in section
        and "| 4 | `--workers 2` | 1,600 |" in section
    )
