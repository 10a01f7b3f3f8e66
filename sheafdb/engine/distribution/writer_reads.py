"""Where the writer's own write path reads rows: a delete by a general filter (the keys it
matches) and a partial upsert (the stored rows it merges into).

Embedded, the writer's load manager holds the loaded segments and answers. In cluster mode the
writer loads nothing (its query workers do), so once the workers are started these reads go
through ``ClusterReads`` (cluster_reads.py) as a proxy's do: one complete replica, fanned out,
reduced, retried elsewhere on a failure. They are Strong: a worker catches up with the log
before it reads, and the writer acknowledged every earlier write only once it was in the log.
The API layer attaches the cluster reads with its gRPC client to the workers
(api/cluster/writer_role.py); the engine imports no transport.

``attach`` happens once, at start-up, before the writer serves; ``_cluster`` is only replaced
whole, so readers need no lock.
"""

from __future__ import annotations

import pyarrow as pa

from sheafdb.engine.collection import Collection
from sheafdb.engine.distribution.cluster_reads import ClusterReads
from sheafdb.engine.load.load_manager import LoadManager
from sheafdb.engine.models import QueryRequest


class WriterReads:
    def __init__(self, loads: LoadManager) -> None:
        self._loads = loads
        self._cluster: ClusterReads | None = None

    def attach(self, reads: ClusterReads) -> None:
        """Read through the query workers from now on (cluster mode)."""
        previous, self._cluster = self._cluster, reads
        if previous is not None:
            previous.close()

    def query(self, coll: Collection, request: QueryRequest) -> pa.Table:
        cluster = self._cluster
        if cluster is None:
            return self._loads.query(coll, request).table
        return cluster.query(coll.db_name, request).table

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
