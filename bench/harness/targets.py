"""The issue's targets, judged twice: against the figures of this run and against the issue's own
reference figures (Milvus Lite and bare faiss measured on this kind of machine on 2026-11-25 at
100k × 128-d, HNSW M=16 efConstruction=200, medians). "Met" only when the median meets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.dataset import RANGE_SELECTIVITIES, range_filter_name

SHEAF = "sheafdb"
LITE = "milvus-lite"
FAISS = "faiss"

REFERENCE_DATE = "2026-11-25"
REFERENCE_SIZE = (100_000, 128)  # the reference figures hold at this n x dim only
REFERENCE: dict[str, dict[str, float]] = {
    LITE: {
        "search_p50_ms_ef64": 46.0,
        "batch_qps_nq100": 801.0,
        "filtered_p50_ms_tag_10pct": 49.0,
        "filtered_p50_ms_color_10pct": 204.0,
        "query_range_p50_ms": 135.0,
        "count_filtered_p50_ms": 398.0,
        "insert_rows_per_s": 15_400.0,
    },
    FAISS: {"search_p50_ms_ef64": 0.15, "batch_qps_nq100": 7_160.0},
}
LITE_RELEASE_REFERENCE = "Milvus Lite's release freed 49 of 737 MiB (6.6%)"
RECALL_TOLERANCE = 0.005
FILTERED_RECALL_FLOOR = 0.99
RESTART_SERVING_S = 2.0
# A partial load may add this much more than the bytes of the files it loads (allocator slack);
# at 100k × 128 the fields it skips (tag, num, $meta, timestamps) are ~4% of the vector files.
PARTIAL_LOAD_SLACK = 1.05
_LABELS = {LITE: "Milvus Lite", FAISS: "faiss"}


@dataclass(frozen=True)
class TargetCheck:
    text: str
    measured: str  # this run: SheafDB's median and, for a ratio target, the other system's
    met: bool | None  # None: could not be judged here (a system or figure was missing)
    reference: str = "—"  # the reference figure and the bound it sets for SheafDB
    met_reference: bool | None = None


def target_checks(
    summary: dict[str, dict[str, dict[str, float]]], config: dict[str, Any]
) -> list[TargetCheck]:
    """Every target of the issue, in its order, judged in this run and against the reference."""

    def med(system: str, key: str) -> float | None:
        return summary.get(system, {}).get(key, {}).get("median")

    at_reference_size = (config.get("n"), config.get("dim")) == REFERENCE_SIZE
    checks: list[TargetCheck] = []

    def ratio_check(text: str, key: str, other: str, lower: bool, bound: float) -> None:
        ours, theirs = med(SHEAF, key), med(other, key)

        def meets(value: float, limit: float) -> bool:
            return value <= limit if lower else value >= limit

        measured, met = "n/a", None
        if ours is not None and theirs:
            measured = f"{ours / theirs:.3g}x ({ours:.4g} vs {theirs:.4g})"
            met = meets(ours / theirs, bound)
        reference, met_reference = "—", None
        ref = REFERENCE.get(other, {}).get(key)
        if ref is not None:
            limit = ref * bound
            reference = f"{_LABELS[other]} {ref:g} → SheafDB {'≤' if lower else '≥'} {limit:.4g}"
            if not at_reference_size:
                reference += f" (n/a at {config.get('n'):,} × {config.get('dim')})"
            elif ours is not None:
                reference += f"; SheafDB {ours:.4g}"
                met_reference = meets(ours, limit)
        checks.append(TargetCheck(text, measured, met, reference, met_reference))

    def absolute(text: str, measured: str | None, met: bool, reference: str = "— (absolute bound)") -> None:
        """A bound that needs no other system: the same verdict in both columns."""
        if measured is None:
            checks.append(TargetCheck(text, "n/a", None, reference))
        else:
            checks.append(TargetCheck(text, measured, met, reference, met))

    ratio_check("search p50 nq=1 ef=64 ≤ 1/40 of Milvus Lite", "search_p50_ms_ef64", LITE, True, 1 / 40)
    ours_recall, faiss_recall = med(SHEAF, "recall10_ef64"), med(FAISS, "recall10_ef64")
    if ours_recall is None or faiss_recall is None:
        checks.append(TargetCheck("recall@10 at ef=64 equal to faiss's ± 0.005", "n/a", None))
    else:
        checks.append(
            TargetCheck(
                "recall@10 at ef=64 equal to faiss's ± 0.005",
                f"{ours_recall:.4f} vs {faiss_recall:.4f}",
                abs(ours_recall - faiss_recall) <= RECALL_TOLERANCE,
                "— (no reference recall; same data in run)",
            )
        )
    for name in ("tag_10pct", "color_10pct", "tag_1pct", "color_1pct"):
        ratio_check(
            f"filtered search p50 ({name}) ≤ 1/25 of Milvus Lite",
            f"filtered_p50_ms_{name}",
            LITE,
            True,
            1 / 25,
        )
    recalls = {
        name: med(SHEAF, f"filtered_recall10_{name}")
        for name in ("tag_10pct", "tag_1pct", "color_10pct", "color_1pct")
        + tuple(range_filter_name(s) for s in RANGE_SELECTIVITIES)
    }
    known = {name: value for name, value in recalls.items() if value is not None}
    worst = min(known, key=lambda name: known[name]) if known else None
    absolute(
        f"filtered recall@10 ≥ {FILTERED_RECALL_FLOOR} at every selectivity 0.1%–50%",
        None if worst is None else f"min {known[worst]:.4f} ({worst}) over {len(known)} filters",
        worst is not None and known[worst] >= FILTERED_RECALL_FLOOR,
    )
    ratio_check("batch QPS nq=100 ≥ 0.7 × faiss", "batch_qps_nq100", FAISS, False, 0.7)
    ratio_check("query with a range filter ≤ 1/20 of Milvus Lite", "query_range_p50_ms", LITE, True, 1 / 20)
    ratio_check("filtered count(*) ≤ 1/20 of Milvus Lite", "count_filtered_p50_ms", LITE, True, 1 / 20)
    ratio_check("insert rows/s ≥ 3.5 × Milvus Lite", "insert_rows_per_s", LITE, False, 3.5)
    freed = med(SHEAF, "release_freed_fraction")
    absolute(
        "release frees ≥ 90% of what load added",
        None if freed is None else f"{freed:.1%}",
        freed is not None and freed >= 0.9,
        LITE_RELEASE_REFERENCE,
    )
    added, files = med(SHEAF, "partial_load_added_mib"), med(SHEAF, "pk_vector_files_mib")
    absolute(
        f"a partial load (pk, vector) adds only their bytes (≤ {PARTIAL_LOAD_SLACK:g} × pk + vector + "
        "vector index files)",
        None if added is None or files is None else f"{added:.1f} MiB added vs {files:.1f} MiB of files",
        added is not None and files is not None and added <= PARTIAL_LOAD_SLACK * files,
    )
    serving, loaded = med(SHEAF, "restart_to_serving_s"), med(SHEAF, "restart_comes_back_loaded")
    absolute(
        f"a restarted server answers within {RESTART_SERVING_S:g} s and comes back loaded",
        None
        if serving is None or loaded is None
        else f"{serving:.2f} s, {'loaded' if loaded == 1 else 'not loaded'}",
        serving is not None and serving <= RESTART_SERVING_S and loaded == 1,
    )
    return checks


def verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "**no**")
