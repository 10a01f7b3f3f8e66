"""Optional embedded peers (Chroma, LanceDB): same vectors, queries and ground truth, own process.

Each peer runs from its own venv (``<peer venv dir>/<name>``, created on demand like Milvus
Lite's) through ``peer_worker.py``, in two processes: one inserts and builds the index, a fresh
one opens the store and searches, so "before load" / "after load" RSS are the peer's own, as for
a server. Recall is computed here from the ids the worker returns.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.dataset import Dataset, recall_at_k
from harness.milvus_workload import HNSW_EF_CONSTRUCTION, HNSW_M, INSERT_BATCH, WorkloadSizes
from harness.servers import REPO_ROOT, ensure_venv
from harness.timing import p50, p99, sequential_qps

PEER_VENV_DIR = REPO_ROOT / ".bench-peers"
PEER_TIMEOUT_S = 4 * 3600.0  # a 1M-row build on 2 cores; a hung peer still ends the run
WORKER = Path(__file__).with_name("peer_worker.py")


@dataclass(frozen=True)
class PeerSpec:
    name: str
    packages: tuple[str, ...]  # pinned: versions that install on Python 3.11 here
    module: str
    index: str  # what index it builds and how its search parameter maps to ef


PEER_SPECS: dict[str, PeerSpec] = {
    "chroma": PeerSpec(
        "chroma",
        ("chromadb==1.5.9",),
        "chromadb",
        "embedded PersistentClient; HNSW max_neighbors=16 ef_construction=200 (built on add), ef_search = ef",
    ),
    "lancedb": PeerSpec(
        "lancedb",
        ("lancedb==0.40.0",),
        "lancedb",
        "embedded; IVF_HNSW_FLAT with num_partitions=1 (one HNSW graph over raw vectors) m=16 "
        "ef_construction=200, nprobes=1, ef = ef",
    ),
}


def ensure_peer(spec: PeerSpec, venv_dir: Path, install: bool) -> tuple[Path | None, str]:
    """The peer venv's python and a note with the installed version, or None and why not."""
    python, why = ensure_venv(venv_dir / spec.name, spec.packages, spec.module, install)
    if python is None:
        return None, why
    version = subprocess.run(
        [
            str(python),
            "-c",
            f"import importlib.metadata as m; print(m.version('{spec.packages[0].split('==')[0]}'))",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return python, f"{spec.packages[0].split('==')[0]} {version} in its own process, {spec.index}"


class PeerRepeat:
    """One repeat of one peer: build in one process, search in a fresh one; flat metrics back."""

    def __init__(
        self, spec: PeerSpec, python: Path, data: Dataset, sizes: WorkloadSizes, workdir: Path, sweep: bool
    ) -> None:
        self.spec = spec
        self.python = python
        self.data = data
        self.sizes = sizes
        self.workdir = workdir
        self.sweep = sweep

    def run(self) -> dict[str, Any]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        np.save(self.workdir / "vectors.npy", self.data.vectors)
        np.save(self.workdir / "queries.npy", self.data.queries)
        runs = [("ef64", self.sizes.latency_queries, 64), ("ef128", self.sizes.latency_queries, 128)]
        if self.sweep:
            runs += [(f"sweep{ef}", self.sizes.sweep_queries, ef) for ef in self.sizes.sweep_efs]
        job = {
            "M": HNSW_M,
            "efConstruction": HNSW_EF_CONSTRUCTION,
            "insert_batch": INSERT_BATCH,
            "runs": runs,
        }
        (self.workdir / "job.json").write_text(json.dumps(job))
        built = self._phase("build")
        (self.workdir / "vectors.npy").unlink()
        searched = self._phase("search")
        metrics = {
            key: float(value) for phase in (built, searched) for key, value in phase.items() if key != "runs"
        }
        ef_sweep = []
        for name, run in searched["runs"].items():
            recall = recall_at_k(run["ids"], self.data.truth[: len(run["ids"])])
            if name.startswith("sweep"):
                ef_sweep.append({"ef": run["ef"], "qps": sequential_qps(run["ms"]), "recall": recall})
            else:
                metrics[f"search_p50_ms_{name}"] = p50(run["ms"])
                metrics[f"search_p99_ms_{name}"] = p99(run["ms"])
                metrics[f"recall10_{name}"] = recall
        return {"metrics": metrics, "ef_sweep": ef_sweep, "rss_trace": None}

    def _phase(self, phase: str) -> dict[str, Any]:
        with (self.workdir / "peer.log").open("ab") as log:
            done = subprocess.run(
                [str(self.python), str(WORKER), self.spec.name, phase, str(self.workdir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=PEER_TIMEOUT_S,
            )
        if done.returncode != 0:
            raise RuntimeError(
                f"{self.spec.name} {phase} exited {done.returncode}; see {self.workdir / 'peer.log'}"
            )
        result: dict[str, Any] = json.loads((self.workdir / f"{phase}.json").read_text())
        return result
