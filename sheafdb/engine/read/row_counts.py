"""Visible row counts straight from a collection's data, loaded or not (statistics).

Reads only the primary key and ``__ts`` columns of the sealed segments (memory-mapped) plus the
growing tables, and applies the delete rule (visibility.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from sheafdb.engine.collection import Collection
from sheafdb.engine.read.expiry import Expiry, expiry_of
from sheafdb.engine.read.visibility import latest_deletes, visible_rows
from sheafdb.schema import TIMESTAMP_COLUMN
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.segment_files import read_column


def _visible_key_tables(
    store: ObjectStore, coll: Collection, partition_id: int | None, *, expired: bool = False
) -> Iterator[pa.Table]:
    """Key and timestamp columns of the rows no delete hides: those the TTL keeps (or, with
    ``expired``, those it hides)."""
    snap = coll.snapshot()
    pk = coll.schema.primary_field.name
    expiry = expiry_of(coll.record.properties)
    # Entity-level TTL reads its field too; the rows a TTL hides are not counted.
    ttl_columns = [expiry.field] if expiry is not None and expiry.field else []
    latest_of: dict[int, pa.Table] = {}

    def latest(pid: int) -> pa.Table:
        # The deletes reaching one partition (partition-scoped deletes), reduced once per read.
        if pid not in latest_of:
            latest_of[pid] = latest_deletes(snap.deletes, pid)
        return latest_of[pid]

    for seg in snap.sealed:
        if partition_id is None or seg.partition_id == partition_id:
            names = [pk, TIMESTAMP_COLUMN, *(c for c in ttl_columns if c in seg.columns)]
            table = pa.table({name: read_column(store, seg.columns[name].path) for name in names})
            yield _by_expiry(visible_rows(table, pk, latest(seg.partition_id)), expiry, expired)
    for pid, table in snap.growing.items():
        if partition_id is None or pid == partition_id:
            names = [pk, TIMESTAMP_COLUMN, *(c for c in ttl_columns if c in table.column_names)]
            yield _by_expiry(visible_rows(table.select(names), pk, latest(pid)), expiry, expired)


def _by_expiry(table: pa.Table, expiry: Expiry | None, expired: bool) -> pa.Table:
    mask = expiry.expired(table) if expiry is not None else None
    if expired:
        return table.slice(0, 0) if mask is None else table.filter(pa.array(mask))
    return table if mask is None else table.filter(pa.array(~mask))


def expired_keys(store: ObjectStore, coll: Collection) -> pa.Array:
    """Primary keys of the rows the collection's TTL hides right now (no delete hides them)."""
    pk = coll.schema.primary_field
    parts = [t.column(pk.name).combine_chunks() for t in _visible_key_tables(store, coll, None, expired=True)]
    return pa.concat_arrays(parts) if parts else pa.array([], pk.arrow_type())


def visible_row_count(store: ObjectStore, coll: Collection, partition_id: int | None = None) -> int:
    """Rows not hidden by a delete, in one partition or (None) the whole collection."""
    return sum(t.num_rows for t in _visible_key_tables(store, coll, partition_id))
