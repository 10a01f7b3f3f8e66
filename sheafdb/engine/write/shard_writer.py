"""The DML path of a log owner: Insert, Upsert and Delete appended to the collection's log,
by the one process that holds its lease ``log/<collection_id>`` (SHARDS.md).

Why: in cluster mode one writer per collection owns its log (Milvus's streaming node owning a
vchannel's WAL); several owners append side by side, each to its own collections' logs, while
the coordinator does DDL and follows every log into its growing rows (the query workers too).
So a log owner keeps no rows: it validates, numbers, stamps and routes a batch exactly as the
embedded write path (writes.py's ``Writer``, reused whole over ``LogOnlyCollection``, a
collection runtime whose records go to the log and nowhere else), and acknowledges it once
its log record is committed.

- Names and aliases resolve through the catalog; the records (schema, properties,
  partitions) are kept until the catalog's change counter moves, so a DDL committed before a
  write (an added field, a new partition, a dropped collection) is seen by that write.
- A collection whose log lease this process does not hold, or an append the log's fence
  refuses (another member took the lease over meanwhile): ``NotLogOwner``, which the edge
  answers as gRPC UNAVAILABLE / HTTP 503 so the proxy retries on the current owner. A
  collection nobody owns yet (just made) is waited for, up to a lease ttl: the members adopt
  it within a round, and it may be this one.
- Each collection's log is opened with the lease it is appended under as its fence
  (``LogStore.open(cid, fence=lease)``), once per lease token: a lease taken again (a new
  token) opens the log afresh (its next lsn read again after the other owner's appends).
- Reads a write needs (a delete by a general filter, a partial upsert) go through the query
  workers (``ClusterReads``), as the cluster writer's own do (distribution/writer_reads.py).
- Relayed writes carry a ``WriteTag``; a retried one is answered from the log (write_ids.py).

Locks: ``_lock`` guards ``_counter``, ``_names`` and ``_open_logs`` (held for dict work, and
while a log is (re)opened for a new lease, which is rare). Appends run outside it, concurrently
(the log store's group commit batches them); the Writer has its own locks (writes.py).
Threads: none of its own but ``sheafdb-shard-writer-close`` (``close``, waited for at most a
ttl); its LogOwnership runs ``sheafdb-log-ownership``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from sheafdb.engine.collection import Collection
from sheafdb.engine.distribution.cluster_reads import ClusterReads, WorkerClient
from sheafdb.engine.models import CollectionInfo, MutationResult
from sheafdb.engine.name_rules import check_collection_name, check_partition_name
from sheafdb.engine.write.log_ownership import LogOwnership
from sheafdb.engine.write.timestamp_source import writer_oracle
from sheafdb.engine.write.write_ids import WriteTag
from sheafdb.engine.write.writes import Writer
from sheafdb.errors import NotLogOwner, WriterFenced
from sheafdb.schema import CollectionSchema
from sheafdb.storage.catalog import Catalog, open_catalog
from sheafdb.storage.lease_rows import CommitListener, Lease, log_lease_name, member_lease_name
from sheafdb.storage.log import CollectionLog, LogStore, open_log_store
from sheafdb.storage.records import CollectionRecord
from sheafdb.storage.timestamps import TimestampOracle

log = logging.getLogger("sheafdb.shard_writer")

# A log owner keeps no growing rows (LogOnlyCollection.apply), so the Writer never seals here.
_NEVER = sys.maxsize
# How often a write to a collection nobody owns looks whether it was adopted.
_ADOPTION_POLL_S = 0.05


class LogOnlyCollection(Collection):
    """A collection runtime whose writes go to its log and nowhere else: ``write`` (the
    base's) appends the record, ``apply`` keeps nothing (the coordinator and the query
    workers follow the log). ``log_of`` gives the log to append to at that moment (the owner's,
    under its current lease; raising ``NotLogOwner`` when this process holds none)."""

    def __init__(
        self,
        record: CollectionRecord,
        partitions: Mapping[str, int],
        log_of: Callable[[int], CollectionLog],
    ) -> None:
        super().__init__(record, partitions, (), None)
        self._log_of = log_of

    @property
    def wal(self) -> CollectionLog:
        return self._log_of(self.collection_id)

    def apply(self, kind: str, partition_id: int, lsn: int, timestamp: int, batch: pa.Table) -> None:
        """Nothing kept: the record is in the log, which the followers apply."""


@dataclass(frozen=True)
class _OpenLog:
    token: int  # of the lease it is fenced by
    log: CollectionLog


class ShardWriter:
    """Thread-safe. Closes what it is given (the ownership first: its leases are released).
    ``ownership``: this process's LogOwnership (the coordinator takes leases over by it);
    ``ownership_catalog``: its own catalog connection, closed after it."""

    def __init__(
        self,
        catalog: Catalog,
        logs: LogStore,
        ownership: LogOwnership,
        *,
        oracle: TimestampOracle,
        reads: ClusterReads,
        ownership_catalog: Catalog | None = None,
    ) -> None:
        self._catalog = catalog
        self._ownership_catalog = ownership_catalog
        self._logs = logs
        self.ownership = ownership
        self._reads = reads
        self._lock = threading.Lock()
        self._counter: int | None = None  # the catalog's change counter _names was read at
        self._names: dict[tuple[str, str], LogOnlyCollection] = {}
        self._open_logs: dict[int, _OpenLog] = {}
        self._writer = Writer(
            oracle,
            catalog.allocate_ids,
            _NEVER,
            seal=lambda coll: None,
            # A load config in the catalog: the query workers serve (or are loading) it.
            is_loaded=lambda coll: catalog.get_load_config(coll.collection_id) is not None,
            query=lambda coll, request: reads.query(coll.db_name, request).table,
        )

    @classmethod
    def open(
        cls,
        catalog_url: str,
        data_dir: Path,
        holder: str,
        *,
        ttl_s: float,
        worker_client: Callable[[Catalog], WorkerClient],
        on_commit_unknown: CommitListener | None = None,
        on_acquired: Callable[[Lease], None] = lambda lease: None,
        on_lost: Callable[[int], None] = lambda collection_id: None,
    ) -> ShardWriter:
        """A log owner member ``holder`` ("host:port") on the cluster's PostgreSQL catalog,
        its ownership loop started. ``worker_client``: the transport to the query workers
        (the api layer's), given the writer's catalog; ``on_commit_unknown``: told when the
        log store fail-stops (the process should leave); ``on_acquired`` / ``on_lost``: the
        ownership's callbacks (on its thread)."""
        catalog = open_catalog(catalog_url, data_dir)
        try:
            logs = open_log_store(catalog_url, data_dir, on_commit_unknown=on_commit_unknown)
        except BaseException:
            catalog.close()
            raise
        # Its own connection: renewals never queue behind the writes' catalog reads.
        leases = open_catalog(catalog_url, data_dir)
        ownership = LogOwnership(leases, holder, ttl_s=ttl_s, on_acquired=on_acquired, on_lost=on_lost)
        writer = cls(
            catalog,
            logs,
            ownership,
            oracle=writer_oracle(catalog, catalog_url, catalog.max_timestamp()),
            reads=ClusterReads(catalog, worker_client(catalog)),
            ownership_catalog=leases,
        )
        ownership.start()
        return writer

    # -- DML (the Engine's signatures: the edge calls either) --------------------------------
    def insert(
        self, db: str, name: str, data: pa.Table, partition: str = "", *, tag: WriteTag | None = None
    ) -> MutationResult:
        coll = self._owned(db, name, partition)
        with _fence_refusal(coll.collection_id):
            return self._writer.insert(coll, data, partition, tag)

    def upsert(
        self,
        db: str,
        name: str,
        data: pa.Table,
        partition: str = "",
        *,
        partial_update: bool = False,
        tag: WriteTag | None = None,
    ) -> MutationResult:
        coll = self._owned(db, name, partition)
        with _fence_refusal(coll.collection_id):
            return self._writer.upsert(coll, data, partition, partial_update=partial_update, tag=tag)

    def delete(
        self,
        db: str,
        name: str,
        filter_text: str,
        params: Mapping[str, object] | None = None,
        partition: str = "",
    ) -> MutationResult:
        coll = self._owned(db, name, partition)
        with _fence_refusal(coll.collection_id):
            return self._writer.delete(coll, filter_text, params, partition)

    def describe_collection(self, db: str, name: str) -> CollectionInfo:
        """As the Engine's: every SDK describes a collection (its schema) before it writes to
        it, so a client that reaches a shard writer directly can write too."""
        coll = self._collection(db, name)
        aliases = self._catalog.list_aliases(coll.record.db_name, coll.collection_id)
        # The catalog keeps no stamp of the last change: the creation (as after a restart).
        return CollectionInfo.of(
            coll.record,
            num_partitions=len(coll.partitions),
            aliases=tuple(a.alias for a in aliases),
            updated_timestamp=coll.record.created_ts,
        )

    def collection_schema(self, db: str, name: str) -> CollectionSchema:
        """The schema as the catalog has it now (the edge types a request's columns by it)."""
        return self._collection(db, name).schema

    def append(
        self,
        collection_id: int,
        kind: str,
        partition_id: int,
        ts: int,
        batch: pa.Table,
        write_id: str | None = None,
    ) -> int:
        """The coordinator's own appends (truncate, bulk import): the log lease is taken first
        when this process does not hold it (fencing its owner), then the record appended under
        it; returns its lsn."""
        if self.ownership.lease_of(collection_id) is None:
            self.ownership.take(collection_id)
        with _fence_refusal(collection_id):
            return self._log_of(collection_id).append(kind, partition_id, ts, batch, write_id)

    def member_lease(self) -> Lease | None:
        """This member's lease as the catalog has it now (its ownership renews it): a
        process whose catalog is out of reach for longer than its ttl leaves on it."""
        lease = self._catalog.current_lease(member_lease_name(self.ownership.holder))
        return lease if lease is not None and lease.holder == self.ownership.holder else None

    def close(self) -> None:
        """Give the leases up (other members adopt the logs at once) and close the
        connections, waiting at most a lease ttl: on a silent network that hangs, and the
        leases then expire unrenewed (the connections go with the process)."""
        closing = threading.Thread(target=self._close, name="sheafdb-shard-writer-close", daemon=True)
        closing.start()
        closing.join(self.ownership.ttl_s)
        if closing.is_alive():
            log.warning("giving the log leases up hangs; they expire unrenewed")

    def _close(self) -> None:
        self.ownership.close()
        if self._ownership_catalog is not None:
            self._ownership_catalog.close()
        with self._lock:
            for held in self._open_logs.values():
                held.log.close()
            self._open_logs.clear()
        self._reads.close()
        self._logs.close()
        self._catalog.close()

    # -- collections and their logs ----------------------------------------------------------
    def _owned(self, db: str, name: str, partition: str) -> LogOnlyCollection:
        """The collection ``name`` names, if this process owns its log (else NotLogOwner)."""
        coll = self._collection(db, name, partition)
        if self.ownership.lease_of(coll.collection_id) is None:
            self._await_adoption(coll.collection_id)
        self._log_of(coll.collection_id)
        return coll

    def _await_adoption(self, collection_id: int) -> None:
        """A collection whose log nobody owns (just made, or its owner gone) is adopted by a
        member within a round (``ttl / 4``): wait that out, up to a ttl, in case it is this
        one, so that a write right after a create is not refused. NotLogOwner as soon as
        another member owns it, or when nobody adopted it in time."""
        name = log_lease_name(collection_id)
        deadline = time.monotonic() + self.ownership.ttl_s
        while time.monotonic() < deadline:
            current = self._catalog.current_lease(name)
            if (
                current is not None
                and current.expires_at > time.time()
                and current.holder != self.ownership.holder
            ):
                break
            time.sleep(_ADOPTION_POLL_S)
            if self.ownership.lease_of(collection_id) is not None:
                return
        raise NotLogOwner.of(collection_id)

    def _collection(self, db: str, name: str, partition: str = "") -> LogOnlyCollection:
        """Milvus's name checks (as the Engine's), then the runtime of the collection ``name``
        (or the alias) names, read from the catalog again once its change counter moved."""
        check_collection_name(name)
        if partition:
            check_partition_name(partition, strict=True)
        counter = self._catalog.change_counter()  # before the reads: a later change is seen next time
        with self._lock:
            if counter != self._counter:
                self._names.clear()
                self._counter = counter
            known = self._names.get((db, name))
        if known is not None:
            return known
        record = self._catalog.resolve_collection(db, name)
        parts = {p.name: p.partition_id for p in self._catalog.list_partitions(record.collection_id)}
        coll = LogOnlyCollection(record, parts, self._log_of)
        with self._lock:
            if self._counter == counter:
                self._names[(db, name)] = coll
        return coll

    def _log_of(self, collection_id: int) -> CollectionLog:
        """The collection's log, fenced by the lease this process holds on it now."""
        lease = self.ownership.lease_of(collection_id)
        if lease is None:
            raise NotLogOwner.of(collection_id)
        with self._lock:
            held = self._open_logs.get(collection_id)
            if held is not None and held.token == lease.token:
                return held.log
            if held is not None:
                held.log.close()  # fenced by a lease this process has lost since
            opened = self._logs.open(collection_id, fence=lease)
            self._open_logs[collection_id] = _OpenLog(lease.token, opened)
            return opened


@contextmanager
def _fence_refusal(collection_id: int) -> Iterator[None]:
    """An append the log's fence refused: another member holds the lease now."""
    try:
        yield
    except WriterFenced as exc:
        raise NotLogOwner(f"{NotLogOwner.of(collection_id).message}: {exc.message}") from exc
