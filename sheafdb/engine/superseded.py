"""A primary key inserted again (without upsert) hides its older versions, as in Milvus 2.6.

Milvus returns one row per primary key, its latest version, from query, get, count and
search. SheafDB keeps every inserted row (an insert looks nothing up), so a read adds, for
each key that more than one row no delete hides holds, a delete record ``(key, newest __ts)``
reaching every partition: the one visibility rule (visibility.py) then hides every older
version. Rows of one key with the same timestamp (one batch) are not told apart.

The augmented deletes table is kept per collection and handed out again, the same object,
while the read's sources and deletes are unchanged: the segments' mask caches (keyed by that
table) keep working. Finding the duplicates costs, per change of the sealed set, one group-by
over the sealed keys; per change of the growing rows, one primary-key lookup of the growing
keys in each sealed segment.

Locks: ``_lock`` guards the per-collection entries only; the work runs outside it (two
racing reads compute the same table, the last one stays).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.engine.loaded_segment import LoadedSegment, RowSource
from sheafdb.engine.search import live_deletes
from sheafdb.engine.visibility import ALL_PARTITIONS, SCOPE_COLUMN, delete_records_schema, hidden_mask
from sheafdb.schema import TIMESTAMP_COLUMN

_PARTITION = "partition"


@dataclass(frozen=True)
class _Entry:
    sealed_versions: pa.Table  # every version of the keys sealed more than once (deleted or not)
    growing: tuple[tuple[int, ...], ...]  # _signature of each growing source
    held: tuple[pa.Table, ...]  # the growing tables, so their buffers are not reused meanwhile
    deletes: pa.Table
    result: pa.Table


# Entries kept (per collection and set of sealed segments read: reads of other partitions
# keep their own), the oldest dropped first.
_ENTRIES_KEPT = 64


class SupersededVersions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[int, tuple[int, ...]], _Entry] = OrderedDict()

    def forget(self, collection_id: int) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == collection_id]:
                del self._entries[key]

    def deletes_for(
        self, collection_id: int, primary_key: str, sources: Sequence[RowSource], deletes: pa.Table
    ) -> pa.Table:
        """``deletes`` plus one record per key that ``sources`` hold more than once."""
        sealed = [s for s in sources if isinstance(s, LoadedSegment)]
        growing = [s for s in sources if not isinstance(s, LoadedSegment)]
        sealed_ids = tuple(s.segment_id for s in sealed)
        growing_tables = tuple(s.table for s in growing)
        signatures = tuple(_signature(t, primary_key) for t in growing_tables)
        key = (collection_id, sealed_ids)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is not None and entry.deletes is deletes and entry.growing == signatures:
            return entry.result
        if entry is not None:
            sealed_versions = entry.sealed_versions
        else:
            sealed_versions = _repeated(_versions(sealed, primary_key))
        versions = [sealed_versions]
        for source in growing:
            keys = source.table.column(primary_key).combine_chunks()
            versions.append(_versions([source], primary_key))
            integer = pa.types.is_integer(keys.type)
            lookup = keys.to_numpy(zero_copy_only=False) if integer else keys.to_pylist()
            for segment in sealed:
                rows = segment.rows_of(primary_key, lookup)
                if len(rows):
                    versions.append(_versions([segment], primary_key, rows))
        newest = _newest_visible(versions, deletes)
        result = deletes if newest.num_rows == 0 else _appended(deletes, newest)
        with self._lock:
            self._entries[key] = _Entry(sealed_versions, signatures, growing_tables, deletes, result)
            while len(self._entries) > _ENTRIES_KEPT:
                self._entries.popitem(last=False)
        return result


def _signature(table: pa.Table, primary_key: str) -> tuple[int, ...]:
    """Which rows a growing table holds: a read selects its columns into a new Table object
    each time, but the key column's buffers stay those of the rows written (growing data only
    ever gains chunks), so their addresses and the row count name its contents."""
    chunks = table.column(primary_key).chunks
    addresses = [buffer.address if buffer is not None else 0 for buffer in (c.buffers()[-1] for c in chunks)]
    return (table.num_rows, *addresses)


def _versions(sources: Sequence[RowSource], primary_key: str, rows: np.ndarray | None = None) -> pa.Table:
    """(pk, __ts, partition) of every row of ``sources`` (only ``rows`` of a single one)."""
    parts = []
    for source in sources:
        table = source.table if rows is None else source.table.take(pa.array(rows))
        partition = pa.repeat(pa.scalar(source.partition_id, pa.int64()), table.num_rows)
        parts.append(
            pa.table(
                {
                    "pk": table.column(primary_key),
                    TIMESTAMP_COLUMN: table.column(TIMESTAMP_COLUMN),
                    _PARTITION: partition,
                }
            )
        )
    if not parts:
        return pa.table(
            {
                "pk": pa.array([], pa.int64()),
                TIMESTAMP_COLUMN: pa.array([], pa.uint64()),
                _PARTITION: pa.array([], pa.int64()),
            }
        )
    return pa.concat_tables(parts).combine_chunks()


def _repeated(versions: pa.Table) -> pa.Table:
    """The rows of ``versions`` whose key occurs more than once."""
    if versions.num_rows < 2:
        return versions.slice(0, 0)
    counts = versions.group_by("pk").aggregate([(TIMESTAMP_COLUMN, "count")])
    repeated = counts.filter(pc.greater(counts.column(f"{TIMESTAMP_COLUMN}_count"), 1))
    if repeated.num_rows == 0:
        return versions.slice(0, 0)
    keep = pc.is_in(versions.column("pk"), value_set=repeated.column("pk").combine_chunks())
    return versions.filter(keep)


def _newest_visible(versions: Sequence[pa.Table], deletes: pa.Table) -> pa.Table:
    """(pk, newest __ts) of the keys held by more than one row that no delete hides. The
    versions come from several places (a sealed row may be listed twice: as a repeated sealed
    key and as a match of a growing key), so rows are told apart by (key, ts, partition)."""
    combined = pa.concat_tables([v.cast(versions[0].schema) for v in versions]).combine_chunks()
    if combined.num_rows < 2:
        return combined.select(["pk", TIMESTAMP_COLUMN]).slice(0, 0)
    rows = combined.group_by(["pk", TIMESTAMP_COLUMN, _PARTITION]).aggregate([])
    visible = []
    for partition in pc.unique(rows.column(_PARTITION)).to_pylist():
        of_partition = rows.filter(pc.equal(rows.column(_PARTITION), partition))
        hidden = hidden_mask(
            of_partition.column("pk"), of_partition.column(TIMESTAMP_COLUMN), live_deletes(deletes, partition)
        )
        visible.append(of_partition.filter(pa.array(~hidden)))
    alive = pa.concat_tables(visible)
    counts = alive.group_by("pk").aggregate([(TIMESTAMP_COLUMN, "count"), (TIMESTAMP_COLUMN, "max")])
    repeated = counts.filter(pc.greater(counts.column(f"{TIMESTAMP_COLUMN}_count"), 1))
    newest = repeated.column(f"{TIMESTAMP_COLUMN}_max")
    return pa.table({"pk": repeated.column("pk"), TIMESTAMP_COLUMN: newest})


def _appended(deletes: pa.Table, newest: pa.Table) -> pa.Table:
    pk_type = deletes.schema.field("pk").type
    records = pa.Table.from_arrays(
        [
            newest.column("pk").cast(pk_type),
            newest.column(TIMESTAMP_COLUMN),
            pa.repeat(pa.scalar(ALL_PARTITIONS, pa.int64()), newest.num_rows),
        ],
        schema=delete_records_schema(pk_type),
    )
    if SCOPE_COLUMN not in deletes.column_names:
        records = records.select(["pk", TIMESTAMP_COLUMN])
    existing = deletes.select(records.column_names).cast(records.schema)
    return pa.concat_tables([existing, records]).combine_chunks()
