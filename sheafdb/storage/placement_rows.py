"""The catalog rows of a cluster's query workers and of where each loaded segment is served.

A mixin of ``SqlCatalog`` (its connection and transactions, in the SQL SQLite and PostgreSQL
share). Three tables and one counter:

- ``workers``: every registered query worker, its address, resource group, memory budget and
  lease (``expires_at``, renewed by the worker; past it, the worker is dead to the coordinator).
- ``placement_replicas``: the replicas of each loaded collection, each on its own workers.
- ``segment_assignments``: which worker of which replica serves which sealed segment, and
  whether the worker has loaded it (acked).
- ``meta['placement_version']``: bumped by every change of placement, registration and ack,
  so workers and proxies poll one number rather than the tables.

Workers' own writes (registration, lease renewals, acks) are the catalog's bookkeeping: not
fenced by the writer lease and not counted as catalog changes (followers would take the whole
catalog again for each); the writer's placement changes are both.

The writer's coordinator saves a placement while workers ack into it (other processes, the
same PostgreSQL tables), so ``save_placement`` changes rows in place rather than rewriting
them: an assignment that keeps its worker keeps its ack, whatever order the two commit in.

Worker ids count from 2: 1 is the one embedded node's id (engine/resource_groups.NODE_ID), so
an answer never confuses the two.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, Protocol

PLACEMENT_TABLES = """
CREATE TABLE IF NOT EXISTS workers (
    worker_id INTEGER PRIMARY KEY, address TEXT NOT NULL, hostname TEXT NOT NULL,
    ray_node_id TEXT NOT NULL, resource_group TEXT NOT NULL, budget_bytes INTEGER NOT NULL,
    used_bytes INTEGER NOT NULL, expires_at DOUBLE PRECISION NOT NULL, incarnation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS placement_replicas (
    collection_id INTEGER NOT NULL, replica_id INTEGER NOT NULL, resource_group TEXT NOT NULL,
    worker_ids TEXT NOT NULL, leader_id INTEGER NOT NULL, PRIMARY KEY (collection_id, replica_id));
CREATE TABLE IF NOT EXISTS segment_assignments (
    collection_id INTEGER NOT NULL, replica_id INTEGER NOT NULL, segment_id INTEGER NOT NULL,
    worker_id INTEGER NOT NULL, loaded INTEGER NOT NULL,
    PRIMARY KEY (collection_id, replica_id, segment_id));
CREATE INDEX IF NOT EXISTS segment_assignments_by_worker ON segment_assignments (worker_id);
"""

DEFAULT_WORKER_GROUP = "__default_resource_group"
# The first worker id handed out (see the module docstring).
FIRST_WORKER_ID = 2

WORKER_COLUMNS = (
    "worker_id, address, hostname, ray_node_id, resource_group, budget_bytes, used_bytes, "
    "expires_at, incarnation"
)


@dataclass(frozen=True)
class WorkerRecord:
    worker_id: int  # Milvus's query node id (GetReplicas node_ids); 0 when registering
    address: str  # "host:port" of the worker's internal read service
    hostname: str
    ray_node_id: str  # "" outside Ray
    resource_group: str = DEFAULT_WORKER_GROUP
    budget_bytes: int = 0
    used_bytes: int = 0
    expires_at: float = 0.0  # lease, time.time() seconds: a worker past it is dead
    incarnation: int = 0  # a fresh registration (a restarted actor) is a new incarnation


@dataclass(frozen=True)
class ReplicaRecord:
    collection_id: int
    replica_id: int
    resource_group: str
    worker_ids: tuple[int, ...]  # disjoint from every other replica's of the collection
    leader_id: int  # serves the growing rows (Milvus's shard leader)


@dataclass(frozen=True)
class SegmentAssignment:
    collection_id: int
    replica_id: int
    segment_id: int
    worker_id: int
    loaded: bool = False  # acked by the worker


class _Catalog(Protocol):
    def _tx(self, *, bookkeeping: bool = False) -> AbstractContextManager[Any]: ...
    def _read(self) -> AbstractContextManager[Any]: ...


def _worker_from_row(row: Sequence[Any]) -> WorkerRecord:
    return WorkerRecord(
        worker_id=row[0],
        address=row[1],
        hostname=row[2],
        ray_node_id=row[3],
        resource_group=row[4],
        budget_bytes=row[5],
        used_bytes=row[6],
        expires_at=float(row[7]),
        incarnation=row[8],
    )


def _bump_version(cur: Any) -> int:
    row = cur.execute(
        "INSERT INTO meta VALUES ('placement_version', 1) "
        "ON CONFLICT (key) DO UPDATE SET value = meta.value + 1 RETURNING value"
    ).fetchone()
    return int(row[0])


def _next_worker_id(cur: Any) -> int:
    row = cur.execute(
        "INSERT INTO meta VALUES ('next_worker_id', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = meta.value + 1 RETURNING value",
        (FIRST_WORKER_ID,),
    ).fetchone()
    return int(row[0])


class PlacementRows:
    def register_worker(self: _Catalog, record: WorkerRecord) -> WorkerRecord:
        """Register a worker (a new id when ``worker_id`` is 0) and return it as stored.

        Registering a known id again is a restart: a new incarnation that keeps its resource
        group (TransferNode's move outlives restarts) and holds nothing yet, so its acks are
        cleared and the segments placed on it load again.
        """
        with self._tx(bookkeeping=True) as cur:
            old = None
            if record.worker_id:
                row = cur.execute(
                    f"SELECT {WORKER_COLUMNS} FROM workers WHERE worker_id = ?", (record.worker_id,)
                ).fetchone()
                old = None if row is None else _worker_from_row(row)
            if old is not None:
                stored = replace(record, resource_group=old.resource_group, incarnation=old.incarnation + 1)
                cur.execute(
                    "UPDATE workers SET address = ?, hostname = ?, ray_node_id = ?, budget_bytes = ?, "
                    "used_bytes = ?, expires_at = ?, incarnation = ? WHERE worker_id = ?",
                    (
                        stored.address,
                        stored.hostname,
                        stored.ray_node_id,
                        stored.budget_bytes,
                        stored.used_bytes,
                        stored.expires_at,
                        stored.incarnation,
                        stored.worker_id,
                    ),
                )
                cur.execute(
                    "UPDATE segment_assignments SET loaded = 0 WHERE worker_id = ?", (stored.worker_id,)
                )
            else:
                worker_id = record.worker_id or _next_worker_id(cur)
                # The counter passes a chosen id, so it never hands that id out again.
                cur.execute(
                    "INSERT INTO meta VALUES ('next_worker_id', ?) ON CONFLICT (key) DO UPDATE SET "
                    "value = CASE WHEN meta.value < excluded.value THEN excluded.value ELSE meta.value END",
                    (worker_id,),
                )
                stored = replace(record, worker_id=worker_id, incarnation=1)
                cur.execute(
                    f"INSERT INTO workers ({WORKER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        stored.worker_id,
                        stored.address,
                        stored.hostname,
                        stored.ray_node_id,
                        stored.resource_group,
                        stored.budget_bytes,
                        stored.used_bytes,
                        stored.expires_at,
                        stored.incarnation,
                    ),
                )
            _bump_version(cur)
            return stored

    def renew_worker(self: _Catalog, worker_id: int, used_bytes: int, expires_at: float) -> bool:
        """Extend a worker's lease; False when the worker is unknown (removed: it must re-register)."""
        with self._tx(bookkeeping=True) as cur:
            return bool(
                cur.execute(
                    "UPDATE workers SET used_bytes = ?, expires_at = ? WHERE worker_id = ?",
                    (used_bytes, expires_at, worker_id),
                ).rowcount
            )

    def list_workers(self: _Catalog) -> list[WorkerRecord]:
        with self._read() as cur:
            rows = cur.execute(f"SELECT {WORKER_COLUMNS} FROM workers ORDER BY worker_id")
            return [_worker_from_row(r) for r in rows]

    def remove_worker(self: _Catalog, worker_id: int) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,))
            _bump_version(cur)

    def move_workers(self: _Catalog, worker_ids: Sequence[int], resource_group: str) -> None:
        """Put workers into ``resource_group`` (TransferNode, and the groups' requests/limits)."""
        with self._tx() as cur:
            cur.executemany(
                "UPDATE workers SET resource_group = ? WHERE worker_id = ?",
                [(resource_group, w) for w in worker_ids],
            )
            _bump_version(cur)

    def save_placement(
        self: _Catalog,
        collection_id: int,
        replicas: Sequence[ReplicaRecord],
        assignments: Sequence[SegmentAssignment],
    ) -> int:
        """Make the collection's placement exactly ``replicas`` and ``assignments``; the new version.

        An assignment that keeps its worker keeps the worker's ack (whatever ``loaded`` says);
        one that moves to another worker takes ``loaded`` as given.
        """
        with self._tx() as cur:
            kept_replicas = {r.replica_id for r in replicas}
            old_replicas = {
                r[0]
                for r in cur.execute(
                    "SELECT replica_id FROM placement_replicas WHERE collection_id = ?", (collection_id,)
                )
            }
            cur.executemany(
                "DELETE FROM placement_replicas WHERE collection_id = ? AND replica_id = ?",
                [(collection_id, r) for r in old_replicas - kept_replicas],
            )
            cur.executemany(
                "INSERT INTO placement_replicas VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (collection_id, replica_id) DO UPDATE SET "
                "resource_group = excluded.resource_group, worker_ids = excluded.worker_ids, "
                "leader_id = excluded.leader_id",
                [
                    (
                        collection_id,
                        r.replica_id,
                        r.resource_group,
                        json.dumps(list(r.worker_ids)),
                        r.leader_id,
                    )
                    for r in replicas
                ],
            )
            kept = {(a.replica_id, a.segment_id) for a in assignments}
            old = {
                (r[0], r[1])
                for r in cur.execute(
                    "SELECT replica_id, segment_id FROM segment_assignments WHERE collection_id = ?",
                    (collection_id,),
                )
            }
            cur.executemany(
                "DELETE FROM segment_assignments "
                "WHERE collection_id = ? AND replica_id = ? AND segment_id = ?",
                [(collection_id, r, s) for r, s in old - kept],
            )
            cur.executemany(
                "INSERT INTO segment_assignments VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (collection_id, replica_id, segment_id) DO UPDATE SET "
                "loaded = CASE WHEN segment_assignments.worker_id = excluded.worker_id "
                "AND segment_assignments.loaded = 1 THEN 1 ELSE excluded.loaded END, "
                "worker_id = excluded.worker_id",
                [
                    (collection_id, a.replica_id, a.segment_id, a.worker_id, int(a.loaded))
                    for a in assignments
                ],
            )
            return _bump_version(cur)

    def drop_placement(self: _Catalog, collection_id: int) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM placement_replicas WHERE collection_id = ?", (collection_id,))
            cur.execute("DELETE FROM segment_assignments WHERE collection_id = ?", (collection_id,))
            _bump_version(cur)

    def list_replicas(self: _Catalog, collection_id: int | None = None) -> list[ReplicaRecord]:
        sql = (
            "SELECT collection_id, replica_id, resource_group, worker_ids, leader_id FROM placement_replicas"
        )
        params: tuple[int, ...] = ()
        if collection_id is not None:
            sql, params = sql + " WHERE collection_id = ?", (collection_id,)
        with self._read() as cur:
            rows = cur.execute(sql + " ORDER BY collection_id, replica_id", params)
            return [ReplicaRecord(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4]) for r in rows]

    def list_assignments(
        self: _Catalog, *, collection_id: int | None = None, worker_id: int | None = None
    ) -> list[SegmentAssignment]:
        sql = "SELECT collection_id, replica_id, segment_id, worker_id, loaded FROM segment_assignments"
        where: list[str] = []
        params: list[int] = []
        for column, value in (("collection_id", collection_id), ("worker_id", worker_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._read() as cur:
            rows = cur.execute(sql + " ORDER BY collection_id, replica_id, segment_id", tuple(params))
            return [SegmentAssignment(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    def ack_segment(
        self: _Catalog, collection_id: int, replica_id: int, segment_id: int, worker_id: int
    ) -> None:
        """The worker has loaded the segment. An ack for a segment no longer placed on it is dropped."""
        with self._tx(bookkeeping=True) as cur:
            if cur.execute(
                "UPDATE segment_assignments SET loaded = 1 WHERE collection_id = ? AND replica_id = ? "
                "AND segment_id = ? AND worker_id = ? AND loaded = 0",
                (collection_id, replica_id, segment_id, worker_id),
            ).rowcount:
                _bump_version(cur)

    def placement_version(self: _Catalog) -> int:
        with self._read() as cur:
            row = cur.execute("SELECT value FROM meta WHERE key = 'placement_version'").fetchone()
            return 0 if row is None else int(row[0])
