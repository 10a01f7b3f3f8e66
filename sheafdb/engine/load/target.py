"""What should be loaded: a load request, as asked and as persisted.

A ``LoadRequest`` carries a load's arguments from the API to the loader in one frozen value,
and is what the catalog keeps as the collection's load config (``LoadConfigRecord``), so a
restart asks for exactly the same load again. The state machine (load_state.py) then holds
the target it makes: partitions x fields; the loader reconciles what is installed with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sheafdb.storage.records import LoadConfigRecord


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
