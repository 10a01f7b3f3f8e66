"""A primary key inserted again (without upsert) hides its older versions, as in Milvus 2.6.

Milvus returns one row per primary key, its latest version, from query, get, count and
search. SheafDB keeps every inserted row (an insert looks nothing up), so a read adds, for
each key that more than one row no delete hides holds, a delete record ``(key, newest __ts)``
reaching every partition: the one visibility rule (visibility.py) then hides every older
version. Rows of one key with the same timestamp (one batch) are not told apart.

Cost: the repeated keys are found incrementally and kept per (collection, sealed segments
read, growing partitions read). The sealed segments' keys are sorted once per change of the
sealed set (numpy); growing rows only ever gain chunks, so each new chunk's keys are looked
up once, in each sealed segment's primary-key index (skipped when outside its key range) and
among the growing keys seen before. What is kept is the handful of versions of repeated keys
and the growing keys (bounded by the growing data itself). The augmented deletes table is
handed out again as the same ``LiveDeletes`` (with its per-partition reductions) while nothing
changed: the segments' mask caches (keyed by those reductions) keep working.

Locks: ``_lock`` guards the entries dict only; an entry is worked on outside it, under its
own ``lock`` (reads of one collection serialise on it while it catches up).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.engine.load.loaded_segment import LoadedSegment, RowSource
from sheafdb.engine.read.live_deletes import LiveDeletes
from sheafdb.engine.read.visibility import ALL_PARTITIONS, SCOPE_COLUMN, delete_records_schema, hidden_mask
from sheafdb.schema import TIMESTAMP_COLUMN

_PARTITION = "partition"
# Entries kept, the least recently used dropped first.
_ENTRIES_KEPT = 16

_EntryKey = tuple[int, tuple[int, ...], tuple[int, ...]]
_Keys = np.ndarray | list[object]  # int64 keys as numpy, VARCHAR keys as a list


@dataclass
class _Entry:
    """What is known about the repeated keys of one set of sources. Mutable, under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ranges: list[tuple[object, object] | None] = field(default_factory=list)  # per sealed: key range
    versions: list[pa.Table] = field(default_factory=list)  # (pk, ts, partition) of repeated keys
    growing_keys: set[object] = field(default_factory=set)
    chunks_seen: dict[int, tuple[int, ...]] = field(default_factory=dict)  # partition -> addresses
    held: dict[int, pa.Table] = field(default_factory=dict)  # so seen buffers are not reused
    deletes: pa.Table | None = None
    result: LiveDeletes | None = None


class SupersededVersions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[_EntryKey, _Entry] = OrderedDict()

    def forget(self, collection_id: int) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == collection_id]:
                del self._entries[key]

    def deletes_for(
        self, collection_id: int, primary_key: str, sources: Sequence[RowSource], deletes: pa.Table
    ) -> LiveDeletes:
        """``deletes`` plus one record per key that more than one visible row holds; the same
        object while neither changes."""
        sealed = [s for s in sources if isinstance(s, LoadedSegment)]
        growing = [s for s in sources if not isinstance(s, LoadedSegment)]
        key = (collection_id, tuple(s.segment_id for s in sealed), tuple(s.partition_id for s in growing))
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = _Entry()
                self._entries[key] = entry
                while len(self._entries) > _ENTRIES_KEPT:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
        with entry.lock:
            if not entry.ranges and sealed:
                _find_sealed_repeats(entry, sealed, primary_key)
            changed = False
            for source in growing:
                changed |= _catch_up(entry, sealed, source, primary_key)
            if changed or entry.deletes is not deletes or entry.result is None:
                newest = _newest_visible(entry.versions, deletes)
                entry.result = LiveDeletes(deletes if newest.num_rows == 0 else _appended(deletes, newest))
                entry.deletes = deletes
            return entry.result


def _keys(column: pa.ChunkedArray | pa.Array) -> np.ndarray | list[object]:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_integer(array.type):
        keys: np.ndarray = np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.int64)
        return keys
    texts: list[object] = array.to_pylist()
    return texts


def _find_sealed_repeats(entry: _Entry, sealed: Sequence[LoadedSegment], primary_key: str) -> None:
    """Keys held by more than one sealed row (one sort over every sealed key), with every
    version of them; each segment's key range, for skipping growing lookups. (The segments
    themselves are not kept: a release must be able to free them.)"""
    columns = [segment.table.column(primary_key) for segment in sealed]
    entry.ranges = [None if len(c) == 0 else (pc.min(c).as_py(), pc.max(c).as_py()) for c in columns]
    if pa.types.is_integer(columns[0].type):
        every = np.sort(np.concatenate([_keys(c) for c in columns]))
        repeated: list[object] = np.unique(every[1:][every[1:] == every[:-1]]).tolist()
    else:
        counts = pc.value_counts(pa.chunked_array([chunk for c in columns for chunk in c.chunks]))
        repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1)).to_pylist()
    if repeated:
        for segment in sealed:
            entry.versions.append(_rows_with(segment, primary_key, repeated))


def _catch_up(entry: _Entry, sealed: Sequence[LoadedSegment], source: RowSource, primary_key: str) -> bool:
    """Look up the keys of the growing chunks not seen yet; True when versions were added."""
    chunks = source.table.column(primary_key).chunks
    addresses = tuple(_address(chunk) for chunk in chunks)
    seen = entry.chunks_seen.get(source.partition_id, ())
    if addresses[: len(seen)] != seen:
        # Not a continuation (the partition's growing rows were replaced): start it over.
        seen = ()
    fresh = chunks[len(seen) :]
    entry.chunks_seen[source.partition_id] = addresses
    entry.held[source.partition_id] = source.table
    if not fresh:
        return False
    new_keys = [k for chunk in fresh for k in _as_list(chunk)]
    hits: set[object] = set()
    counted: set[object] = set()
    for k in new_keys:
        if k in entry.growing_keys or k in counted:
            hits.add(k)
        counted.add(k)
    lookup = np.asarray(new_keys, dtype=np.int64) if pa.types.is_integer(chunks[0].type) else new_keys
    for segment, bounds in zip(sealed, entry.ranges, strict=True):
        inside = _within(lookup, bounds)
        if len(inside):
            found = segment.rows_of(primary_key, cast(Sequence[int] | Sequence[str], inside))
            if len(found):
                entry.versions.append(_versions(segment, primary_key, found))
                hits.update(segment.table.column(primary_key).take(pa.array(found)).to_pylist())
    entry.growing_keys.update(counted)
    if not hits:
        return False
    for partition, table in entry.held.items():
        column = table.column(primary_key)
        holds = pc.is_in(column, value_set=pa.array(list(hits), column.type))
        rows = np.flatnonzero(np.asarray(holds.to_numpy(zero_copy_only=False)))
        if len(rows):
            entry.versions.append(_table_versions(table, partition, primary_key, rows))
    return True


def _address(chunk: pa.Array) -> int:
    data = chunk.buffers()[-1]
    return data.address if data is not None else 0


def _as_list(chunk: pa.Array) -> list[object]:
    keys = _keys(chunk)
    listed: list[object] = keys.tolist() if isinstance(keys, np.ndarray) else keys
    return listed


def _within(
    keys: np.ndarray | list[object], bounds: tuple[object, object] | None
) -> np.ndarray | list[object]:
    """The keys inside a segment's key range (sequential keys skip every older segment)."""
    if bounds is None:
        return []
    low, high = bounds
    if isinstance(keys, np.ndarray):
        return keys[(keys >= low) & (keys <= high)]
    return [k for k in keys if low <= k <= high]  # type: ignore[operator]


def _rows_with(segment: LoadedSegment, primary_key: str, keys: list[object]) -> pa.Table:
    return _versions(segment, primary_key, segment.rows_of(primary_key, keys))  # type: ignore[arg-type]


def _versions(source: RowSource, primary_key: str, rows: np.ndarray) -> pa.Table:
    return _table_versions(source.table, source.partition_id, primary_key, rows)


def _table_versions(table: pa.Table, partition: int, primary_key: str, rows: np.ndarray) -> pa.Table:
    """(pk, __ts, partition) of ``rows`` of ``table``."""
    picked = table.select([primary_key, TIMESTAMP_COLUMN]).take(pa.array(rows, pa.int64()))
    return pa.table(
        {
            "pk": picked.column(primary_key),
            TIMESTAMP_COLUMN: picked.column(TIMESTAMP_COLUMN),
            _PARTITION: pa.repeat(pa.scalar(partition, pa.int64()), picked.num_rows),
        }
    )


def _newest_visible(versions: Sequence[pa.Table], deletes: pa.Table) -> pa.Table:
    """(pk, newest __ts) of the keys held by more than one row that no delete hides. A row may
    be listed more than once (found from several growing chunks), so rows are told apart by
    (key, ts, partition)."""
    if not versions:
        return pa.table({"pk": pa.array([], pa.int64()), TIMESTAMP_COLUMN: pa.array([], pa.uint64())})
    combined = pa.concat_tables([v.cast(versions[0].schema) for v in versions]).combine_chunks()
    rows = combined.group_by(["pk", TIMESTAMP_COLUMN, _PARTITION]).aggregate([])
    live = LiveDeletes(deletes)
    visible = []
    for partition in pc.unique(rows.column(_PARTITION)).to_pylist():
        of_partition = rows.filter(pc.equal(rows.column(_PARTITION), partition))
        hidden = hidden_mask(
            of_partition.column("pk"), of_partition.column(TIMESTAMP_COLUMN), live.of_partition(partition)
        )
        visible.append(of_partition.filter(pa.array(~hidden)))
    alive = pa.concat_tables(visible) if visible else rows
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
