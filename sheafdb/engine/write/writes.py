"""The write path: insert, upsert and delete of one collection, from batch to acknowledgement.

validate the whole batch (write_validation) -> allocate one timestamp (and auto ids) -> tag
rows with their partition when a partition key routes them (its hash) -> log the batch as ONE
record durably and apply it (Collection.write) -> seal if the growing data passed ``seal_bytes``.
One record per batch: after a crash a batch is replayed whole or not at all.

Auto ids come from blocks reserved in the catalog (``allocate_ids``: one durable counter), so
an id is never issued twice, across restarts and wall-clock steps alike; a block's unused
rest is skipped after a restart (ids are unique, not dense, as in Milvus).

An insert or upsert a cluster proxy relayed carries a ``WriteTag``: its record is logged with
the call's id, and a retry of the call answers from that record instead of writing again
(write_ids.py).

Lock: ``_id_lock`` guards the reserved block (``_next_id`` .. ``_id_end``); ``_tagged`` has its
own (the tagged tries running). Everything else is the collection's.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, tzinfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.engine.collection import PARTITION_COLUMN, REPLACED_PK_COLUMN, ROUTED_PARTITION, Collection
from sheafdb.engine.models import MutationResult, QueryRequest
from sheafdb.engine.read.visibility import ALL_PARTITIONS, delete_records
from sheafdb.engine.write.functions import fill_function_outputs
from sheafdb.engine.write.partial_update import existing_keys_mask, merge_partial_rows
from sheafdb.engine.write.write_ids import TaggedWrites, WriteTag
from sheafdb.engine.write.write_validation import (
    MAX_BATCH_BYTES,
    allows_insert_auto_id,
    prepare_rows,
    with_timestamp,
)
from sheafdb.errors import CollectionNotLoaded, PartitionNotFound, invalid
from sheafdb.expr import compile_filter
from sheafdb.schema import DataType
from sheafdb.storage.records import DEFAULT_PARTITION
from sheafdb.storage.timestamps import TimestampOracle
from sheafdb.timestamptz import TIMEZONE_PROPERTY, zone

# (collection, kind, partition id, timestamp, batch, write id) -> the record's lsn, applied.
RecordWrite = Callable[[Collection, str, int, int, pa.Table, str | None], int]

# Auto ids reserved per catalog transaction (one fsync per block, not per insert).
ID_BLOCK = 1 << 16


class Writer:
    def __init__(
        self,
        oracle: TimestampOracle,
        reserve_ids: Callable[[int], range],
        seal_bytes: int,
        seal: Callable[[Collection], object],
        is_loaded: Callable[[Collection], bool],
        query: Callable[[Collection, QueryRequest], pa.Table],
        write: RecordWrite = Collection.write,
    ) -> None:
        self._oracle = oracle
        # Log a record and apply it: the collection's own log (embedded), or in cluster mode
        # the log owner's append, then catching up with the log (log_following.py).
        self._write = write
        self._reserve_ids = reserve_ids
        self._seal_bytes = seal_bytes
        self._seal = seal
        self._is_loaded = is_loaded
        self._query = query
        self._id_lock = threading.Lock()
        self._next_id = 0
        self._id_end = 0
        self._tagged = TaggedWrites()

    def allocate_ids(self, count: int) -> pa.Array:
        """``count`` fresh int64 ids (a VARCHAR key takes them as their decimal text, as Milvus)."""
        with self._id_lock:
            if self._id_end - self._next_id < count:
                # Durable before any id of the block is used: a restart resumes past it.
                block = self._reserve_ids(max(count, ID_BLOCK))
                self._next_id, self._id_end = block.start, block.stop
            first = self._next_id
            self._next_id += count
        return pa.array(np.arange(first, first + count, dtype=np.int64))

    def insert(
        self, coll: Collection, data: pa.Table, partition: str, tag: WriteTag | None = None
    ) -> MutationResult:
        if tag is None:
            return self._write_rows(coll, data, partition, upsert=False)
        return self._tagged.apply_once(
            coll, tag, lambda: self._write_rows(coll, data, partition, upsert=False, write_id=tag.id)
        )

    def upsert(
        self,
        coll: Collection,
        data: pa.Table,
        partition: str,
        *,
        partial_update: bool = False,
        tag: WriteTag | None = None,
    ) -> MutationResult:
        if tag is None:
            return self._upsert(coll, data, partition, partial_update)
        return self._tagged.apply_once(
            coll, tag, lambda: self._upsert(coll, data, partition, partial_update, write_id=tag.id)
        )

    def _upsert(
        self,
        coll: Collection,
        data: pa.Table,
        partition: str,
        partial_update: bool,
        write_id: str | None = None,
    ) -> MutationResult:
        existing = None
        if partial_update:
            current = self._current_rows(coll, data)
            existing = existing_keys_mask(data, current, coll.schema.primary_field.name)
            data = merge_partial_rows(coll.schema, data, current)
        return self._write_rows(coll, data, partition, upsert=True, existing=existing, write_id=write_id)

    def _current_rows(self, coll: Collection, data: pa.Table) -> pa.Table:
        """The stored rows of the batch's keys (a partial update reads them: loaded only)."""
        pk = coll.schema.primary_field
        if pk.name not in data.column_names:
            raise invalid(f"must assign pk when upsert, primary field: {pk.name}")
        if not self._is_loaded(coll):
            raise CollectionNotLoaded(
                f"failed to query: collection not loaded[collection={coll.collection_id}]"
            )
        keys = data.column(pk.name).drop_null().to_pylist()
        request = QueryRequest(collection=coll.name, ids=keys, output_fields=("*",))
        return self._query(coll, request)

    def _ids_for(self, coll: Collection) -> Callable[[int], pa.Array]:
        if coll.schema.primary_field.dtype is DataType.VARCHAR:
            return lambda count: self.allocate_ids(count).cast(pa.string())
        return self.allocate_ids

    def _write_rows(
        self,
        coll: Collection,
        data: pa.Table,
        partition: str,
        *,
        upsert: bool,
        existing: pa.Array | None = None,
        write_id: str | None = None,
    ) -> MutationResult:
        schema = coll.schema
        fixed_partition = self._target_partition(coll, partition)
        if schema.functions:
            data = fill_function_outputs(schema, data)
        pk = schema.primary_field
        new_ids = self._ids_for(coll)
        keys_given = upsert or (
            pk.auto_id and pk.name in data.column_names and allows_insert_auto_id(coll.record.properties)
        )
        rows = prepare_rows(
            schema,
            data,
            primary_keys_given=keys_given,
            generate_ids=new_ids,
            default_zone=collection_zone(coll.record.properties),
        )
        replaced = None
        if upsert and pk.auto_id:
            # Milvus (2.4+): an upsert on an auto_id collection deletes the given keys and
            # inserts the rows under newly generated ones, which it returns; a partial update
            # keeps the keys of the rows it updates and generates them for new rows only.
            replaced = rows.column(pk.name)
            position = rows.schema.get_field_index(pk.name)
            fresh = new_ids(rows.num_rows)
            if existing is not None:
                fresh = pc.if_else(existing, replaced.combine_chunks(), fresh)
            rows = rows.set_column(position, rows.schema.field(position), fresh)
        ts = self._oracle.next()
        stamped = with_timestamp(rows, ts)
        if replaced is not None:
            stamped = stamped.append_column(REPLACED_PK_COLUMN, replaced)
        kind = "upsert" if upsert else "insert"
        if fixed_partition is not None:
            self._write(coll, kind, fixed_partition, ts, stamped, write_id)
        else:
            self._write(coll, kind, ROUTED_PARTITION, ts, self._with_partitions(coll, stamped), write_id)
        self._maybe_seal(coll)
        return MutationResult(
            ids=rows.column(schema.primary_field.name).combine_chunks(), count=rows.num_rows, timestamp=ts
        )

    def import_rows(self, coll: Collection, tables: Sequence[pa.Table], partition: str) -> MutationResult:
        """Bulk import: every table checked by the insert rules (in insert-sized pieces) before
        anything is written, then all rows logged as ONE record at one timestamp, so a bad row
        or a crash imports nothing."""
        schema = coll.schema
        fixed_partition = self._target_partition(coll, partition)
        new_ids = self._ids_for(coll)
        zone = collection_zone(coll.record.properties)
        prepared = []
        for table in tables:
            for piece in _pieces(table, MAX_BATCH_BYTES // 2):
                if schema.functions:
                    piece = fill_function_outputs(schema, piece)
                prepared.append(
                    prepare_rows(
                        schema, piece, primary_keys_given=False, generate_ids=new_ids, default_zone=zone
                    )
                )
        if not prepared:
            return MutationResult(
                ids=pa.array([], type=schema.primary_field.arrow_type()), count=0, timestamp=0
            )
        rows = pa.concat_tables(prepared)
        ts = self._oracle.next()
        stamped = with_timestamp(rows, ts)
        if fixed_partition is not None:
            self._write(coll, "insert", fixed_partition, ts, stamped, None)
        else:
            self._write(coll, "insert", ROUTED_PARTITION, ts, self._with_partitions(coll, stamped), None)
        return MutationResult(
            ids=rows.column(schema.primary_field.name).combine_chunks(), count=rows.num_rows, timestamp=ts
        )

    def delete(
        self, coll: Collection, filter_text: str, params: Mapping[str, object] | None, partition: str
    ) -> MutationResult:
        if not filter_text.strip():
            raise invalid("delete plan can't be empty or always true")
        pk_field = coll.schema.primary_field
        partition_id = self._target_partition(coll, partition) if partition else self._any_partition(coll)
        compiled = compile_filter(filter_text, coll.schema, params)
        keys = compiled.primary_keys()
        if keys is not None:
            pks = pa.array(keys, type=pk_field.arrow_type())
        else:
            # A general filter needs the rows it matches: read them through the load manager.
            if not self._is_loaded(coll):
                raise CollectionNotLoaded(
                    f"failed to query: collection not loaded[collection={coll.collection_id}]"
                )
            request = QueryRequest(
                collection=coll.name,
                filter=filter_text,
                filter_params=dict(params or {}),
                output_fields=(pk_field.name,),
                partition_names=(partition,) if partition else (),
            )
            pks = (
                self._query(coll, request).column(pk_field.name).combine_chunks().cast(pk_field.arrow_type())
            )
        # Milvus: a delete naming a partition deletes there only; without one, everywhere.
        scope = partition_id if partition and partition_id is not None else ALL_PARTITIONS
        return self.delete_keys(coll, pks, partition_id, scope)

    def delete_keys(
        self, coll: Collection, pks: pa.Array, partition_id: int | None = None, scope: int = ALL_PARTITIONS
    ) -> MutationResult:
        """Delete the rows of these primary keys (in ``scope``), logged in ``partition_id``."""
        if partition_id is None:
            partition_id = self._any_partition(coll)
        pks = pc.unique(pks)
        ts = self._oracle.next()
        if len(pks):
            # The record's partition id only says where it is logged; the scope column decides.
            logged_in = partition_id if partition_id is not None else self._any_partition(coll)
            self._write(coll, "delete", logged_in, ts, delete_records(pks, ts, scope), None)
            self._maybe_seal(coll)
        return MutationResult(ids=pks, count=len(pks), timestamp=ts)

    def _maybe_seal(self, coll: Collection) -> None:
        # A writer that finds a seal already running leaves it to that one.
        if coll.growing_bytes() >= self._seal_bytes and not coll.seal_lock.locked():
            self._seal(coll)

    @staticmethod
    def _any_partition(coll: Collection) -> int:
        parts = coll.partitions
        return parts.get(DEFAULT_PARTITION, next(iter(parts.values())))

    @staticmethod
    def _target_partition(coll: Collection, partition: str) -> int | None:
        """The partition named by the client; None when rows are routed by partition key."""
        parts = coll.partitions
        if coll.schema.partition_key_field is not None:
            if partition:
                raise invalid(
                    "not support manually specifying the partition names if partition key mode is used"
                )
            return None
        name = partition or DEFAULT_PARTITION
        if name not in parts:
            raise PartitionNotFound(f"partition not found[partition={name}]")
        return parts[name]

    @staticmethod
    def _with_partitions(coll: Collection, rows: pa.Table) -> pa.Table:
        """``rows`` plus the partition each one belongs to (by its partition key's hash)."""
        key = coll.schema.partition_key_field
        assert key is not None
        ordered = sorted(coll.partitions.items(), key=lambda item: _partition_order(item[0]))
        ids = np.array([pid for _, pid in ordered], dtype=np.int64)
        buckets = partition_key_buckets(rows.column(key.name), key.dtype, len(ids))
        return rows.append_column(PARTITION_COLUMN, pa.array(ids[buckets]))


def collection_zone(properties: Mapping[str, str]) -> tzinfo:
    """The collection's ``timezone`` (UTC when unset or not a zone name)."""
    try:
        return zone(properties.get(TIMEZONE_PROPERTY))
    except ValueError:
        return UTC


def partition_key_buckets(column: pa.ChunkedArray | pa.Array, dtype: DataType, count: int) -> np.ndarray:
    """Which of ``count`` partitions each key belongs to (stable across restarts)."""
    if dtype is DataType.VARCHAR:
        return np.array([zlib.crc32(v.encode()) % count for v in column.to_pylist()], dtype=np.int64)
    values = np.asarray(
        column.to_numpy() if isinstance(column, pa.Array) else column.to_numpy(), dtype=np.int64
    )
    return (values.view(np.uint64) % np.uint64(count)).astype(np.int64)


def _partition_order(name: str) -> tuple[int, str]:
    # "_default_10" after "_default_9": order by the numeric suffix.
    suffix = name.rsplit("_", 1)[-1]
    return (int(suffix), name) if suffix.isdigit() else (1 << 30, name)


def _pieces(table: pa.Table, max_bytes: int) -> Iterator[pa.Table]:
    """``table`` in row slices of about ``max_bytes`` each (at least one row)."""
    per_row = max(1, table.nbytes // max(1, table.num_rows))
    step = max(1, max_bytes // per_row)
    for start in range(0, table.num_rows, step):
        yield table.slice(start, step)
