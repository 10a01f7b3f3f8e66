"""One embedded peer (Chroma or LanceDB) driven inside its own venv and process.

``python peer_worker.py SYSTEM PHASE WORKDIR`` with PHASE ``build`` (insert + build the index,
then exit) or ``search`` (a fresh process: open, search, report). The harness writes
``WORKDIR/job.json``, ``vectors.npy`` and ``queries.npy``; this script writes
``WORKDIR/<PHASE>.json``: timings, the process's own RSS at fixed points and the ids found, so
that recall is computed by the harness against the same ground truth as every other system.

Standalone on purpose: it runs in the peer's venv, which has numpy and the peer, not the harness.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

K = 10


def rss_mib() -> float:
    """This process's resident set (Linux /proc), so the figure is the peer's alone."""
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class Peer(Protocol):
    indexes_on_add: bool

    def insert(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def build_index(self) -> None: ...
    def open(self) -> None: ...
    def search(self, query: np.ndarray, ef: int) -> list[int]: ...


class ChromaPeer:
    """Chroma's embedded PersistentClient; its HNSW is built as rows arrive (hnswlib)."""

    indexes_on_add = True

    def __init__(self, path: Path, job: dict[str, Any]) -> None:
        import chromadb
        from chromadb.config import Settings

        self._client = chromadb.PersistentClient(
            path=str(path), settings=Settings(anonymized_telemetry=False)
        )
        self._job = job
        self._collection: Any = None
        self._ef = -1

    def insert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if self._collection is None:
            hnsw = {
                "space": "l2",
                "max_neighbors": self._job["M"],
                "ef_construction": self._job["efConstruction"],
                "ef_search": 64,
            }
            self._collection = self._client.create_collection("bench", configuration={"hnsw": hnsw})
        # Chroma caps one call's rows (get_max_batch_size); split the harness's batch under it.
        step = min(len(ids), self._client.get_max_batch_size())
        for start in range(0, len(ids), step):
            chunk = slice(start, start + step)
            self._collection.add(ids=[str(i) for i in ids[chunk]], embeddings=vectors[chunk])

    def build_index(self) -> None:
        """Nothing left to build: Chroma indexes on add."""

    def open(self) -> None:
        self._collection = self._client.get_collection("bench")

    def search(self, query: np.ndarray, ef: int) -> list[int]:
        if ef != self._ef:
            self._collection.modify(configuration={"hnsw": {"ef_search": ef}})
            self._ef = ef
        found = self._collection.query(query_embeddings=query[None, :], n_results=K, include=[])
        return [int(i) for i in found["ids"][0]]


class LancePeer:
    """LanceDB embedded; IVF_HNSW_FLAT with one partition is a single HNSW graph over raw vectors."""

    indexes_on_add = False

    def __init__(self, path: Path, job: dict[str, Any]) -> None:
        import lancedb

        self._db = lancedb.connect(str(path))
        self._job = job
        self._table: Any = None

    def insert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        import pyarrow as pa

        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
        batch = pa.table(
            {
                "id": pa.array(ids, type=pa.int64()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
            }
        )
        if self._table is None:
            self._table = self._db.create_table("bench", data=batch)
        else:
            self._table.add(batch)

    def build_index(self) -> None:
        from lancedb.index import IvfHnswFlat

        config = IvfHnswFlat(
            distance_type="l2",
            num_partitions=1,
            m=self._job["M"],
            ef_construction=self._job["efConstruction"],
        )
        self._table.create_index("vector", config=config)

    def open(self) -> None:
        self._table = self._db.open_table("bench")

    def search(self, query: np.ndarray, ef: int) -> list[int]:
        found = (
            self._table.search(query)
            .distance_type("l2")
            .nprobes(1)
            .ef(ef)
            .limit(K)
            .select(["id", "_distance"])
            .to_arrow()
        )
        return [int(i) for i in found["id"].to_pylist()]


PEERS: dict[str, type[ChromaPeer] | type[LancePeer]] = {"chroma": ChromaPeer, "lancedb": LancePeer}


def build(peer: Peer, workdir: Path, job: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    vectors = np.load(workdir / "vectors.npy", mmap_mode="r")  # mapped: not this process's own memory
    batch = job["insert_batch"]
    insert_s = 0.0
    for start in range(0, vectors.shape[0], batch):
        rows = np.array(vectors[start : start + batch])
        ids = np.arange(start, start + rows.shape[0])
        began = time.perf_counter()
        peer.insert(ids, rows)
        insert_s += time.perf_counter() - began
    out["insert_rows_per_s"] = vectors.shape[0] / insert_s
    began = time.perf_counter()
    peer.build_index()
    if not peer.indexes_on_add:  # else the build is inside the insert time: no figure of its own
        out["index_build_s"] = time.perf_counter() - began
    del vectors, rows
    out["rss_after_build_mib"] = rss_mib()
    return out


def search(peer: Peer, workdir: Path, job: dict[str, Any]) -> dict[str, Any]:
    queries = np.load(workdir / "queries.npy")
    out: dict[str, Any] = {"rss_before_load_mib": rss_mib()}
    began = time.perf_counter()
    peer.open()
    peer.search(queries[0], 64)  # the first answer is what "loaded" means for an embedded store
    out["load_s"] = time.perf_counter() - began
    out["rss_after_load_mib"] = rss_mib()
    runs: dict[str, Any] = {}
    for name, count, ef in job["runs"]:
        ids: list[list[int]] = []
        millis: list[float] = []
        for query in queries[:count]:
            began = time.perf_counter()
            ids.append(peer.search(query, ef))
            millis.append((time.perf_counter() - began) * 1e3)
        runs[name] = {"ef": ef, "ids": ids, "ms": millis}
    out["runs"] = runs
    out["rss_after_search_mib"] = rss_mib()
    return out


def main() -> int:
    system, phase, workdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    job = json.loads((workdir / "job.json").read_text())
    peer = PEERS[system](workdir / "data", job)
    result = build(peer, workdir, job) if phase == "build" else search(peer, workdir, job)
    (workdir / f"{phase}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
