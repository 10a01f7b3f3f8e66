"""What should be loaded: a load request, as asked and as persisted.

A ``LoadRequest`` carries a load's arguments from the API to the loader in one frozen value,
and is what the catalog keeps as the collection's load config (``LoadConfigRecord``), so a
restart asks for exactly the same load again. The state machine (load_state.py) then holds
the target it makes: partitions x fields; the loader reconciles what is installed with it.

A ``SegmentScope`` narrows the target to some of the collection's rows: the embedded engine
serves all of them, a cluster query worker only the sealed segments placed on it (and the
growing rows when it leads its replica). The scope is this process's, never persisted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sheafdb.engine.snapshot import DataSnapshot
from sheafdb.storage.records import LoadConfigRecord


@dataclass(frozen=True)
class SegmentScope:
    # None: every sealed segment; else only these (ids the catalog no longer lists are ignored).
    segments: frozenset[int] | None = None
    # Whether the rows not sealed yet are served here.
    growing: bool = True

    @property
    def everything(self) -> bool:
        return self.segments is None and self.growing

    def holds(self, segment_id: int) -> bool:
        return self.segments is None or segment_id in self.segments

    def restrict(self, snapshot: DataSnapshot) -> DataSnapshot:
        """The snapshot as this scope sees it; deletes stay whole (they may hide any row)."""
        if self.everything:
            return snapshot
        return replace(
            snapshot,
            sealed=tuple(s for s in snapshot.sealed if self.holds(s.segment_id)),
            growing=snapshot.growing if self.growing else {},
            handoff={sid: h for sid, h in snapshot.handoff.items() if self.holds(sid)},
        )


EVERYTHING = SegmentScope()


@dataclass(frozen=True)
class LoadRequest:
    # None: the whole collection (new partitions load too); else these partitions by name.
    partitions: tuple[str, ...] | None = None
    # Empty: every field (except those marked to skip).
    load_fields: tuple[str, ...] = ()
    skip_load_dynamic_field: bool = False
    replica_number: int = 1
    # Load segments that appeared outside the write path (bulk import) and wait for them.
    refresh: bool = False
    # Which rows (not persisted: a restart's load serves everything again).
    scope: SegmentScope = EVERYTHING

    def record(self, collection_id: int) -> LoadConfigRecord:
        return LoadConfigRecord(
            collection_id,
            self.partitions or (),
            self.load_fields,
            self.skip_load_dynamic_field,
            max(self.replica_number, 1),
        )

    @classmethod
    def from_record(cls, record: LoadConfigRecord) -> LoadRequest:
        return cls(
            record.partitions or None,
            record.load_fields,
            record.skip_load_dynamic_field,
            record.replica_number,
        )
