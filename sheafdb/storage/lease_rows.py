"""The catalog rows of leases: who may write, and the fencing token that proves it.

A mixin of ``SqlCatalog`` (its one connection and transactions; the SQL SQLite and PostgreSQL
share). A lease is a named row ``(holder, token, expires_at)``. Whoever takes a free or expired
lease bumps its ``token``; every write the holder makes afterwards (a log append, see
pg_log.py) checks in its own transaction that the row still carries that token, so a holder
that was deposed while it was paused (a GC pause, SIGSTOP, a partition) cannot write any
more, whatever its clock says. ``expires_at`` is ``time.time()`` seconds of the machine that
took or renewed the lease: the hosts' clocks are assumed to agree to well within a ttl (NTP).

Names: ``"writer"``, the cluster's coordinator (engine/write/writer_lease.py);
``"member/<address>"``, a live writer process that may own collections' logs; and
``"log/<collection id>"``, the one process that appends to that collection's log
(engine/write/log_ownership.py). All in the one ``leases`` table, under the same token rules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sheafdb.errors import CommitOutcomeUnknown

LEASE_TABLES = """
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, token INTEGER NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL);
"""

# The cluster's writer (the coordinator).
WRITER_LEASE = "writer"
# A collection's log owner: ``log/<collection id>``.
LOG_LEASE_PREFIX = "log/"
# A live writer process that may own logs: ``member/<host:port>``.
MEMBER_LEASE_PREFIX = "member/"


def log_lease_name(collection_id: int) -> str:
    return f"{LOG_LEASE_PREFIX}{collection_id}"


def member_lease_name(address: str) -> str:
    return f"{MEMBER_LEASE_PREFIX}{address}"


def log_lease_collection(name: str) -> int | None:
    """The collection id a ``log/<id>`` lease name carries; None for any other name."""
    rest = name.removeprefix(LOG_LEASE_PREFIX)
    return int(rest) if rest != name and rest.isdigit() else None


# Told by a fenced store of a write of the holder's whose commit went unanswered (a writer
# steps down: engine/write/writer_lease.py); the store raises the error after.
CommitListener = Callable[[CommitOutcomeUnknown], None]


@dataclass(frozen=True)
class Lease:
    name: str  # "writer", "log/<collection id>", "member/<host:port>"
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

    def take_lease(self: _Transactions, name: str, holder: str, ttl_s: float) -> Lease:
        """Take the lease whoever holds it, live or not (token + 1): the coordinator's steal of
        a collection's log. The holder it had is fenced from this commit on: its writes in
        flight (holding the row FOR SHARE) end first, later ones find another token."""
        expires_at = time.time() + ttl_s
        with self._tx(bookkeeping=True) as cur:
            cur.execute(
                "INSERT INTO leases VALUES (?, ?, 1, ?) ON CONFLICT (name) DO UPDATE SET "
                "holder = excluded.holder, token = leases.token + 1, expires_at = excluded.expires_at",
                (name, holder, expires_at),
            )
            (token,) = cur.execute("SELECT token FROM leases WHERE name = ?", (name,)).fetchone()
        return Lease(name, holder, int(token), expires_at)

    def live_leases(self: _Transactions, prefix: str) -> list[Lease]:
        """The leases whose name starts with ``prefix`` and that have not expired, by name."""
        with self._read() as cur:
            rows = cur.execute(
                "SELECT name, holder, token, expires_at FROM leases "
                "WHERE substr(name, 1, ?) = ? AND expires_at > ? ORDER BY name",
                (len(prefix), prefix, time.time()),
            )
            return [Lease(r[0], r[1], int(r[2]), float(r[3])) for r in rows]

    def renew_leases(self: _Transactions, leases: Sequence[Lease], ttl_s: float) -> list[Lease]:
        """Extend every lease of ``leases`` still held (same token and holder) by ``ttl_s``
        from now, in one statement; returns the renewed ones. As ``renew_lease``, an expired
        lease nobody took is renewed."""
        if not leases:
            return []
        expires_at = time.time() + ttl_s
        rows = ", ".join("(?, ?, ?)" for _ in leases)
        params: list[object] = [expires_at]
        for lease in leases:
            params += [lease.name, lease.token, lease.holder]
        with self._tx(bookkeeping=True) as cur:
            returned = cur.execute(
                f"UPDATE leases SET expires_at = ? WHERE (name, token, holder) IN (VALUES {rows}) "
                "RETURNING name, token",
                params,
            )
            renewed = {(r[0], int(r[1])) for r in returned}
        return [
            Lease(lease.name, lease.holder, lease.token, expires_at)
            for lease in leases
            if (lease.name, lease.token) in renewed
        ]

    def drop_lease(self: _Transactions, name: str) -> None:
        """Delete the lease row (a dropped collection's log lease): whoever held it is fenced.

        A collection's log lease whose collection is still in the catalog (its drop failed
        part way) is kept instead, expired and with token + 1: a new row would start again
        at token 1, a token an old holder of the log may still carry."""
        collection_id = log_lease_collection(name)
        with self._tx(bookkeeping=True) as cur:
            exists = collection_id is not None and (
                cur.execute("SELECT 1 FROM collections WHERE collection_id = ?", (collection_id,)).fetchone()
                is not None
            )
            if exists:
                cur.execute("UPDATE leases SET token = token + 1, expires_at = 0 WHERE name = ?", (name,))
            else:
                cur.execute("DELETE FROM leases WHERE name = ?", (name,))
