"""What is loaded: the immutable view the loader publishes and every read takes.

A ``LoadedView`` names the field list it was loaded with and the installed sealed segments by
id. The loader never changes a published view: it builds the next one and swaps the
reference (one assignment), so a read holds one consistent set of segments for its whole run
while installs, index additions and retirements go on. (An index added to an installed
segment is the one change made in place: a read that meets it searches through it.)

A read resolves its collection snapshot against a view (``resolve_sources``): every sealed
segment of the snapshot is either installed in the view or handed off (``snapshot.Handoff``:
its rows are still in memory). When neither holds (a view taken across a swap) the read takes
both again; it never opens a segment file and never reserves memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import pyarrow as pa

from sheafdb.engine.load.loaded_segment import GrowingRows, LoadedSegment, RowSource
from sheafdb.engine.read.growing_json import GrowingJsonCache
from sheafdb.engine.snapshot import DataSnapshot
from sheafdb.schema import TIMESTAMP_COLUMN, CollectionSchema


@dataclass(frozen=True)
class LoadedView:
    """Installed segments of one collection for one field list (None: nothing is loaded)."""

    fields: tuple[str, ...] | None = None
    segments: Mapping[int, LoadedSegment] = field(default_factory=lambda: MappingProxyType({}))
    # The fields whose files are memory-mapped (mmap.enabled) in these segments.
    mapped: frozenset[str] = frozenset()

    def with_segment(self, loaded: LoadedSegment) -> LoadedView:
        segments = MappingProxyType({**self.segments, loaded.segment_id: loaded})
        return LoadedView(self.fields, segments, self.mapped)

    def without(self, segment_ids: set[int]) -> LoadedView:
        kept = {sid: seg for sid, seg in self.segments.items() if sid not in segment_ids}
        return LoadedView(self.fields, MappingProxyType(kept), self.mapped)


NOTHING_LOADED = LoadedView()


def _growing(
    partition_id: int,
    table: pa.Table,
    fields: tuple[str, ...],
    json: GrowingJsonCache,
    schema: CollectionSchema,
) -> GrowingRows:
    columns = [c for c in table.column_names if c in fields or c == TIMESTAMP_COLUMN]
    return GrowingRows(partition_id, table.select(columns), json, schema)


def resolve_sources(
    view: LoadedView,
    snapshot: DataSnapshot,
    usable: frozenset[int],
    schema: CollectionSchema,
    json: GrowingJsonCache,
    *,
    ignore_growing: bool,
) -> tuple[RowSource, ...] | None:
    """The row sources of ``usable`` partitions, or None when the view does not cover the
    snapshot (the caller takes both again)."""
    fields = view.fields
    if fields is None:
        return None
    sources: list[RowSource] = []
    for segment in snapshot.sealed:
        if segment.partition_id not in usable:
            continue
        loaded = view.segments.get(segment.segment_id)
        if loaded is not None:
            sources.append(loaded)
            continue
        handoff = snapshot.handoff.get(segment.segment_id)
        if handoff is None:
            return None
        for rows in handoff.rows:
            sources.append(_growing(segment.partition_id, rows, fields, json, schema))
        for predecessor in handoff.predecessors:
            stand_in = view.segments.get(predecessor.segment_id)
            if stand_in is None:
                return None
            sources.append(stand_in)
    if not ignore_growing:
        for pid, table in snapshot.growing.items():
            if pid in usable and table.num_rows:
                sources.append(_growing(pid, table, fields, json, schema))
    return tuple(sources)
