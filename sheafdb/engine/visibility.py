"""Which rows a set of deletes hides: the one rule every reader and compaction applies.

A row ``(pk, __ts)`` is hidden when some delete has the same primary key and a larger
timestamp. Evaluated column-wise: the deletes are reduced to the latest timestamp per key, then
each row looks its key up with ``pc.index_in`` (a hash lookup in C), no Python loop per row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.schema import TIMESTAMP_COLUMN


def latest_deletes(deletes: pa.Table) -> pa.Table:
    """One row per deleted key: "pk" and the largest delete "__ts"."""
    if deletes.num_rows == 0:
        return deletes
    grouped = deletes.group_by("pk").aggregate([(TIMESTAMP_COLUMN, "max")])
    return pa.table({"pk": grouped.column("pk"), TIMESTAMP_COLUMN: grouped.column(f"{TIMESTAMP_COLUMN}_max")})


def hidden_mask(
    pks: pa.Array | pa.ChunkedArray, row_ts: pa.Array | pa.ChunkedArray, latest: pa.Table
) -> np.ndarray:
    """Bool mask over the rows: True where a delete hides the row. ``latest`` from latest_deletes."""
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
    """``table`` without the rows the deletes hide."""
    mask = hidden_mask(table.column(primary_key), table.column(TIMESTAMP_COLUMN), latest)
    if not mask.any():
        return table
    return table.filter(pa.array(~mask))
