"""Which rows a set of deletes hides: the one rule every reader and compaction applies.

A delete record is ``(pk, __ts, __scope)``: the scope is the partition it was issued in, or
ALL_PARTITIONS (a delete without a partition name, an upsert's delete half, and every record
written before scopes existed). A row ``(pk, __ts)`` of partition P is hidden when some delete
of the same primary key, scoped to P or to all partitions, has a larger timestamp.
Evaluated column-wise: the deletes that reach P are reduced to the latest timestamp per key,
then each row looks its key up with ``pc.index_in`` (a hash lookup in C), no loop per row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.schema import TIMESTAMP_COLUMN

# The partition a delete applies to; Milvus also uses -1 for "all partitions".
SCOPE_COLUMN = "__scope"
ALL_PARTITIONS = -1


def delete_records_schema(pk_type: pa.DataType) -> pa.Schema:
    """The layout of every deletes table: growing, sealed, snapshot and deletes files."""
    return pa.schema(
        [pa.field("pk", pk_type), pa.field(TIMESTAMP_COLUMN, pa.uint64()), pa.field(SCOPE_COLUMN, pa.int64())]
    )


def delete_records(pks: pa.Array | pa.ChunkedArray, timestamp: int, scope: int = ALL_PARTITIONS) -> pa.Table:
    """Deletes of ``pks`` at one timestamp, all scoped to ``scope``."""
    keys = pks.combine_chunks() if isinstance(pks, pa.ChunkedArray) else pks
    n = len(keys)
    return pa.Table.from_arrays(
        [keys, pa.repeat(pa.scalar(timestamp, pa.uint64()), n), pa.repeat(pa.scalar(scope, pa.int64()), n)],
        schema=delete_records_schema(keys.type),
    )


def scoped_deletes(batch: pa.Table, timestamp: int) -> pa.Table:
    """The delete records of a logged delete batch ("pk", optionally SCOPE_COLUMN) at
    ``timestamp``; a batch logged before scopes existed deletes in every partition."""
    keys = batch.column("pk").combine_chunks()
    if SCOPE_COLUMN not in batch.column_names:
        return delete_records(keys, timestamp)
    n = len(keys)
    return pa.Table.from_arrays(
        [keys, pa.repeat(pa.scalar(timestamp, pa.uint64()), n), batch.column(SCOPE_COLUMN).combine_chunks()],
        schema=delete_records_schema(keys.type),
    )


def with_scope(deletes: pa.Table) -> pa.Table:
    """``deletes`` in the scoped layout: tables from before scopes existed hide everywhere."""
    if SCOPE_COLUMN in deletes.column_names:
        return deletes
    scope = pa.repeat(pa.scalar(ALL_PARTITIONS, pa.int64()), deletes.num_rows)
    return deletes.select(["pk", TIMESTAMP_COLUMN]).append_column(pa.field(SCOPE_COLUMN, pa.int64()), scope)


def is_collection_wide(deletes: pa.Table) -> bool:
    """True when every delete reaches every partition (the common case: no filtering needed)."""
    if SCOPE_COLUMN not in deletes.column_names or deletes.num_rows == 0:
        return True
    return bool(pc.all(pc.equal(deletes.column(SCOPE_COLUMN), ALL_PARTITIONS)).as_py())


def deletes_reaching(deletes: pa.Table, partition_id: int) -> pa.Table:
    """The deletes that apply to rows of ``partition_id``."""
    if is_collection_wide(deletes):
        return deletes
    scope = deletes.column(SCOPE_COLUMN)
    return deletes.filter(pc.or_(pc.equal(scope, ALL_PARTITIONS), pc.equal(scope, partition_id)))


def latest_deletes(deletes: pa.Table, partition_id: int | None = None) -> pa.Table:
    """One row per deleted key: "pk" and the largest delete "__ts" among the deletes reaching
    ``partition_id`` (None: every delete, whatever its scope -- only for collection-wide data)."""
    if partition_id is not None:
        deletes = deletes_reaching(deletes, partition_id)
    if deletes.num_rows == 0:
        return deletes.select(["pk", TIMESTAMP_COLUMN])
    grouped = deletes.group_by("pk").aggregate([(TIMESTAMP_COLUMN, "max")])
    return pa.table({"pk": grouped.column("pk"), TIMESTAMP_COLUMN: grouped.column(f"{TIMESTAMP_COLUMN}_max")})


def hidden_mask(
    pks: pa.Array | pa.ChunkedArray, row_ts: pa.Array | pa.ChunkedArray, latest: pa.Table
) -> np.ndarray:
    """Bool mask over the rows: True where a delete hides the row. ``latest`` from latest_deletes
    for the rows' partition."""
    n = len(pks)
    if latest.num_rows == 0 or n == 0:
        return np.zeros(n, dtype=bool)
    keys = latest.column("pk").combine_chunks()
    if keys.type != pks.type:
        keys = keys.cast(pks.type)
    position = pc.index_in(pks, value_set=keys)
    found = position.is_valid()
    delete_ts = pc.take(latest.column(TIMESTAMP_COLUMN), pc.fill_null(position, 0))
    hidden = pc.and_(found, pc.greater(delete_ts, row_ts))
    return np.asarray(hidden.to_numpy(zero_copy_only=False), dtype=bool)


def visible_rows(table: pa.Table, primary_key: str, latest: pa.Table) -> pa.Table:
    """``table`` (rows of one partition) without the rows the deletes hide."""
    mask = hidden_mask(table.column(primary_key), table.column(TIMESTAMP_COLUMN), latest)
    if not mask.any():
        return table
    return table.filter(pa.array(~mask))
