"""A collection's log, as the engine sees it, whatever keeps it.

Every write is a record appended to its collection's log before it is acknowledged; a seal
turns the rows of a prefix of the log into a segment and trims that prefix. Two backends:

- the file write-ahead log in the data dir (wal.py, wal_tail.py; ``FileLogs`` in
  file_logs.py), the embedded default: an append returns once the record is fsync'd;
- a PostgreSQL table (pg_log.py, ``PgLogs``), whenever the catalog is in PostgreSQL: an
  append returns once its transaction committed, and that transaction checks the fencing
  token of the writer lease (or of the collection's log owner lease), so a deposed writer
  cannot append. The data dir then holds caches only.

``LogStore`` is where a deployment keeps the logs of all its collections (``open_log_store``
picks it); ``CollectionLog`` the writer's handle on one collection's log; ``LogTail`` what a
follower (engine/follower.py) reads it with, never writing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from sheafdb.storage.lease_rows import CommitListener, Lease


@dataclass(frozen=True)
class LogRecord:
    lsn: int  # 1, 2, ... per collection, never reused (a trim does not restart them)
    kind: str  # "insert" | "delete" | "upsert" | "truncate" (engine/collection.py)
    partition_id: int
    timestamp: int
    batch: pa.Table


class LogGap(Exception):
    """Records a tail had not read yet were trimmed away: take the catalog again (their rows
    are a segment now)."""


class CollectionLog(Protocol):
    def append(
        self, kind: str, partition_id: int, timestamp: int, batch: pa.Table, write_id: str | None = None
    ) -> int:
        """Append one record; returns its lsn once it is durable (fsync'd / committed).
        Raises when it is not (and then the log takes no more appends). ``write_id``: the
        client call's id a cluster proxy tags a relayed write with, kept with the record
        where the backend keeps write ids (PostgreSQL: the cluster's log), so that a retry
        of the call finds it (``find_write``)."""
        ...

    def find_write(self, write_id: str) -> LogRecord | None:
        """The record appended with ``write_id`` while it is still in the log (not trimmed by
        a seal); None otherwise, and always None where the backend keeps no write ids (the
        data dir's file log: only a cluster proxy tags writes)."""
        ...

    def replay(self, after_lsn: int = 0) -> Iterator[LogRecord]:
        """Records with lsn > after_lsn in order, up to what was appended when replay began."""
        ...

    def trim(self, up_to_lsn: int) -> None:
        """Forget records with lsn <= up_to_lsn (a backend may keep some a while longer)."""
        ...

    @property
    def last_lsn(self) -> int:
        """The lsn of the last record appended (0 when the log never held one)."""
        ...

    def close(self) -> None:
        """Make everything appended durable and close; idempotent."""
        ...


class LogTail(Protocol):
    # The catalog's change counter as of the last ``read_new`` (PostgreSQL: read in the same
    # statement, one round trip); None when the log cannot tell (files: ask the catalog).
    catalog_counter: int | None
    # The credential store's change counter as of the last ``read_new``, likewise (None: ask
    # the store).
    credential_counter: int | None

    def read_new(self) -> list[LogRecord]:
        """Every record appended (and acknowledged) past the last one read; LogGap when some
        of them were trimmed first. The first call reads from the oldest record kept."""
        ...


class LogStore(Protocol):
    def open(self, collection_id: int, *, fence: Lease | None = None) -> CollectionLog:
        """The writer's log of a collection (an empty one if it has none yet). ``fence``:
        the collection's log owner lease (``log/<cid>``) its appends and trims check instead
        of the store's (PostgreSQL); a backend without leases (the file log) ignores it."""
        ...

    def create(self, collection_id: int) -> CollectionLog:
        """The log of a collection just made: anything left under its id goes first."""
        ...

    def remove(self, collection_id: int) -> None:
        """Delete a dropped collection's log (closed first)."""
        ...

    def remove_orphans(self, known: set[int]) -> list[str]:
        """Delete the logs of collections the catalog does not name; returns what went."""
        ...

    def tail(self, collection_id: int) -> LogTail:
        """A follower's reader of a collection's log."""
        ...

    def close(self) -> None: ...


def open_log_store(
    catalog_url: str | None,
    data_dir: Path,
    *,
    fsync: bool = True,
    fence: Lease | None = None,
    read_only: bool = False,
    on_commit_unknown: CommitListener | None = None,
) -> LogStore:
    """The logs that go with the catalog: files in ``data_dir`` for the embedded catalog,
    the catalog's own PostgreSQL database for a PostgreSQL catalog (appends fenced by
    ``fence``, the writer lease, when given). ``read_only``: a follower's, which only tails;
    ``on_commit_unknown``: the writer's step-down, told of a write of unknown outcome."""
    if catalog_url is None:
        from sheafdb.storage.file_logs import FileLogs

        return FileLogs(data_dir, fsync=fsync)
    # Imported here: psycopg is an optional dependency, needed only with a PostgreSQL catalog.
    from sheafdb.storage.pg_log import PgLogs

    return PgLogs(catalog_url, fence=fence, read_only=read_only, on_commit_unknown=on_commit_unknown)
