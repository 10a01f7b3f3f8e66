"""Turn raw per-repeat results into min/median/max, ratios, target checks and docs/benchmarks.md."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from harness.dataset import RANGE_SELECTIVITIES, range_filter_name
from harness.targets import FAISS, LITE, REFERENCE_DATE, SHEAF, target_checks, verdict

# Column order of the results table, and how each system is named there.
SYSTEM_LABELS = {
    SHEAF: "SheafDB",
    LITE: "Milvus Lite",
    FAISS: "faiss",
    "chroma": "Chroma",
    "lancedb": "LanceDB",
}
PEER_SYSTEMS = ("chroma", "lancedb")


@dataclass(frozen=True)
class MetricSpec:
    key: str
    label: str
    unit: str
    better: str  # "lower" or "higher" (or "" when neither: a fact, not a score)


def _filtered_specs() -> list[MetricSpec]:
    specs = []
    for name, label in (
        ("tag_10pct", 'VARCHAR tag == "a" (10%)'),
        ("tag_1pct", 'VARCHAR tag == "b" (1%)'),
        ("color_10pct", 'dynamic color == "red" (10%)'),
        ("color_1pct", 'dynamic color == "green" (1%)'),
    ):
        specs.append(MetricSpec(f"filtered_p50_ms_{name}", f"filtered search p50, {label}", "ms", "lower"))
    for name, label in (
        ("tag_10pct", "tag 10%"),
        ("tag_1pct", "tag 1%"),
        ("color_10pct", "color 10%"),
        ("color_1pct", "color 1%"),
    ):
        specs.append(MetricSpec(f"filtered_recall10_{name}", f"filtered recall@10, {label}", "", "higher"))
    for sel in RANGE_SELECTIVITIES:
        name = range_filter_name(sel)
        specs.append(
            MetricSpec(f"filtered_recall10_{name}", f"filtered recall@10, num range {sel:.1%}", "", "higher")
        )
        specs.append(
            MetricSpec(f"filtered_p50_ms_{name}", f"filtered search p50, num range {sel:.1%}", "ms", "lower")
        )
    return specs


METRICS: list[MetricSpec] = [
    MetricSpec("insert_rows_per_s", "insert (batches of 5,000)", "rows/s", "higher"),
    MetricSpec("flush_s", "flush", "s", "lower"),
    MetricSpec("index_build_s", "index build (until Finished)", "s", "lower"),
    MetricSpec("load_s", "load", "s", "lower"),
    MetricSpec("rss_before_load_mib", "server RSS before load", "MiB", "lower"),
    MetricSpec("rss_after_load_mib", "server RSS after load", "MiB", "lower"),
    MetricSpec("rss_after_release_mib", "server RSS after release", "MiB", "lower"),
    MetricSpec("rss_after_partial_load_mib", "server RSS after partial load (pk, vector)", "MiB", "lower"),
    MetricSpec(
        "rss_after_partial_release_mib", "server RSS after releasing the partial load", "MiB", "lower"
    ),
    MetricSpec(
        "rss_after_build_mib", "process RSS after insert + index build (embedded peers)", "MiB", "lower"
    ),
    MetricSpec("pk_vector_files_mib", "pk + vector + vector index files on disk", "MiB", ""),
    MetricSpec("partial_load_added_mib", "RSS added by the partial load (pk, vector)", "MiB", "lower"),
    MetricSpec("release_freed_fraction", "release frees (share of what load added)", "", "higher"),
    MetricSpec("search_p50_ms_ef64", "search p50, nq=1, ef=64", "ms", "lower"),
    MetricSpec("search_p99_ms_ef64", "search p99, nq=1, ef=64", "ms", "lower"),
    MetricSpec("recall10_ef64", "recall@10, ef=64", "", "higher"),
    MetricSpec("search_p50_ms_ef128", "search p50, nq=1, ef=128", "ms", "lower"),
    MetricSpec("search_p99_ms_ef128", "search p99, nq=1, ef=128", "ms", "lower"),
    MetricSpec("recall10_ef128", "recall@10, ef=128", "", "higher"),
    MetricSpec("batch_qps_nq100", "batch search, nq=100, ef=64", "QPS", "higher"),
    MetricSpec("batch_recall10", "batch recall@10, ef=64", "", "higher"),
    *_filtered_specs(),
    MetricSpec("query_range_p50_ms", "query, num range (0.1% of rows)", "ms", "lower"),
    MetricSpec("count_filtered_p50_ms", 'count(*) where tag == "a"', "ms", "lower"),
    MetricSpec("get_by_ids_p50_ms", "get 10 ids", "ms", "lower"),
    MetricSpec("trivial_rpc_p50_ms", "get_load_state", "ms", "lower"),
    MetricSpec("cold_start_to_serving_s", "start to serving (empty)", "s", "lower"),
    MetricSpec("restart_to_serving_s", "restart to serving (loaded collection)", "s", "lower"),
    MetricSpec("restart_comes_back_loaded", "comes back loaded after restart (1 = yes)", "", ""),
    MetricSpec("restart_to_loaded_s", "restart to Loaded", "s", "lower"),
]


def summarize(repeats: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """metric -> {min, median, max} over the repeats that measured it."""
    keys = {k for r in repeats for k in r["metrics"]}
    out: dict[str, dict[str, float]] = {}
    for key in sorted(keys):
        values = [
            r["metrics"][key] for r in repeats if key in r["metrics"] and not math.isnan(r["metrics"][key])
        ]
        if values:
            out[key] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    return out


def _median(summary: dict[str, dict[str, dict[str, float]]], system: str, key: str) -> float | None:
    return summary.get(system, {}).get(key, {}).get("median")


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.3g}"


def _spread(summary: dict[str, dict[str, dict[str, float]]], system: str, key: str) -> str:
    stats = summary.get(system, {}).get(key)
    if stats is None:
        return "—"
    return f"{_fmt(stats['min'])} / {_fmt(stats['median'])} / {_fmt(stats['max'])}"


def markdown(results: dict[str, Any], pictures: list[str]) -> str:
    summary: dict[str, dict[str, dict[str, float]]] = results["summary"]
    systems = results["systems_run"]
    lines = [
        "# Benchmarks: SheafDB side by side with Milvus Lite and bare faiss",
        "",
        "Written by `bench/run.py` — do not edit by hand; rerun the command below.",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
        f"{results['machine']['ram_gib']:.0f} GiB RAM, Python {results['machine']['python']}, "
        f"faiss {results['machine']['faiss']}, pymilvus {results['machine']['pymilvus']}. "
        "Shared with other work while it ran: read the ratios, not the absolute numbers.",
        "",
        f"Data: {results['config']['n']:,} × {results['config']['dim']}-d float32, clustered (mixture of 100 "
        "gaussians in a 16-d latent space mapped linearly to dim, plus noise), seeded; exact ground truth "
        "by brute force. Schema: INT64 pk, FLOAT_VECTOR, VARCHAR tag, INT64 num, dynamic field (key "
        "`color`). Index: HNSW M=16 efConstruction=200, metric L2. One client, requests in sequence; "
        f"{results['config']['repeats']} repeat(s), each on a fresh server and data dir.",
        "",
        "Systems: " + ", ".join(f"{s} ({results['system_notes'].get(s, '')})" for s in systems) + ".",
    ]
    for skipped, why in results["skipped"].items():
        lines.append(f"Skipped {skipped}: {why}.")
    if results["config"].get("quick"):
        lines.append("Run with --quick: fewer requests per figure, a size check (tails are not stable).")
    lines += [
        "",
        "## Targets",
        "",
        "Judged on SheafDB's median twice: against the other system in this run, and against the "
        f"issue's reference figures (measured {REFERENCE_DATE} on this kind of machine at 100k × 128-d; "
        "they apply at that size only).",
        "",
        "| target | this run: SheafDB vs other | met in this run | issue's reference → bound | "
        "met against the reference |",
        "| --- | --- | --- | --- | --- |",
    ]
    for check in target_checks(summary, results["config"]):
        lines.append(
            f"| {check.text} | {check.measured} | {verdict(check.met)} | {check.reference} | "
            f"{verdict(check.met_reference)} |"
        )
    ordered = [s for s in SYSTEM_LABELS if s in systems]
    others = [s for s in ordered if s != SHEAF]
    lines += [
        "",
        "## Results",
        "",
        "Ratios are of medians over repeats. For *lower is better* rows a ratio below 1 means SheafDB "
        "is ahead; for *higher is better* rows, above 1. Raw cells are min / median / max.",
        "",
        "| measurement | unit | better | "
        + " | ".join(f"SheafDB / {SYSTEM_LABELS[s]}" for s in others)
        + " | "
        + " | ".join(SYSTEM_LABELS[s] for s in ordered)
        + " |",
        "| --- | --- | --- |" + " --- |" * (len(others) + len(ordered)),
    ]
    for spec in METRICS:
        if not any(spec.key in summary.get(s, {}) for s in systems):
            continue
        ours = _median(summary, SHEAF, spec.key)
        ratios = [_ratio(ours, _median(summary, s, spec.key)) for s in others]
        spreads = [_spread(summary, s, spec.key) for s in ordered]
        lines.append(
            f"| {spec.label} | {spec.unit} | {spec.better or '—'} | " + " | ".join(ratios + spreads) + " |"
        )
    lines += [
        "",
        "faiss has no server: insert, flush, load, memory, query, count, get and restart rows are "
        "blank for it; its index build is `IndexHNSWFlat.add` of all rows, and its filters are "
        "precomputed bitmaps (the expression is not evaluated).",
    ]
    if any(s in PEER_SYSTEMS for s in ordered):
        lines += [
            "",
            "Chroma and LanceDB are embedded libraries, each run in its own process from its own venv "
            "on the same vectors, queries and ground truth: their search has no RPC in it. Their "
            '"RSS before load" is a fresh process after import, "after load" after opening the '
            "store and answering one search; their index build for Chroma is part of insert (it "
            "indexes on add). Only search, recall and memory are measured for them.",
        ]
    lines += ["", "## Pictures", ""]
    if pictures:
        for picture in pictures:
            lines.append(f"![{picture}](benchmarks/{picture})")
            lines.append("")
    else:
        lines.append(f"(no pictures: {results.get('pictures_note', 'matplotlib unavailable')})")
    notes = results.get("profile_notes")
    if notes:
        lines += ["", "## Where the time goes (profiles)", "", notes]
    return "\n".join(lines) + "\n"
