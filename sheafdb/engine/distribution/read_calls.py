"""The proxy ↔ query-worker read call (CLUSTER.md, Contract C).

A proxy sends one ``ReadCall`` per worker of the chosen replica over gRPC
(``/sheafdb.cluster.Worker/Read``), as ``pickle.dumps`` bytes; the worker answers a
``ReadAnswer`` the same way. Pickles are only accepted from callers holding the cluster
secret (the worker checks the ``sheafdb-cluster-secret`` metadata against the catalog's
meta), so these dataclasses never cross a trust boundary unauthenticated.
"""

from __future__ import annotations

from dataclasses import dataclass

from sheafdb.engine.models import (
    HybridSearchRequest,
    QueryRequest,
    QueryResult,
    SearchRequest,
    SearchResult,
)

READ_METHOD = "/sheafdb.cluster.Worker/Read"
SECRET_METADATA_KEY = "sheafdb-cluster-secret"


@dataclass(frozen=True)
class ReadCall:
    method: str  # "search" | "hybrid_search" | "query"
    db: str
    request: SearchRequest | HybridSearchRequest | QueryRequest
    replica_id: int
    # The placement version the proxy chose the replica's workers from; a worker that has not
    # applied it yet answers ReplicaNotAvailable rather than serve an older assignment.
    placement_version: int


@dataclass(frozen=True)
class ReadAnswer:
    result: SearchResult | QueryResult | None
    error_code: int = 0  # a SheafError's code, 0 = success
    error_message: str = ""
    larger_is_better: bool = True  # search: the metric's direction, for the proxy's reduce
