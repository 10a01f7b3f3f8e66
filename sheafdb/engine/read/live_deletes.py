"""One deletes table with its reductions to the latest delete per key, per partition.

Reads hand the same ``LiveDeletes`` out again while the deletes do not change (superseded.py
keeps it per set of sources), so each partition's reduction is computed once per deletes
table, and stays the same object: loaded segments cache their hidden and allowed masks by it.
When no delete is scoped to a partition (the common case) every partition shares one
reduction. Bounded: at most one reduction per partition, none larger than the table.

Locks: ``_lock`` guards ``_by_partition``; the reduction itself is computed outside it.
"""

from __future__ import annotations

import threading

import pyarrow as pa

from sheafdb.engine.read.visibility import is_collection_wide, latest_deletes


class LiveDeletes:
    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._collection_wide = table.num_rows == 0 or is_collection_wide(table)
        self._by_partition: dict[int | None, pa.Table] = {}
        self._lock = threading.Lock()

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    def of_partition(self, partition_id: int) -> pa.Table:
        """``latest_deletes(table, partition_id)``, computed once per partition."""
        if self.table.num_rows == 0:
            return self.table
        key = None if self._collection_wide else partition_id
        with self._lock:
            found = self._by_partition.get(key)
        if found is not None:
            return found
        latest = latest_deletes(self.table, key)
        with self._lock:
            # setdefault: a concurrent reader's reduction wins, so masks cached by it agree.
            return self._by_partition.setdefault(key, latest)
