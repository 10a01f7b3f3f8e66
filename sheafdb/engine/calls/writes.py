"""Engine calls on a collection's data: insert, upsert, delete, flush, compact, row count.

Embedded, the Writer (write/writes.py) logs and applies each write itself. The cluster's
coordinator follows its log owners instead (write/log_following.py): its insert, upsert and
delete are the attached log writer's, and what reads its growing rows (a flush, a compaction,
a row count) first catches the collection up with its log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from sheafdb.engine.calls.parts import EngineParts
from sheafdb.engine.collection import Collection
from sheafdb.engine.models import MutationResult
from sheafdb.engine.read.row_counts import visible_row_count
from sheafdb.engine.write.log_following import LogWriter
from sheafdb.engine.write.write_ids import WriteTag
from sheafdb.errors import UnexpectedError


class WriteCalls(EngineParts):
    def attach_log_writer(self, writer: LogWriter) -> None:
        """Cluster mode: the log owner's DML path of this process (the ShardWriter), which
        insert, upsert and delete go to and the coordinator's own records are appended by."""
        if self._following is None:
            raise UnexpectedError("only the cluster's coordinator (logs in PostgreSQL) has a log writer")
        self._following.attach(writer)

    def insert(
        self, db: str, collection: str, data: pa.Table, partition: str = "", *, tag: WriteTag | None = None
    ) -> MutationResult:
        """``data`` has one column per given field (by name) and ``$meta`` (JSON text) for
        dynamic keys. Missing nullable / default fields are filled; an auto_id primary key is
        generated. Validated whole before anything is written; acknowledged once durable.
        ``tag``: a relayed call's id, so that its retry is applied once (write_ids.py)."""
        if self._following is not None:
            return self._following.writer.insert(db, collection, data, partition, tag=tag)
        return self._writer.insert(
            self._resolve(db, collection, (partition,) if partition else ()), data, partition, tag
        )

    def upsert(
        self,
        db: str,
        collection: str,
        data: pa.Table,
        partition: str = "",
        *,
        partial_update: bool = False,
        tag: WriteTag | None = None,
    ) -> MutationResult:
        """``partial_update``: fields the batch leaves out keep their stored values (the
        collection must be loaded). ``tag`` as for ``insert``."""
        if self._following is not None:
            return self._following.writer.upsert(
                db, collection, data, partition, partial_update=partial_update, tag=tag
            )
        return self._writer.upsert(
            self._resolve(db, collection, (partition,) if partition else ()),
            data,
            partition,
            partial_update=partial_update,
            tag=tag,
        )

    def delete(
        self,
        db: str,
        collection: str,
        filter: str,
        filter_params: Mapping[str, object] | None = None,
        partition: str = "",
    ) -> MutationResult:
        if self._following is not None:
            return self._following.writer.delete(db, collection, filter, filter_params, partition)
        coll = self._resolve(db, collection, (partition,) if partition else ())
        return self._writer.delete(coll, filter, filter_params, partition)

    def flush(self, db: str, collections: Sequence[str]) -> dict[str, int]:
        """Seal growing data; returns each collection's flush timestamp."""
        out: dict[str, int] = {}
        for name in collections:
            coll = self._resolve(db, name)
            self._sealer.seal(coll)
            out[name] = self._oracle.next()
        return out

    def compact(self, db: str, collection: str) -> int:
        """Pack every partition's sealed segments into segments of up to the target (dropping
        deleted rows) now; returns segments replaced."""
        # Packing takes every segment under the target: the tiny-segment count plays no part.
        return self._compact_now(self._resolve(db, collection))

    def _compact_now(self, coll: Collection) -> int:
        # Caught up: the growing deletes drop rows too.
        policy = self._compaction_policy(min_segments=2)
        return self._compactor.compact(self._caught_up(coll), policy, frozenset(), manual=True)

    def collection_row_count(self, db: str, name: str) -> int:
        return visible_row_count(self._store, self._caught_up(self._resolve(db, name)))

    def _caught_up(self, coll: Collection) -> Collection:
        """``coll`` with every record its log holds applied (the cluster's coordinator: what
        its log owners appended); as it is otherwise."""
        if self._following is not None:
            self._following.catch_up(coll)
        return coll
