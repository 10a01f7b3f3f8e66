"""Full-text search side by side: SheafDB, bm25s in-process (the floor) and Milvus Lite.

One deterministic corpus (pseudo-words with Zipf-like frequencies, no download), the same BM25
parameters everywhere (k1 1.2, b 0.75). Per system: indexing rows/s (insert in batches of
5,000 + flush + index build until Finished, for the servers; tokenize + index for bm25s) and
the latency of single text queries (nq=1, top 10), p50 / p99; for SheafDB also how many of
bm25s's top 10 it returns (same formula, so the ranking should agree). Milvus Lite runs from
.bench-venv (see harness/servers.py); when it cannot create a BM25 collection the report says
so. Writes its section ("full-text") of docs/benchmarks.md.

    .venv/bin/python bench/full_text.py [--docs 100000] [--queries 200] [--no-install]
"""

from __future__ import annotations

import argparse
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, Function, FunctionType, MilvusClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.doc_sections import put_section  # noqa: E402
from harness.servers import (  # noqa: E402
    REPO_ROOT,
    RunningServer,
    ServerKind,
    ensure_bench_venv,
    milvus_lite_kind,
    sheafdb_kind,
)
from harness.timing import p50, p99  # noqa: E402

BATCH = 5_000
TOP_K = 10
COLLECTION = "fts_bench"


def corpus(docs: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    syllables = [a + b for a in "bcdfghklmnprstvz" for b in "aeiou"]
    vocabulary = sorted({"".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(30_000)})
    rng.shuffle(vocabulary)
    weights = [1.0 / (rank + 1) ** 1.05 for rank in range(len(vocabulary))]
    return [" ".join(rng.choices(vocabulary, weights, k=rng.randint(20, 120))) for _ in range(docs)]


def queries(texts: list[str], count: int, seed: int = 2) -> list[str]:
    rng = random.Random(seed)
    picked = []
    for _ in range(count):
        words = rng.choice(texts).split()
        picked.append(" ".join(rng.sample(words, k=min(len(words), rng.randint(2, 4)))))
    return picked


def run_bm25s(texts: list[str], asked: list[str]) -> dict[str, Any]:
    import bm25s

    start = time.perf_counter()
    tokens = bm25s.tokenize(texts, stopwords=None, show_progress=False)
    retriever = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    retriever.index(tokens, show_progress=False)
    index_s = time.perf_counter() - start
    latencies, tops = [], []
    for text in asked:
        began = time.perf_counter()
        found, _ = retriever.retrieve(
            bm25s.tokenize([text], stopwords=None, show_progress=False), k=TOP_K, show_progress=False
        )
        latencies.append((time.perf_counter() - began) * 1000)
        tops.append(set(int(i) for i in found[0]))
    return {"rows_per_s": len(texts) / index_s, "p50": p50(latencies), "p99": p99(latencies), "tops": tops}


def run_server(kind: ServerKind, texts: list[str], asked: list[str], work: Path) -> dict[str, Any]:
    server = RunningServer(kind, work / kind.name / "data", work / f"{kind.name}.log")
    try:
        client, _ = server.wait_serving()
        try:
            _create(client)
        except Exception as exc:  # noqa: BLE001 - reported: the system cannot run the workload
            return {"error": f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"}
        start = time.perf_counter()
        for lo in range(0, len(texts), BATCH):
            client.insert(
                COLLECTION, [{"id": lo + i, "text": t} for i, t in enumerate(texts[lo : lo + BATCH])]
            )
        client.flush(COLLECTION)
        _wait_index(client)
        index_s = time.perf_counter() - start
        client.load_collection(COLLECTION)
        latencies, tops = [], []
        for text in asked:
            began = time.perf_counter()
            hits = client.search(COLLECTION, [text], anns_field="sparse", limit=TOP_K)[0]
            latencies.append((time.perf_counter() - began) * 1000)
            tops.append({int(h["id"]) for h in hits})
        return {
            "rows_per_s": len(texts) / index_s,
            "p50": p50(latencies),
            "p99": p99(latencies),
            "tops": tops,
        }
    finally:
        server.stop()


def _create(client: MilvusClient) -> None:
    schema = client.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=4096, enable_analyzer=True)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        Function(
            name="bm25",
            function_type=FunctionType.BM25,
            input_field_names=["text"],
            output_field_names=["sparse"],
        )
    )
    index = client.prepare_index_params()
    index.add_index(
        "sparse",
        index_type="SPARSE_INVERTED_INDEX",
        metric_type="BM25",
        params={"bm25_k1": 1.2, "bm25_b": 0.75},
    )
    client.create_collection(COLLECTION, schema=schema, index_params=index)


def _wait_index(client: MilvusClient) -> None:
    deadline = time.perf_counter() + 1800
    while time.perf_counter() < deadline:
        described = client.describe_index(COLLECTION, "sparse")
        if (
            int(described.get("pending_index_rows", 0)) == 0
            and described.get("state", "Finished") == "Finished"
        ):
            return
        time.sleep(0.1)
    raise RuntimeError("the BM25 index did not finish")


def agreement(tops: list[set[int]], reference: list[set[int]]) -> float:
    return float(np.mean([len(a & b) / max(1, len(b)) for a, b in zip(tops, reference, strict=True)]))


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]], notes: dict[str, str]) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    ).stdout.strip()
    lines = [
        "## Full-text search: SheafDB, bm25s (in-process floor) and Milvus Lite",
        "",
        "Written by `bench/full_text.py` — do not edit by hand; rerun the command below.",
        "",
        f"Command: `.venv/bin/python bench/full_text.py --docs {args.docs} --queries {args.queries}` "
        f"(run at `{commit or 'unknown'}`, {time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}. "
        "Shared with other work while it ran: read the ratios, not the absolute numbers.",
        "",
        f"Data: {args.docs:,} generated documents of 20-120 pseudo-words (Zipf-like frequencies over "
        "~30k words, seeded), standard analyzer, BM25 k1 1.2 b 0.75, SPARSE_INVERTED_INDEX. "
        f"{args.queries} queries of 2-4 words, nq=1, top {TOP_K}, one client in sequence.",
        "",
        "| system | indexing rows/s | search p50 ms | search p99 ms | top-10 agreement with bm25s |",
        "| --- | --- | --- | --- | --- |",
    ]
    reference = results.get("bm25s", {}).get("tops")
    for name, found in results.items():
        if "error" in found:
            lines.append(f"| {name} | — | — | — | — |")
            continue
        agree = f"{agreement(found['tops'], reference):.3f}" if reference and name != "bm25s" else "—"
        lines.append(
            f"| {name} | {found['rows_per_s']:,.0f} | {found['p50']:.3g} | {found['p99']:.3g} | {agree} |"
        )
    lines.append("")
    for name, note in notes.items():
        lines.append(f"- {name}: {note}")
    for name, found in results.items():
        if "error" in found:
            lines.append(f"- {name} could not run the workload: {found['error']}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-install", action="store_true", help="do not create .bench-venv for Milvus Lite")
    parser.add_argument("--doc", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    texts = corpus(args.docs)
    asked = queries(texts, args.queries)
    results: dict[str, dict[str, Any]] = {}
    notes: dict[str, str] = {
        "bm25s": "bm25s in this process, method lucene (the same idf; its scores lack BM25's constant "
        "(k1 + 1) factor, which leaves the ranking unchanged)"
    }
    results["bm25s"] = run_bm25s(texts, asked)
    with tempfile.TemporaryDirectory(prefix="fts-bench-") as tmp:
        work = Path(tmp)
        results["sheafdb"] = run_server(sheafdb_kind(), texts, asked, work)
        notes["sheafdb"] = "`python -m sheafdb serve`, its own process"
        python, why = ensure_bench_venv(install=not args.no_install)
        if python is None:
            notes["milvus-lite"] = f"not run: {why}"
        else:
            results["milvus-lite"] = run_server(milvus_lite_kind(python), texts, asked, work)
            notes["milvus-lite"] = (
                "milvus-lite from .bench-venv, `python -m milvus_lite server`, its own process"
            )
    text = report(args, results, notes)
    put_section(args.doc, "full-text", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
