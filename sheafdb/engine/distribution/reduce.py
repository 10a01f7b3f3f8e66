"""The proxy's reduce: the answers of a replica's query workers merged into the answer one
process holding every segment would give.

Each worker answers over the segments placed on it (the replica leader also over the growing
rows), asked with offset 0 and ``offset + limit`` hits, scores unrounded; the merge then cuts.

- **Search**: per query, every worker's hits sorted by score in the metric's direction
  (stable: ties keep worker order), then ``offset``/``limit``; group_by picks groups again over
  the merged hits (groups in order of their best hit, at most ``group_size`` hits each, as
  engine/read/search.py does); range search is the same merge (every hit is inside the window);
  ``round_decimal`` applies last.
- **Query**: workers return rows ordered by primary key (``order_by_primary_key``), so the
  merge is a sort by primary key, then ``offset``/``limit`` (Milvus's own reduce orders query
  results by primary key as well). ``count(*)`` is summed.
- **Aggregation** (``count/min/max/sum/avg(field)``, optionally per group): workers are asked
  for partial aggregates (``avg`` as ``sum`` and ``count``), which are combined per group, then
  ordered by the group keys and cut, as engine/read/aggregation.py orders them.
- **Hybrid search** is fused at the proxy (engine/read/rerank.py's ``fuse``) over the merged
  sub-searches, so its rank fusion is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

import numpy as np
import pyarrow as pa

from sheafdb.engine.models import HybridSearchRequest, QueryRequest, QueryResult, SearchRequest, SearchResult
from sheafdb.engine.read.aggregation import parse_aggregate
from sheafdb.engine.read.decay import search_with_decay
from sheafdb.engine.read.output import COUNT_STAR
from sheafdb.engine.read.rerank import check_hybrid, fuse, sub_searches
from sheafdb.engine.read.search_by_keys import with_key_vectors
from sheafdb.schema import CollectionSchema
from sheafdb.storage.records import IndexRecord


@dataclass(frozen=True)
class SearchCut:
    """What the merge of one search keeps (from the client's request)."""

    limit: int
    offset: int = 0
    round_decimal: int = -1
    group_by: bool = False
    group_size: int = 1

    @classmethod
    def of(cls, request: SearchRequest) -> SearchCut:
        return cls(
            request.limit,
            request.offset,
            request.round_decimal,
            bool(request.group_by_field),
            max(1, request.group_size),
        )


def worker_search(request: SearchRequest) -> SearchRequest:
    """The request each worker answers: the whole window, unrounded."""
    return replace(request, limit=request.offset + request.limit, offset=0, round_decimal=-1)


def merge_search(results: Sequence[SearchResult], larger_is_better: bool, cut: SearchCut) -> SearchResult:
    """The workers' hits of the same nq queries, merged and cut."""
    first = results[0]
    nq = first.nq
    query_of = np.concatenate([np.repeat(np.arange(nq, dtype=np.int64), r.topks) for r in results])
    scores = np.concatenate([r.scores for r in results]).astype(np.float32, copy=False)
    key = -scores.astype(np.float64) if larger_is_better else scores.astype(np.float64)
    order = np.lexsort((key, query_of))  # stable: per query best first, ties in worker order
    sorted_query = query_of[order]
    starts = np.searchsorted(sorted_query, np.arange(nq + 1))
    groups = (
        pa.concat_arrays([r.group_by_values for r in results if r.group_by_values is not None])
        if cut.group_by
        else None
    )
    if groups is not None:
        picks = _pick_groups(order, starts, groups.take(pa.array(order)).to_pylist(), cut)
    else:
        picks = []
        for q in range(nq):
            lo = int(starts[q]) + cut.offset
            picks.append(order[lo : max(lo, min(int(starts[q + 1]), lo + cut.limit))])
    chosen = np.concatenate(picks) if picks else np.zeros(0, np.int64)
    taken = pa.array(chosen, type=pa.int64())
    merged_scores = scores[chosen]
    if cut.round_decimal >= 0:
        merged_scores = np.round(merged_scores, cut.round_decimal).astype(np.float32)
    ids = pa.concat_arrays([r.ids for r in results]).take(taken)
    fields = pa.concat_tables([r.fields for r in results], promote_options="permissive")
    return SearchResult(
        primary_field=first.primary_field,
        topks=np.asarray([len(p) for p in picks], dtype=np.int64),
        ids=ids,
        scores=merged_scores,
        fields=fields.take(taken).combine_chunks(),
        output_fields=first.output_fields,
        group_by_values=None if groups is None else groups.take(taken),
    )


def _pick_groups(
    order: np.ndarray, starts: np.ndarray, values: list[Any], cut: SearchCut
) -> list[np.ndarray]:
    """Per query, the kept hits: the first ``offset + limit`` groups by best hit, at most
    ``group_size`` hits each, members together, the first ``offset`` groups dropped."""
    wanted = cut.offset + cut.limit
    picks: list[np.ndarray] = []
    for q in range(len(starts) - 1):
        members_of: dict[Any, list[int]] = {}
        for position in range(int(starts[q]), int(starts[q + 1])):
            value = values[position]
            members = members_of.get(value)
            if members is None:
                if len(members_of) >= wanted:
                    continue
                members_of[value] = members = []
            if len(members) < cut.group_size:
                members.append(int(order[position]))
        kept = list(members_of.values())[cut.offset :]
        picks.append(np.asarray([p for members in kept for p in members], dtype=np.int64))
    return picks


# -- query ------------------------------------------------------------------------------------


def is_count(request: QueryRequest) -> bool:
    return [name.strip().lower() for name in request.output_fields] == [COUNT_STAR]


def is_aggregation(request: QueryRequest) -> bool:
    return bool(request.group_by_fields) or any(
        (agg := parse_aggregate(name)) is not None and not (agg.function == "count" and agg.field == "*")
        for name in request.output_fields
    )


def worker_query(request: QueryRequest) -> QueryRequest:
    """The request each worker answers: ordered by primary key, the whole window; partial
    aggregates for an aggregation."""
    if is_aggregation(request):
        partial: list[str] = list(request.group_by_fields)
        for name in request.output_fields:
            agg = parse_aggregate(name)
            if agg is None:
                continue
            if agg.function == "avg":
                partial += [f"sum({agg.field})", f"count({agg.field})"]
            else:
                partial.append(_canonical(name))
        return replace(request, output_fields=tuple(dict.fromkeys(partial)), offset=0, limit=None)
    if is_count(request):
        return request
    limit = None if request.limit is None else request.offset + request.limit
    return replace(request, offset=0, limit=limit, order_by_primary_key=True)


def merge_query(results: Sequence[QueryResult], request: QueryRequest, primary: str) -> QueryResult:
    """The workers' answers to ``worker_query(request)``, merged as one process answers."""
    if is_aggregation(request):
        return _merge_aggregates(results, request)
    if is_count(request):
        total = sum(int(r.table.column(0)[0].as_py()) for r in results)
        return QueryResult(pa.table({COUNT_STAR: pa.array([total], pa.int64())}), (COUNT_STAR,))
    table = pa.concat_tables([r.table for r in results], promote_options="permissive")
    if table.num_rows and len(results) > 1:
        table = table.take(
            table.column(primary).combine_chunks().to_numpy(zero_copy_only=False).argsort(kind="stable")
        )
    end = None if request.limit is None else request.offset + request.limit
    table = table.slice(request.offset, None if end is None else max(end - request.offset, 0))
    return QueryResult(table.combine_chunks(), results[0].output_fields)


def _canonical(name: str) -> str:
    agg = parse_aggregate(name)
    assert agg is not None
    return f"{agg.function}({agg.field})"


def _merge_aggregates(results: Sequence[QueryResult], request: QueryRequest) -> QueryResult:
    parts = pa.concat_tables([r.table for r in results], promote_options="permissive")
    keys = list(request.group_by_fields)
    specs: list[tuple[str, str]] = []
    for name in parts.column_names:
        agg = parse_aggregate(name)
        if agg is None:
            continue
        # Counts and sums add up; minima and maxima of minima and maxima.
        specs.append((name, "min" if agg.function == "min" else "max" if agg.function == "max" else "sum"))
    combined = parts.group_by(keys).aggregate(specs) if specs or keys else parts
    if keys:
        combined = combined.sort_by([(name, "ascending") for name in keys])
    end = None if request.limit is None else request.offset + request.limit
    combined = combined.slice(request.offset, None if end is None else max(end - request.offset, 0))
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in request.output_fields:
        agg = parse_aggregate(name)
        if agg is None:
            columns[name] = combined.column(name)
        elif agg.function == "avg":
            total = combined.column(f"sum({agg.field})_sum").to_numpy(zero_copy_only=False).astype(np.float64)
            count = (
                combined.column(f"count({agg.field})_sum").to_numpy(zero_copy_only=False).astype(np.float64)
            )
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = total / count
            columns[name] = pa.array(mean, pa.float64(), mask=~(count > 0))
        else:
            function = dict(specs)[_canonical(name)]
            column = combined.column(f"{_canonical(name)}_{function}")
            columns[name] = column.cast(pa.int64()) if agg.function == "count" else column
    return QueryResult(pa.table(columns), tuple(request.output_fields))


# -- the proxy's reads over one replica's workers ------------------------------------------------


@dataclass(frozen=True)
class WorkerAnswer:
    result: SearchResult | QueryResult
    larger_is_better: bool = True


class Fanout(Protocol):
    """One read sent to every worker of one replica; their answers (errors raised)."""

    def __call__(self, method: str, request: SearchRequest | QueryRequest) -> Sequence[WorkerAnswer]: ...


def metric_for(
    schema: CollectionSchema, indexes: Sequence[IndexRecord], anns_field: str | None, asked: str | None
) -> str:
    """The metric a search on ``anns_field`` ranks by: the asked one, else its index's."""
    if asked:
        return asked.upper()
    name = anns_field
    if not name:
        vectors = schema.vector_fields
        name = vectors[0].name if len(vectors) == 1 else ""
    record = next((ix for ix in indexes if ix.field_name == name), None)
    if record is None:
        # The workers refuse it with Milvus's words; no fusion runs on it.
        return ""
    return str(record.params.get("metric_type", "")).upper()


def fanned_search(fanout: Fanout, request: SearchRequest, metric: str) -> SearchResult:
    """A search over every worker of a replica, as one process answers it."""
    if request.decay is not None:
        return search_with_decay(lambda plain: fanned_search(fanout, plain, metric), metric, request)
    answers = fanout("search", worker_search(request))
    results = [cast(SearchResult, a.result) for a in answers]
    return merge_search(results, answers[0].larger_is_better, SearchCut.of(request))


def fanned_search_by_keys(
    fanout: Fanout, schema: CollectionSchema, request: SearchRequest, metric: str
) -> SearchResult:
    """A search whose queries are stored rows (``ids``): fetched by a fanned get first."""
    primary = schema.primary_field.name
    keyed = with_key_vectors(schema, request, lambda get: fanned_query(fanout, get, primary))
    return fanned_search(fanout, keyed, metric)


def fanned_hybrid_search(
    fanout: Fanout, request: HybridSearchRequest, metrics: Sequence[str]
) -> SearchResult:
    """Each sub-search fanned out and merged, then fused here: exact rank fusion."""
    check_hybrid(request)
    subs = [
        fanned_search(fanout, sub, metric) for sub, metric in zip(sub_searches(request), metrics, strict=True)
    ]
    return fuse(request, subs, metrics)


def fanned_query(fanout: Fanout, request: QueryRequest, primary: str) -> QueryResult:
    answers = fanout("query", worker_query(request))
    return merge_query([cast(QueryResult, a.result) for a in answers], request, primary)
