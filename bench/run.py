"""SheafDB side by side with Milvus Lite and bare faiss, through the same pymilvus code.

One command builds seeded clustered data with exact ground truth, runs every system for each
repeat (SheafDB and Milvus Lite as their own server processes on free loopback ports, faiss
in-process as the floor), and writes the raw results JSON to --out and the report (ratios,
raw medians, machine, command, two pictures) to --doc.

Run (from the repository root):
    .venv/bin/python bench/run.py [--n 100000] [--dim 128] [--repeats 3]
        [--systems sheafdb,milvus-lite,faiss] [--peers chroma,lancedb] [--quick]
        [--out bench/out] [--doc docs/benchmarks.md]

Milvus Lite runs from its own virtualenv, .bench-venv, created on first use (pass --no-install
to skip it instead); each optional embedded peer (--peers) from its own under .bench-peers/.
A system that cannot run is skipped with a line saying why. --quick makes fewer requests per
figure (a size check, e.g. --n 1000000 --quick), not figures to publish.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import psutil
import pymilvus
from harness.dataset import make_dataset
from harness.doc_sections import carry_sections
from harness.faiss_floor import FaissRepeat
from harness.milvus_workload import QUICK_SIZES, ServerRepeat, WorkloadSizes
from harness.peers import PEER_SPECS, PEER_VENV_DIR, PeerRepeat, ensure_peer
from harness.report import markdown, summarize
from harness.servers import (
    REPO_ROOT,
    ServerKind,
    bench_venv_python,
    ensure_bench_venv,
    has_module,
    import_error,
    milvus_lite_kind,
    sheafdb_kind,
)
from harness.targets import FAISS, LITE, SHEAF, target_checks

KNOWN_SYSTEMS = (SHEAF, LITE, FAISS)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="rows")
    parser.add_argument("--dim", type=int, default=128, help="vector dimension")
    parser.add_argument("--repeats", type=int, default=3, help="full runs per system (fresh server each)")
    parser.add_argument("--systems", default="sheafdb,milvus-lite,faiss", help="comma-separated")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out", help="raw results dir")
    parser.add_argument("--doc", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md", help="report path")
    parser.add_argument("--notes", type=Path, help="markdown (e.g. profile summaries) appended to the report")
    parser.add_argument(
        "--peers", default="", help=f"optional embedded peers, comma-separated ({', '.join(PEER_SPECS)})"
    )
    parser.add_argument(
        "--peer-venv-dir", type=Path, default=PEER_VENV_DIR, help="one venv per peer under it"
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests per figure (a size check)")
    parser.add_argument("--no-install", action="store_true", help="create no venv (Milvus Lite, peers)")
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite the report from --out/results.json, run nothing"
    )
    return parser.parse_args()


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(logical=True),
        "ram_gib": psutil.virtual_memory().total / 2**30,
        "python": platform.python_version(),
        "faiss": faiss.__version__,
        "pymilvus": pymilvus.__version__,
        "faiss_omp_threads": faiss.omp_get_max_threads(),
    }


def resolve_systems(
    names: list[str], install: bool
) -> tuple[dict[str, ServerKind | None], dict[str, str], dict[str, str]]:
    """system -> how to run it (None for in-process faiss), notes, and skipped systems with why."""
    kinds: dict[str, ServerKind | None] = {}
    notes: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in names:
        if name == SHEAF:
            error = import_error(Path(sys.executable), "sheafdb.cli")
            if error is None:
                kinds[name] = sheafdb_kind()
                notes[name] = "`python -m sheafdb serve`, its own process"
            else:
                skipped[name] = f"sheafdb is not importable from {sys.executable}: {error}"
        elif name == LITE:
            python, why = ensure_bench_venv(install)
            if python is None:
                skipped[name] = why
            else:
                kinds[name] = milvus_lite_kind(python)
                version = subprocess.run(
                    [str(python), "-c", "import importlib.metadata as m; print(m.version('milvus-lite'))"],
                    capture_output=True,
                    text=True,
                ).stdout.strip()
                notes[name] = f"milvus-lite {version}, `python -m milvus_lite server`, its own process"
        elif name == FAISS:
            kinds[name] = None
            notes[name] = (
                f"faiss-cpu {faiss.__version__} in-process, {faiss.omp_get_max_threads()} OpenMP threads"
            )
        else:
            skipped[name] = f"unknown system (known: {', '.join(KNOWN_SYSTEMS)})"
    for name, why in skipped.items():
        print(f"SKIP {name}: {why}", flush=True)
    return kinds, notes, skipped


def resolve_peers(
    names: list[str], venv_dir: Path, install: bool
) -> tuple[dict[str, Path], dict[str, str], dict[str, str]]:
    """peer -> its venv's python, notes, and skipped peers with why."""
    pythons: dict[str, Path] = {}
    notes: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in names:
        spec = PEER_SPECS.get(name)
        if spec is None:
            skipped[name] = f"unknown peer (known: {', '.join(PEER_SPECS)})"
            continue
        python, note = ensure_peer(spec, venv_dir, install)
        if python is None:
            skipped[name] = note
        else:
            pythons[name], notes[name] = python, note
    for name, why in skipped.items():
        print(f"SKIP {name}: {why}", flush=True)
    return pythons, notes, skipped


def pictures(results_path: Path, picture_dir: Path) -> tuple[list[str], str]:
    """Draw the pictures with whichever interpreter has matplotlib; names written, or why none."""
    for python in (Path(sys.executable), bench_venv_python()):
        if has_module(python, "matplotlib"):
            script = Path(__file__).parent / "harness" / "plots.py"
            done = subprocess.run(
                [str(python), str(script), str(results_path), str(picture_dir)],
                capture_output=True,
                text=True,
            )
            if done.returncode == 0:
                return done.stdout.split(), ""
            return [], f"plotting failed: {done.stderr.strip().splitlines()[-1:]}"
    return [], "matplotlib is not installed (pip install -e '.[bench]')"


def write_report(results: dict[str, Any], results_path: Path, args: argparse.Namespace) -> None:
    """Pictures, the markdown report and the target verdicts, from the results gathered."""
    names_written, why_not = pictures(results_path, args.doc.parent / "benchmarks")
    results["pictures_note"] = why_not
    if why_not:
        print(f"no pictures: {why_not}", flush=True)
    if args.notes is not None:
        results["profile_notes"] = args.notes.read_text()
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    old = args.doc.read_text() if args.doc.exists() else ""  # other scripts' sections are kept
    args.doc.write_text(carry_sections(old, markdown(results, names_written)))
    for check in target_checks(results["summary"], results["config"]):
        in_run = "n/a" if check.met is None else ("MET" if check.met else "MISSED")
        against = "n/a" if check.met_reference is None else ("MET" if check.met_reference else "MISSED")
        print(f"target {in_run} (reference {against}): {check.text}: {check.measured}; {check.reference}")
    print(f"wrote {results_path} and {args.doc}")


def main() -> int:
    args = parse_args()
    # pymilvus logs every refused connection while a server starts; failures still raise.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    if args.render_only:
        results_path = args.out / "results.json"
        write_report(json.loads(results_path.read_text()), results_path, args)
        return 0
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    command = " ".join([".venv/bin/python", "bench/run.py", *sys.argv[1:]])
    args.out.mkdir(parents=True, exist_ok=True)
    kinds, notes, skipped = resolve_systems(names, install=not args.no_install)
    peer_names = [s.strip() for s in args.peers.split(",") if s.strip()]
    peers, peer_notes, peers_skipped = resolve_peers(peer_names, args.peer_venv_dir, not args.no_install)
    notes.update(peer_notes)
    skipped.update(peers_skipped)
    sizes = QUICK_SIZES if args.quick else WorkloadSizes()
    nq = max(sizes.latency_queries, sizes.batch_nq, sizes.sweep_queries)
    start = time.perf_counter()
    data = make_dataset(args.n, args.dim, nq)
    print(f"data: {args.n} x {args.dim} with ground truth in {time.perf_counter() - start:.1f}s", flush=True)
    results: dict[str, Any] = {
        "command": command,
        "machine": machine(),
        "config": {
            "n": args.n,
            "dim": args.dim,
            "repeats": args.repeats,
            "metric": "L2",
            "M": 16,
            "efConstruction": 200,
            "quick": args.quick,
        },
        "systems_run": [*kinds, *peers],
        "system_notes": notes,
        "skipped": skipped,
        "raw": {name: [] for name in [*kinds, *peers]},
        "errors": [],
    }
    results_path = args.out / "results.json"
    for repeat in range(args.repeats):
        for name in results["systems_run"]:
            kind = kinds.get(name)
            print(f"repeat {repeat + 1}/{args.repeats}: {name} ...", flush=True)
            began = time.perf_counter()
            try:
                if name in peers:
                    workdir = args.out / "work" / f"{name}-r{repeat}"
                    shutil.rmtree(workdir, ignore_errors=True)
                    peer = PeerRepeat(PEER_SPECS[name], peers[name], data, sizes, workdir, sweep=repeat == 0)
                    raw = peer.run()
                    shutil.rmtree(workdir / "data", ignore_errors=True)  # keep the peer's log only
                elif kind is None:
                    raw = FaissRepeat(data, sizes, sweep=repeat == 0).run()
                else:
                    workdir = args.out / "work" / f"{name}-r{repeat}"
                    shutil.rmtree(workdir, ignore_errors=True)
                    raw = ServerRepeat(kind, data, sizes, workdir, sweep=repeat == 0).run()
                    shutil.rmtree(workdir / "data", ignore_errors=True)  # keep the server log only
            except Exception as exc:  # noqa: BLE001 - one failed run must not lose the others
                print(f"ERROR {name} repeat {repeat + 1}: {exc!r}", flush=True)
                results["errors"].append({"system": name, "repeat": repeat, "error": traceback.format_exc()})
                continue
            results["raw"][name].append(raw)
            print(
                f"  done in {time.perf_counter() - began:.0f}s: "
                + ", ".join(f"{k}={v:.4g}" for k, v in list(raw["metrics"].items())[:6]),
                flush=True,
            )
            results["summary"] = {s: summarize(runs) for s, runs in results["raw"].items()}
            results_path.write_text(json.dumps(results, indent=1, default=float))
    results["summary"] = {s: summarize(runs) for s, runs in results["raw"].items()}
    results_path.write_text(json.dumps(results, indent=1, default=float))
    write_report(results, results_path, args)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
