"""Which collections' logs this writer process owns: the log owner leases and their balance.

Why: in cluster mode every collection's log has one appender, the holder of the lease
``log/<collection id>`` (lease_rows.py), as a Milvus vchannel has one streaming node. Every
cluster writer process (the coordinator's and each ``--role shard-writer``) is a *member*:
it holds ``member/<address>`` while it lives, and runs one ``LogOwnership`` that keeps its log
leases and adopts the collections nobody owns, so that a collection whose owner died (or
paused past its ttl) gets a new owner within about a ttl, and new collections spread over
the members.

Each round (every ``ttl_s / 4``):

1. A held log lease whose expiry passed before the round (a paused process, a database out
   of reach) is lost: a member that woke up does not go on as if nobody could have taken
   it. The member lease and every other held lease are renewed in one statement
   (``renew_leases``); one not renewed (taken over by ``take_lease``, or dropped with its
   collection) is lost too. Lost -> ``on_lost(collection_id)``.
2. Adoption: the collections of the catalog (every database) without a live ``log/`` lease
   are taken (``try_acquire_lease``, token + 1) by the least loaded live member: load = the
   live ``log/`` leases a member holds, ties to the smallest address. A member takes one
   such collection per round while another member is as loaded as it (so two members share
   the new collections: the other one is the least loaded at its next round), as many as
   keep it below every other member's load, and all of them when it is the only live member.
   Taken -> ``on_acquired(lease)``.

The appends themselves are fenced by the lease's token (pg_log.py, ``PgLogs.open(cid,
fence=lease)``): a member that lost a lease cannot append under it, whatever this object
believes. ``lease_of`` answers from memory and returns None for a lease past its expiry, so
a write refused here is refused before it goes out even while a renewal hangs.

Threads and locks: the thread ``sheafdb-log-ownership`` runs the rounds. ``_turn`` (a
re-entrant lock) serialises what changes the held leases: a round, ``take``, ``forget`` and
``close``; the callbacks run under it, in the order the changes happened (on the ownership
thread, or on the thread that called ``take``), so they must not block long (nor raise: an
exception ends the round, or ``take``, with the lease held); they may call this object
back. ``_lock`` guards the dict of held leases for ``lease_of`` and ``owned``, which the
write path calls and which never wait for the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sheafdb.errors import ServiceUnavailable
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.lease_rows import (
    LOG_LEASE_PREFIX,
    MEMBER_LEASE_PREFIX,
    Lease,
    log_lease_collection,
    log_lease_name,
    member_lease_name,
)

log = logging.getLogger("sheafdb.log_ownership")


class LogOwnership:
    """The log leases of one member, ``holder`` (its advertised "host:port").

    ``catalog`` is best this object's own connection (renewals then never queue behind the
    engine's transactions); the caller closes it, after ``close``."""

    def __init__(
        self,
        catalog: Catalog,
        holder: str,
        *,
        ttl_s: float,
        on_acquired: Callable[[Lease], None],
        on_lost: Callable[[int], None],
    ) -> None:
        self._catalog = catalog
        self.holder = holder
        self.ttl_s = ttl_s
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._turn = threading.RLock()
        self._lock = threading.Lock()
        self._held: dict[int, Lease] = {}  # guarded by _lock; changed under _turn
        self._member: Lease | None = None  # under _turn
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Join as a member (the member lease, taken from an earlier incarnation of this
        address if it still holds it) and start the rounds; the first one runs at once."""
        with self._turn:
            self._member = self._catalog.take_lease(member_lease_name(self.holder), self.holder, self.ttl_s)
        self._thread = threading.Thread(target=self._run, name="sheafdb-log-ownership", daemon=True)
        self._thread.start()

    # -- what this member owns -------------------------------------------------------------
    def lease_of(self, collection_id: int) -> Lease | None:
        """The live lease on ``collection_id``'s log this process holds; None otherwise."""
        with self._lock:
            lease = self._held.get(collection_id)
        return lease if lease is not None and lease.expires_at > time.time() else None

    def owned(self) -> dict[int, Lease]:
        """Every live log lease this process holds, by collection id."""
        now = time.time()
        with self._lock:
            return {cid: lease for cid, lease in self._held.items() if lease.expires_at > now}

    def take(self, collection_id: int) -> Lease:
        """Take ``collection_id``'s log now, whoever owns it (its owner is fenced from this
        commit on), and keep renewing it; tells ``on_acquired``."""
        with self._turn:
            if self._closing.is_set():
                raise ServiceUnavailable("this writer is stopping: it takes no collection's log")
            lease = self._catalog.take_lease(log_lease_name(collection_id), self.holder, self.ttl_s)
            self._hold(collection_id, lease)
            self._on_acquired(lease)
            return lease

    def forget(self, collection_id: int) -> None:
        """Stop renewing ``collection_id``'s lease (its collection was dropped); no ``on_lost``."""
        with self._turn, self._lock:
            self._held.pop(collection_id, None)

    def close(self) -> None:
        """Stop the rounds and give up every held lease and the member lease at once, so
        other members adopt the logs without waiting out the ttl."""
        self._closing.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.ttl_s)
            if thread.is_alive():
                # A round hangs on a silent network, holding the catalog: the leases expire.
                log.warning("a log ownership round still hangs; its leases expire unrenewed")
                with self._lock:
                    self._held = {}
                return
        with self._turn:
            with self._lock:
                leases, self._held = list(self._held.values()), {}
            if self._member is not None:
                leases.append(self._member)
                self._member = None
            for lease in leases:
                try:
                    self._catalog.release_lease(lease)
                except Exception as exc:  # noqa: BLE001 - it then expires by itself
                    log.warning("could not give up the %s lease (it expires unrenewed): %s", lease.name, exc)

    # -- the rounds ------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                self._round()
            except Exception as exc:  # noqa: BLE001 - the database may be back by the next round
                log.warning("log ownership round failed: %s", exc)
            self._closing.wait(self.ttl_s / 4)

    def _round(self) -> None:
        """One round: renew what is held, drop what was lost, adopt what nobody owns."""
        with self._turn:
            if self._closing.is_set() or self._member is None:
                return
            self._renew()
            self._adopt()

    def _renew(self) -> None:
        assert self._member is not None
        now = time.time()
        with self._lock:
            held = dict(self._held)
        keep: dict[int, Lease] = {}
        for cid, lease in held.items():
            if lease.expires_at > now:
                keep[cid] = lease
            else:
                log.warning("the %s lease (token %d) expired unrenewed: lost", lease.name, lease.token)
                self._lose(cid)
        renewals = self._catalog.renew_leases([self._member, *keep.values()], self.ttl_s)
        renewed = {lease.name: lease for lease in renewals}
        member_name = self._member.name
        if member_name in renewed:
            self._member = renewed[member_name]
        else:
            log.error("the %s lease was taken by another process; taking it back", member_name)
            self._member = self._catalog.take_lease(member_name, self.holder, self.ttl_s)
        for cid, lease in keep.items():
            if lease.name in renewed:
                self._hold(cid, renewed[lease.name])
            else:
                log.warning("the %s lease (token %d) was taken or dropped: lost", lease.name, lease.token)
                self._lose(cid)

    def _adopt(self) -> None:
        live = self._catalog.live_leases(LOG_LEASE_PREFIX)
        owners = {log_lease_collection(lease.name): lease.holder for lease in live}
        orphans = [c.collection_id for c in self._catalog.list_collections() if c.collection_id not in owners]
        if not orphans:
            return
        members = {lease.holder for lease in self._catalog.live_leases(MEMBER_LEASE_PREFIX)}
        members.add(self.holder)
        load = dict.fromkeys(members, 0)
        for holder in owners.values():
            if holder in load:
                load[holder] += 1
        others = [(load[m], m) for m in members if m != self.holder]
        taken = 0
        for cid in orphans:
            mine = load[self.holder]
            if others and ((mine, self.holder) > min(others) or (taken and mine >= min(others)[0])):
                return
            adopted = self._catalog.try_acquire_lease(log_lease_name(cid), self.holder, self.ttl_s)
            if adopted is None:
                continue  # another member was quicker
            log.info("adopted the log of collection %d (token %d)", cid, adopted.token)
            self._hold(cid, adopted)
            load[self.holder] += 1
            taken += 1
            self._on_acquired(adopted)

    def _hold(self, collection_id: int, lease: Lease) -> None:
        with self._lock:
            self._held[collection_id] = lease

    def _lose(self, collection_id: int) -> None:
        with self._lock:
            self._held.pop(collection_id, None)
        self._on_lost(collection_id)
