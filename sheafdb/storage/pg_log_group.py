"""One group commit of the PostgreSQL log (pg_log.py): records of many collections, each
under its own fence, inserted in one statement.

A record's fence is the lease its log was opened with: the collection's log owner lease
(``log/<collection id>``) for a log owner's log, else the store's (the coordinator's
``writer`` lease), or none (tests and tools). One statement (one round trip, its own
transaction) reads every fence of the group's row ``FOR SHARE`` and inserts exactly the
records whose fence still carries its token, so a takeover's UPDATE of a lease row waits for
an append in flight under it to commit, and records under a fence that was taken over are
not inserted while the others of the group are. The statement returns the records it
inserted: the fences of the others no longer held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sheafdb.storage.lease_rows import Lease
from sheafdb.storage.pg_connection import PgConnection

# A fence as the database knows it: the lease's name and the token its holder took.
FenceKey = tuple[str, int]

# The single fence of a trim or a removal, inside its transaction.
FENCE = "SELECT 1 FROM leases WHERE name = %s AND token = %s FOR SHARE"
_COLUMNS = "collection_id, lsn, kind, partition_id, ts, payload, write_id"
_RECORDS = (
    "unnest(%s::bigint[], %s::bigint[], %s::text[], %s::bigint[], %s::bigint[], %b::bytea[], %s::text[]"
)
_UNFENCED_INSERT = f"INSERT INTO log_records ({_COLUMNS}) SELECT r.* FROM {_RECORDS}) AS r"
# Every record under one fence (the usual group): all of them inserted, or none.
_ONE_FENCE_INSERT = f"WITH fence AS ({FENCE}) {_UNFENCED_INSERT} CROSS JOIN fence"
# ``held``: the ordinals (1, 2, ...) of the fences whose row carries their token, locked FOR
# SHARE until commit, in name order (sorted before locked; fewer deadlocks with a renewal of
# many leases, see pg_log.py). A record's fence ordinal 0: unfenced. The records inserted
# come back (a fence held for all its records or for none).
_FENCED_INSERT = (
    "WITH held AS MATERIALIZED (SELECT f.i FROM unnest(%s::text[], %s::bigint[]) "
    "WITH ORDINALITY AS f(name, token, i) "
    "JOIN leases l ON l.name = f.name AND l.token = f.token ORDER BY l.name FOR SHARE OF l) "
    f"INSERT INTO log_records ({_COLUMNS}) SELECT r.c, r.l, r.k, r.p, r.t, r.b, r.w "
    f"FROM {_RECORDS}, %s::bigint[]) AS r(c, l, k, p, t, b, w, f) "
    "WHERE r.f = 0 OR r.f IN (SELECT i FROM held) RETURNING collection_id, lsn"
)


def fence_key(fence: Lease) -> FenceKey:
    return (fence.name, fence.token)


@dataclass(eq=False)
class PendingRecord:
    """An append waiting in the group commit's queue (pg_log.py's ``_cond`` guards it)."""

    collection_id: int
    lsn: int
    kind: str
    partition_id: int
    timestamp: int
    payload: bytes
    write_id: str | None
    fence: Lease | None  # the lease this append checks; None: unfenced
    done: bool = False
    error: BaseException | None = None


def insert_group(pg: PgConnection, group: Sequence[PendingRecord]) -> list[Lease]:
    """Insert ``group`` in one statement; returns the fences that no longer held (their
    records were not inserted; every other record was)."""
    columns = (
        [e.collection_id for e in group],
        [e.lsn for e in group],
        [e.kind for e in group],
        [e.partition_id for e in group],
        [e.timestamp for e in group],
        [e.payload for e in group],
        [e.write_id for e in group],
    )
    fences: dict[FenceKey, Lease] = {}
    for entry in group:
        if entry.fence is not None:
            fences.setdefault(fence_key(entry.fence), entry.fence)
    if not fences:
        pg.execute(_UNFENCED_INSERT, columns)
        return []
    if len(fences) == 1 and all(e.fence is not None for e in group):
        ((key, fence),) = fences.items()
        count = pg.execute(_ONE_FENCE_INSERT, (*key, *columns)).rowcount
        return [] if count == len(group) else [fence]
    ordinal = {key: i for i, key in enumerate(fences, start=1)}
    inserted = {
        (int(row[0]), int(row[1]))
        for row in pg.execute(
            _FENCED_INSERT,
            (
                [name for name, _ in fences],
                [token for _, token in fences],
                *columns,
                [0 if e.fence is None else ordinal[fence_key(e.fence)] for e in group],
            ),
        ).fetchall()
    }
    held = {fence_key(e.fence) for e in group if e.fence is not None and (e.collection_id, e.lsn) in inserted}
    return [fence for key, fence in fences.items() if key not in held]
