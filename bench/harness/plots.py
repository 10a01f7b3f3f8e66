"""The two pictures, drawn from the results JSON: ``python plots.py RESULTS.json OUT_DIR``.

Runs as its own script so it can use whichever interpreter has matplotlib (``.venv`` with the
``bench`` extra, or the bench venv); it prints the file names it wrote, one a line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

COLOURS = {
    "sheafdb": "tab:blue",
    "milvus-lite": "tab:orange",
    "faiss": "tab:green",
    "chroma": "tab:purple",
    "lancedb": "tab:red",
}
IN_PROCESS = ("faiss", "chroma", "lancedb")  # no RPC in their figures: the legend says so


def recall_vs_qps(results: dict[str, Any], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for system, runs in results["raw"].items():
        sweep = next((r["ef_sweep"] for r in runs if r["ef_sweep"]), [])
        if not sweep:
            continue
        ax.plot(
            [p["recall"] for p in sweep],
            [p["qps"] for p in sweep],
            "o-",
            label=f"{system} (in-process)" if system in IN_PROCESS else system,
            color=COLOURS.get(system),
        )
        for point in sweep:
            ax.annotate(
                f"ef={point['ef']}",
                (point["recall"], point["qps"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(3, 3),
            )
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second (nq=1, one client, log scale)")
    ax.set_title(
        f"Recall vs QPS, HNSW M=16 efC=200, {results['config']['n']:,} × {results['config']['dim']}-d"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path = out / "recall_vs_qps.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rss_over_time(results: dict[str, Any], out: Path) -> Path:
    traced = {
        s: next((r["rss_trace"] for r in runs if r["rss_trace"]), None) for s, runs in results["raw"].items()
    }
    traced = {s: t for s, t in traced.items() if t}
    fig, axes = plt.subplots(len(traced), 1, figsize=(9, 3.2 * max(1, len(traced))), squeeze=False)
    for ax, (system, trace) in zip(axes[:, 0], traced.items(), strict=True):
        samples = trace["samples"]
        ax.plot([t for t, _ in samples], [m for _, m in samples], color=COLOURS.get(system), lw=1.2)
        top = max((m for _, m in samples), default=1.0)
        for t, phase in trace["phases"]:
            ax.axvline(t, color="grey", lw=0.6, ls="--")
            ax.text(t, top, f" {phase.strip()}", rotation=90, va="top", fontsize=7)
        ax.set_ylabel("RSS (MiB)")
        ax.set_title(f"{system}: server RSS, first repeat")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("seconds")
    path = out / "rss_over_time.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> int:
    results = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    print(recall_vs_qps(results, out).name)
    if any(r["rss_trace"] for runs in results["raw"].values() for r in runs):
        print(rss_over_time(results, out).name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
