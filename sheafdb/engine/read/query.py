"""Query and get: the rows a filter (and/or a list of primary keys) selects, or their count.

Masks come from the same place as search's (filter AND not deleted, per source). When the
keys are known (``ids``, or a filter that is exactly ``pk in [...]``), each source's primary-key
lookup finds the rows and only those rows are checked against the deletes and the filter:
a get costs O(keys), not O(rows). Results are in source order,
or ordered by primary key when asked (iterators page with ``pk > last``); only the rows that
survive offset/limit are gathered.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from sheafdb.engine.load.loaded_segment import RowSource
from sheafdb.engine.models import QueryRequest, QueryResult
from sheafdb.engine.read.aggregation import aggregate_rows, aggregates_in, check_aggregation
from sheafdb.engine.read.expiry import Expiry
from sheafdb.engine.read.output import COUNT_STAR, gather
from sheafdb.engine.read.search import ReadContext, compile_checked, row_masks
from sheafdb.engine.read.visibility import hidden_mask
from sheafdb.errors import invalid
from sheafdb.expr import Filter
from sheafdb.schema import TIMESTAMP_COLUMN

MAX_QUERY_WINDOW = 16384


def execute_query(ctx: ReadContext, req: QueryRequest) -> QueryResult:
    counting = [name.strip().lower() for name in req.output_fields] == [COUNT_STAR]
    aggregating = bool(req.group_by_fields) or bool(aggregates_in(req.output_fields))
    if aggregating:
        counting = False
        read = check_aggregation(ctx.schema, req.output_fields, req.group_by_fields)
    if not (counting or aggregating) and not req.filter.strip() and req.ids is None and req.limit is None:
        raise invalid("empty expression should be used with limit")
    if req.limit is not None and req.limit + req.offset > MAX_QUERY_WINDOW and not counting:
        raise invalid(
            f"invalid max query result window, (offset+limit) should be in range [1, {MAX_QUERY_WINDOW}], "
            f"but got {req.limit + req.offset}"
        )
    flt = compile_checked(ctx, req.filter, req.filter_params)
    primary = ctx.schema.primary_field.name
    keys: Sequence[int] | Sequence[str] | None = (
        req.ids if req.ids is not None else (flt.primary_keys() if flt is not None else None)
    )
    selected: list[np.ndarray] = []
    if keys is not None:
        # A filter that only names the keys is already applied by the lookup.
        check = flt if req.ids is not None else None
        selected = [
            _rows_by_key(
                source, primary, keys, check, ctx.deletes.of_partition(source.partition_id), ctx.expiry
            )
            for source in ctx.sources
        ]
    else:
        for source, mask in zip(ctx.sources, row_masks(ctx, flt), strict=True):
            selected.append(np.flatnonzero(mask) if mask is not None else np.arange(source.num_rows))
    if counting:
        total = sum(len(rows) for rows in selected)
        return QueryResult(pa.table({COUNT_STAR: pa.array([total], pa.int64())}), (COUNT_STAR,))
    if aggregating:
        plan = ctx.plans.output(ctx.loaded_fields, read or (primary,), dynamic_loaded=False)
        ids_of = [np.full(len(r), i, dtype=np.int64) for i, r in enumerate(selected)]
        source_of = np.concatenate(ids_of or [np.empty(0, np.int64)])
        rows_of = np.concatenate(selected or [np.empty(0, np.int64)]).astype(np.int64)
        values = gather(ctx.sources, source_of, rows_of, plan)
        table = aggregate_rows(values, req.output_fields, req.group_by_fields, req.offset, req.limit)
        return QueryResult(table, tuple(req.output_fields))
    requested = req.output_fields or (primary,)
    output = ctx.plans.output(ctx.loaded_fields, requested, dynamic_loaded=ctx.dynamic_loaded)
    source_ids = np.concatenate(
        [np.full(len(r), i, dtype=np.int64) for i, r in enumerate(selected)] or [np.empty(0, np.int64)]
    )
    rows = np.concatenate(selected or [np.empty(0, np.int64)]).astype(np.int64)
    if req.order_by_primary_key and len(rows):
        pk_plan = ctx.plans.output(ctx.loaded_fields, (primary,), dynamic_loaded=False)
        pks = gather(ctx.sources, source_ids, rows, pk_plan).column(primary).to_numpy()
        order = np.argsort(pks, kind="stable")
        source_ids, rows = source_ids[order], rows[order]
    end = None if req.limit is None else req.offset + req.limit
    source_ids, rows = source_ids[req.offset : end], rows[req.offset : end]
    table = gather(ctx.sources, source_ids, rows, output)
    # Milvus always returns the primary key of queried rows, asked for or not.
    names = output.names if primary in output.names else (primary, *output.names)
    return QueryResult(table, names)


def _rows_by_key(
    source: RowSource,
    primary: str,
    keys: Sequence[int] | Sequence[str],
    flt: Filter | None,
    latest: pa.Table,
    expiry: Expiry | None,
) -> np.ndarray:
    """Rows of ``source`` holding ``keys`` that no delete hides, ``flt`` keeps and have not
    expired."""
    rows = source.rows_of(primary, keys)
    if len(rows) == 0 or (flt is None and latest.num_rows == 0 and expiry is None):
        return rows
    picked = source.table.take(pa.array(rows))
    keep = np.ones(len(rows), dtype=bool)
    if latest.num_rows:
        keep &= ~hidden_mask(picked.column(primary), picked.column(TIMESTAMP_COLUMN), latest)
    if flt is not None:
        keep &= flt.evaluate(picked)
    expired = expiry.expired(picked) if expiry is not None else None
    if expired is not None:
        keep &= ~expired
    return rows[keep]
