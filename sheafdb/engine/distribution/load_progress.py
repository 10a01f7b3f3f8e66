"""A cluster load's progress, from the workers' acks.

A collection is Loaded when every replica has every segment of the loaded partitions placed
and acked by its worker (Milvus: a replica serves once it has loaded everything, and the load
reports 100 only then). Progress counts acked (replica, segment) pairs; it reads 100 only when
all are in, and a load with no replica yet reads 0.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sheafdb.storage.placement_rows import ReplicaRecord, SegmentAssignment


def ack_progress(
    segments: Collection[int], replicas: Sequence[ReplicaRecord], assignments: Sequence[SegmentAssignment]
) -> int:
    """0..100 for ``segments`` (those of the partitions asked about)."""
    if not replicas:
        return 0
    replica_ids = {r.replica_id for r in replicas}
    acked = sum(
        1 for a in assignments if a.loaded and a.segment_id in segments and a.replica_id in replica_ids
    )
    total = len(replicas) * len(segments)
    if acked >= total:
        return 100
    return min(acked * 100 // total, 99)
