"""Turn raw per-repeat results into min/median/max, ratios, target checks and docs/benchmarks.md."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from harness.dataset import RANGE_SELECTIVITIES, range_filter_name

SHEAF = "sheafdb"
LITE = "milvus-lite"
FAISS = "faiss"


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


@dataclass(frozen=True)
class TargetCheck:
    text: str
    measured: str
    met: bool | None  # None: could not be judged (a system was missing)


def target_checks(summary: dict[str, dict[str, dict[str, float]]]) -> list[TargetCheck]:
    def med(system: str, key: str) -> float | None:
        return _median(summary, system, key)

    checks: list[TargetCheck] = []

    def ratio_check(text: str, key: str, other: str, op: str, bound: float) -> None:
        ours, theirs = med(SHEAF, key), med(other, key)
        if ours is None or theirs is None or theirs == 0:
            checks.append(TargetCheck(text, "n/a", None))
            return
        ratio = ours / theirs
        met = ratio <= bound if op == "<=" else ratio >= bound
        checks.append(TargetCheck(text, f"{ratio:.3g}x ({ours:.4g} vs {theirs:.4g})", met))

    ratio_check("search p50 nq=1 ef=64 <= 1/40 of Milvus Lite", "search_p50_ms_ef64", LITE, "<=", 1 / 40)
    for name in ("tag_10pct", "tag_1pct", "color_10pct", "color_1pct"):
        ratio_check(
            f"filtered search p50 ({name}) <= 1/25 of Milvus Lite",
            f"filtered_p50_ms_{name}",
            LITE,
            "<=",
            1 / 25,
        )
    ratio_check("batch QPS nq=100 >= 0.7 x faiss", "batch_qps_nq100", FAISS, ">=", 0.7)
    ratio_check("insert rows/s >= 3.5 x Milvus Lite", "insert_rows_per_s", LITE, ">=", 3.5)
    freed = med(SHEAF, "release_freed_fraction")
    checks.append(
        TargetCheck(
            "release frees >= 90% of what load added",
            "n/a" if freed is None else f"{freed:.1%}",
            None if freed is None else freed >= 0.9,
        )
    )
    return checks


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
    lines += ["", "## Targets", "", "| target | measured (SheafDB / other) | met |", "| --- | --- | --- |"]
    for check in target_checks(summary):
        verdict = "n/a" if check.met is None else ("yes" if check.met else "**no**")
        lines.append(f"| {check.text} | {check.measured} | {verdict} |")
    lines += [
        "",
        "## Results",
        "",
        "Ratios are of medians over repeats. For *lower is better* rows a ratio below 1 means SheafDB "
        "is ahead; for *higher is better* rows, above 1. Raw cells are min / median / max.",
        "",
        "| measurement | unit | better | SheafDB / Milvus Lite | SheafDB / faiss | "
        "SheafDB | Milvus Lite | faiss |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for spec in METRICS:
        if not any(spec.key in summary.get(s, {}) for s in systems):
            continue
        ours = _median(summary, SHEAF, spec.key)
        lines.append(
            f"| {spec.label} | {spec.unit} | {spec.better or '—'} | "
            f"{_ratio(ours, _median(summary, LITE, spec.key))} | "
            f"{_ratio(ours, _median(summary, FAISS, spec.key))} | "
            f"{_spread(summary, SHEAF, spec.key)} | {_spread(summary, LITE, spec.key)} | "
            f"{_spread(summary, FAISS, spec.key)} |"
        )
    lines += [
        "",
        "faiss has no server: insert, flush, load, memory, query, count, get and restart rows are "
        "blank for it; its index build is `IndexHNSWFlat.add` of all rows, and its filters are "
        "precomputed bitmaps (the expression is not evaluated).",
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
