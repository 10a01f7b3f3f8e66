"""Two trees of SheafDB side by side as a cluster: nq=1 latency through the proxy and one query
worker's read call alone, the trees' clusters brought up in turn (``--rounds`` times each).

Each tree's code runs in the writer, the proxy and the Ray nodes (so the query-worker actors
import it too) through ``PYTHONPATH``; this script itself uses the current tree's. The cluster
is ``scale_out.cluster_under_test``'s (PostgreSQL, SeaweedFS, 2 Ray nodes, replica_number=2:
each search is one proxy -> one worker call). Prints the medians; writes no file.

    .venv/bin/python bench/scale_out_ab.py --old /path/to/old/tree --new . --rounds 2
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import scale_out
from grpc_latency import COLLECTION, SERVICE, percentiles, raw_requests
from workers import channel, wait_loaded

from sheafdb.engine.distribution.read_calls import READ_METHOD, SECRET_METADATA_KEY, ReadCall
from sheafdb.engine.models import SearchRequest
from sheafdb.storage.catalog import open_catalog

_services: dict[str, Path] = {}
_running_service = scale_out.running_service


@contextmanager
def _noted_service(name: str) -> Iterator[Path]:
    """scale_out's service, its state dir noted (the PostgreSQL URL is in it)."""
    with _running_service(name) as state:
        _services[name] = state
        yield state


def worker_call(work: Path, queries: np.ndarray) -> tuple[str, bytes, str]:
    """(a worker's address, a pickled search call for its replica, the cluster secret)."""
    catalog = open_catalog(
        (_services["postgres"] / "url").read_text().strip(), work / "probe", read_only=True
    )
    try:
        cid = catalog.resolve_collection("default", COLLECTION).collection_id
        replica = next(r for r in catalog.list_replicas() if r.collection_id == cid)
        address = {w.worker_id: w.address for w in catalog.list_workers()}[replica.worker_ids[0]]
        request = SearchRequest(COLLECTION, queries[123:124], 10, params={"ef": 64})
        call = ReadCall("search", "default", request, replica.replica_id, catalog.placement_version())
        return address, pickle.dumps(call), str(catalog.cluster_secret())
    finally:
        catalog.close()


def measure(
    port: int,
    processes: scale_out.ServingProcesses,
    payload: bytes,
    worker_read: tuple[str, bytes, str],
    calls: int,
) -> list[tuple[float, float, float, float]]:
    """Twice: (proxy p50, p99, CPU per search, the worker call's p50), in microseconds."""
    address, call, secret = worker_read
    out = []
    with channel(port) as proxy, grpc.insecure_channel(address) as worker:
        search = proxy.unary_unary(SERVICE + "Search")
        read = worker.unary_unary(READ_METHOD)
        for _ in range(2):
            p50, p99, cpu = percentiles(lambda: search(payload), calls, processes)
            w50, _, _ = percentiles(
                lambda: read(call, metadata=[(SECRET_METADATA_KEY, secret)]), calls, processes
            )
            out.append((p50, p99, cpu, w50))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="the tree to compare against")
    parser.add_argument("--new", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=1000, help="sequential searches per figure")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    scale_out.running_service = _noted_service  # type: ignore[assignment]
    cluster_args = argparse.Namespace(rows=args.rows, replicas=2)
    vectors = np.random.default_rng(7).random((args.rows, 128), dtype=np.float32)  # build()'s
    queries = (vectors[:2000] + np.float32(0.01)).astype(np.float32)
    payload = raw_requests(queries[123:124], [])["search"][1]
    figures: dict[str, list[tuple[float, float, float, float]]] = {"old": [], "new": []}
    for round_number in range(args.rounds):
        for name, tree in (("old", args.old), ("new", args.new)):
            os.environ["PYTHONPATH"] = str(Path(tree).resolve())
            work = Path(tempfile.mkdtemp(prefix="sheafdb-ab-"))
            try:
                with scale_out.cluster_under_test(cluster_args, work) as (port, processes):
                    wait_loaded(port, payload)
                    worker_read = worker_call(work, queries)
                    for figure in measure(port, processes, payload, worker_read, args.calls):
                        figures[name].append(figure)
                        p50, p99, cpu, w50 = figure
                        print(
                            f"{name} round {round_number + 1}: proxy p50 {p50 / 1000:.3f} ms, p99 "
                            f"{p99 / 1000:.3f} ms, CPU per search {cpu:.0f} us; worker call p50 "
                            f"{w50 / 1000:.3f} ms; load {os.getloadavg()[0]:.2f}",
                            flush=True,
                        )
            finally:
                shutil.rmtree(work, ignore_errors=True)
    for name, rows in figures.items():
        p50, p99, cpu, w50 = (statistics.median(r[i] for r in rows) for i in range(4))
        print(
            f"{name}: proxy p50 {p50 / 1000:.3f} ms, p99 {p99 / 1000:.3f} ms, CPU per search {cpu:.0f} us, "
            f"worker call p50 {w50 / 1000:.3f} ms",
            file=sys.stdout,
        )


if __name__ == "__main__":
    main()
