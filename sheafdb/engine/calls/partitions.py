"""Engine calls on partitions: create, drop (refused while loaded), has, list, row counts."""

from __future__ import annotations

from sheafdb.engine.calls.parts import EngineParts
from sheafdb.engine.ddl_rules import MAX_PARTITIONS
from sheafdb.engine.load.load_requests import partition_id
from sheafdb.engine.models import LoadState, PartitionInfo
from sheafdb.engine.read.row_counts import visible_row_count
from sheafdb.errors import UnexpectedError, invalid
from sheafdb.storage.records import DEFAULT_PARTITION


class PartitionCalls(EngineParts):
    def create_partition(self, db: str, collection: str, partition: str) -> None:
        with self._ddl_lock:
            coll = self._resolve(db, collection, (partition,))
            if coll.schema.partition_key_field is not None:
                raise invalid("disable create partition if partition key mode is used")
            if partition in coll.partitions:
                return
            if len(coll.partitions) >= MAX_PARTITIONS:
                raise invalid(
                    f"partition number ({len(coll.partitions) + 1}) exceeds max configuration "
                    f"({MAX_PARTITIONS})"
                )
            record = self._catalog.create_partition(coll.collection_id, partition, self._oracle.next())
            coll.add_partition(partition, record.partition_id)

    def drop_partition(self, db: str, collection: str, partition: str) -> None:
        with self._ddl_lock:
            coll = self._resolve(db, collection, (partition,))
            if coll.schema.partition_key_field is not None:
                raise invalid("disable drop partition if partition key mode is used")
            if partition == DEFAULT_PARTITION:
                raise invalid("default partition cannot be deleted")
            pid = coll.partitions.get(partition)
            if pid is None:
                return
            state = (self._cluster.state if self._cluster else self._loads.state)(coll, (partition,))
            if state in (LoadState.LOADED, LoadState.LOADING):
                raise UnexpectedError(
                    "partition cannot be dropped, partition is loaded, please release it first"
                )
            self._removal.drop_partition(coll, pid)

    def has_partition(self, db: str, collection: str, partition: str) -> bool:
        return partition in self._resolve(db, collection, (partition,)).partitions

    def list_partitions(self, db: str, collection: str) -> list[PartitionInfo]:
        coll = self._resolve(db, collection)
        return [
            PartitionInfo(p.name, p.partition_id, p.created_ts)
            for p in self._catalog.list_partitions(coll.collection_id)
        ]

    def partition_row_count(self, db: str, collection: str, partition: str) -> int:
        coll = self._caught_up(self._resolve(db, collection, (partition,)))
        return visible_row_count(self._store, coll, partition_id(coll, partition))
