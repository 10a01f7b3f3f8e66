"""The catalog rows of leases: who may write, and the fencing token that proves it.

A mixin of ``SqlCatalog`` (its one connection and transactions; the SQL SQLite and PostgreSQL
share). A lease is a named row ``(holder, token, expires_at)``. Whoever takes a free or expired
lease bumps its ``token``; every write the holder makes afterwards (a log append, see
pg_log.py) checks in its own transaction that the row still carries that token, so a holder
that was deposed while it was paused (a GC pause, SIGSTOP, a partition) cannot write any
more, whatever its clock says. ``expires_at`` is ``time.time()`` seconds of the machine that
took or renewed the lease: the hosts' clocks are assumed to agree to well within a ttl (NTP).

One name, ``"writer"``, for the whole cluster in this build; the table is keyed by name so
per-shard writers can each get their own lease later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sheafdb.errors import CommitOutcomeUnknown

LEASE_TABLES = """
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, token INTEGER NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL);
"""

# The one lease of this build: the cluster's writer.
WRITER_LEASE = "writer"
LOG_LEASE_PREFIX = "log/"


def log_lease_name(collection_id: int) -> str:
    return f"{LOG_LEASE_PREFIX}{collection_id}"


# Told by a fenced store of a write of the holder's whose commit went unanswered (a writer
# steps down: engine/write/writer_lease.py); the store raises the error after.
CommitListener = Callable[[CommitOutcomeUnknown], None]


@dataclass(frozen=True)
class Lease:
    name: str  # "writer"
    holder: str  # the holder's address "host:port" (its Milvus gRPC port, where proxies relay)
    token: int  # fencing token: +1 on every takeover; appends check it
    expires_at: float  # time.time() seconds


class _Transactions(Protocol):
    def _tx(self, *, bookkeeping: bool = ...) -> AbstractContextManager[Any]: ...
    def _read(self) -> AbstractContextManager[Any]: ...


class LeaseRows:
    def current_lease(self: _Transactions, name: str) -> Lease | None:
        """The lease row as it is now (possibly expired), None if nobody ever took it."""
        with self._read() as cur:
            row = cur.execute(
                "SELECT holder, token, expires_at FROM leases WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else Lease(name, row[0], int(row[1]), float(row[2]))

    def try_acquire_lease(self: _Transactions, name: str, holder: str, ttl_s: float) -> Lease | None:
        """Take the lease if nobody holds it or its holder let it expire: token + 1.
        None while someone else (or an earlier incarnation of ``holder``) holds it.

        Safe between processes: the conditional UPDATE takes the row lock, so of two
        contenders only one sees the row still expired; the INSERT of a first lease is
        decided by the primary key."""
        now = time.time()
        expires_at = now + ttl_s
        with self._tx(bookkeeping=True) as cur:
            cur.execute(
                "UPDATE leases SET holder = ?, token = token + 1, expires_at = ? "
                "WHERE name = ? AND expires_at <= ?",
                (holder, expires_at, name, now),
            )
            if cur.rowcount == 0:
                cur.execute(
                    "INSERT INTO leases VALUES (?, ?, 1, ?) ON CONFLICT (name) DO NOTHING",
                    (name, holder, expires_at),
                )
                if cur.rowcount == 0:
                    return None
            (token,) = cur.execute("SELECT token FROM leases WHERE name = ?", (name,)).fetchone()
        return Lease(name, holder, int(token), expires_at)

    def renew_lease(self: _Transactions, lease: Lease, ttl_s: float) -> Lease | None:
        """Extend ``lease`` by ``ttl_s`` from now; None when it was lost (the row carries
        another token: someone took over). A lease that expired but was not taken is
        renewed: its token still fences every write, so nothing was at risk."""
        expires_at = time.time() + ttl_s
        with self._tx(bookkeeping=True) as cur:
            cur.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND token = ? AND holder = ?",
                (expires_at, lease.name, lease.token, lease.holder),
            )
            if cur.rowcount == 0:
                return None
        return Lease(lease.name, lease.holder, lease.token, expires_at)

    def release_lease(self: _Transactions, lease: Lease) -> None:
        """Give the lease up at once (a clean stop): a standby need not wait out the ttl.
        Nothing happens if it was already lost."""
        with self._tx(bookkeeping=True) as cur:
            cur.execute(
                "UPDATE leases SET expires_at = 0 WHERE name = ? AND token = ? AND holder = ?",
                (lease.name, lease.token, lease.holder),
            )

    def resign_lease(self: _Transactions, lease: Lease) -> None:
        """Give the lease up and fence its token at once (a writer that steps down): token + 1,
        expired. Every later write carrying ``lease``'s token is refused, and a standby takes
        over at once; a write of the holder's still in flight (holding the row FOR SHARE) ends
        first. Nothing happens if it was already lost."""
        with self._tx(bookkeeping=True) as cur:
            cur.execute(
                "UPDATE leases SET token = token + 1, expires_at = 0 "
                "WHERE name = ? AND token = ? AND holder = ?",
                (lease.name, lease.token, lease.holder),
            )
