"""Vector search over loaded segments and growing rows: one SearchRequest -> one SearchResult.

Per request, in this order: the fields it names are checked against what is loaded; the filter
is compiled once; per source (a loaded sealed segment or a growing table) the filter and the
deletes make one bool mask; the segment's index searches with that mask as its allowed set and
an ef widened for it, or, when the mask leaves few rows, too small a share for the graph, or
rows cheaper to scan than the widened beam (or the segment has no index yet), those rows are
searched exactly (recall 1). Each source returns
its best ``offset + limit``; the merge keeps the best across sources in the metric's direction;
output columns are gathered by position with Arrow ``take``. Python work is O(sources + hits).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from sheafdb.engine.finite_vectors import check_floats, check_query_vectors
from sheafdb.engine.load.loaded_segment import RowSource
from sheafdb.engine.models import EmbeddingListQueries, SearchRequest, SearchResult, TextQueries
from sheafdb.engine.read.decay import search_with_decay
from sheafdb.engine.read.expiry import Expiry
from sheafdb.engine.read.live_deletes import LiveDeletes
from sheafdb.engine.read.output import OutputPlan, gather
from sheafdb.engine.read.read_plans import ReadPlans
from sheafdb.engine.read.segment_pool import run_all
from sheafdb.engine.read.struct_search import embedding_list_hits, embedding_list_metric, query_lists
from sheafdb.engine.read.text_search import bm25_queries, check_query_kind
from sheafdb.engine.struct_index import struct_sub_of
from sheafdb.errors import FieldNotFound, UnexpectedError, invalid
from sheafdb.expr import Filter
from sheafdb.index import IndexSpec, exact_range_search, exact_search, parse_search_params
from sheafdb.index.metrics import sort_key, worst_score
from sheafdb.schema import DYNAMIC_FIELD, CollectionSchema, DataType, FieldSchema
from sheafdb.storage.records import IndexRecord

MAX_TOPK = 16384
# Up to this many allowed rows a segment is always searched exactly instead of through its index.
EXACT_SEARCH_MAX_ROWS = 4096
# A filtered graph search walks through rejected nodes but keeps only allowed ones, so a
# selective filter needs a wider beam for the same recall: ef x FILTERED_EF_SHARE / selectivity
# (at least the asked ef), up to MAX_FILTERED_EF. Measured (bench/filter_search_cost.py, 100k x
# 128, HNSW M16): recall@10 >= 0.99 needs ef 64 at 10% kept, 96 at 5%, 128-192 at 3%, 384 at 2%.
FILTERED_EF_SHARE = 0.15
MAX_FILTERED_EF = 1024
# A filtered search scans the allowed rows exactly when that costs less than the widened graph
# walk: one beam slot of HNSW costs about as much as scanning this many rows (measured as above:
# ~0.55 us per ef vs ~45 ns per 128-d row), and the scan's recall is 1.
EXACT_ROWS_PER_EF = 12
# Below this share of a segment's rows a filtered graph walk misses neighbours whatever its ef
# (recall@10 levels off at ~0.995 at 2% and ~0.87 at 1% kept, measured as above): such a
# filter is always scanned.
MIN_GRAPH_SHARE = 0.03
# group_by first asks each source for this many times the hits it needs, then doubles.
GROUP_OVERFETCH = 4


@dataclass(frozen=True)
class ReadContext:
    """What a read sees: the schema, the loaded fields, the sources, and the live deletes."""

    collection_id: int
    schema: CollectionSchema
    loaded_fields: tuple[str, ...]
    sources: tuple[RowSource, ...]
    # The deletes (and superseded versions) this read hides, with their per-partition reductions.
    deletes: LiveDeletes
    indexes: tuple[IndexRecord, ...]
    # What reads derive from ``schema`` and keep (compiled filters, output plans, index specs).
    plans: ReadPlans
    # The collection's TTL rule at this read's instant (None: no TTL).
    expiry: Expiry | None = None

    @property
    def dynamic_loaded(self) -> bool:
        return DYNAMIC_FIELD in self.loaded_fields


@dataclass(frozen=True)
class Candidates:
    """The merged hits of nq queries: (nq, k) arrays, padded with source -1."""

    scores: np.ndarray
    sources: np.ndarray
    rows: np.ndarray
    # Known to have no padding (every slot a hit): build_result skips looking for it.
    full: bool = False

    def after(self, offset: int) -> Candidates:
        """The hits past the first ``offset`` of each query."""
        if offset == 0:
            return self
        return Candidates(self.scores[:, offset:], self.sources[:, offset:], self.rows[:, offset:], self.full)


def compile_checked(ctx: ReadContext, text: str, params: Mapping[str, Any]) -> Filter | None:
    """Compile a filter and refuse it when it reads something that is not loaded."""
    if not text.strip():
        return None
    compiled = ctx.plans.filter(text, params)
    for name in sorted(compiled.fields):
        if name not in ctx.loaded_fields:
            field = ctx.schema.field(name)
            kind = field.dtype.name.title() if field is not None else "Unknown"
            raise UnexpectedError(f"failed to create query plan: field {name} data_type:{kind} is not loaded")
    if compiled.dynamic_keys and not ctx.dynamic_loaded:
        key = sorted(compiled.dynamic_keys)[0]
        raise UnexpectedError(f"field {key} is dynamic but dynamic field is not loaded")
    return compiled


def row_masks(ctx: ReadContext, flt: Filter | None) -> list[np.ndarray | None]:
    """Per source: the rows the filter keeps and no delete hides (None = every row).

    Read-only: a loaded segment keeps them (per filter object, see compile_checked).
    """
    if flt is None and ctx.deletes.num_rows == 0:
        masks: list[np.ndarray | None] = [None] * len(ctx.sources)  # skip the per-source caches
    else:
        primary = ctx.schema.primary_field.name
        masks = [
            source.allowed(flt, primary, ctx.deletes.of_partition(source.partition_id))
            for source in ctx.sources
        ]
    if ctx.expiry is None:
        return masks
    # Expired rows hidden at this read's instant (after the cached masks: time moves on).
    out: list[np.ndarray | None] = []
    for source, mask in zip(ctx.sources, masks, strict=True):
        expired = ctx.expiry.expired(source.table)
        out.append(mask if expired is None else (~expired if mask is None else mask & ~expired))
    return out


def _hidden_rows(ctx: ReadContext) -> list[np.ndarray | None]:
    """Per source: the rows deletes (and upserts) hide, None when none (BM25 statistics)."""
    if ctx.deletes.num_rows == 0:
        return [None] * len(ctx.sources)
    primary = ctx.schema.primary_field.name
    return [source.hidden(primary, ctx.deletes.of_partition(source.partition_id)) for source in ctx.sources]


def resolve_anns_field(ctx: ReadContext, name: str | None) -> FieldSchema:
    schema, loaded = ctx.schema, ctx.loaded_fields
    if not name:
        vectors = ctx.plans.vector_fields
        if not vectors:
            raise invalid("anns_field not found in schema")
        if len(vectors) != 1:
            raise invalid("multiple anns_fields exist, please specify a anns_field in search_params")
        name = vectors[0].name
    field = schema.field(name)
    if field is None or not field.is_vector:
        raise FieldNotFound(f"failed to get field schema by name: fieldName({name}) not found")
    if name not in loaded:
        raise UnexpectedError(f'ann field "{name}" not loaded')
    return field


def index_spec(ctx: ReadContext, field: FieldSchema, metric_type: str | None) -> IndexSpec:
    record = next((ix for ix in ctx.indexes if ix.field_name == field.name), None)
    if record is None:
        raise UnexpectedError(
            f"there is no vector index on field: [{field.name}], please create index firstly"
        )
    spec = ctx.plans.index_spec(record, field)
    if metric_type and metric_type.upper() != spec.metric_type.upper():
        raise invalid(f"metric type not match[expected={spec.metric_type}][actual={metric_type}]")
    return spec


def _check_queries(field: FieldSchema, vectors: Any) -> None:
    if isinstance(vectors, np.ndarray) and field.dim is not None:
        width = vectors.shape[1] if vectors.ndim == 2 else vectors.shape[0]
        expected = (
            field.dim // 8 if vectors.dtype == np.uint8 and field.dtype.name == "BINARY_VECTOR" else field.dim
        )
        if width != expected:
            raise invalid(f"vector dimension mismatch, expected vector size {expected}, actual {width}")
        check_query_vectors(field.dtype, vectors)
    elif not isinstance(vectors, np.ndarray | TextQueries):
        check_floats(vectors.values)  # sparse queries: the values of their (index, value) pairs


def _nq(vectors: Any) -> int:
    if isinstance(vectors, np.ndarray):
        return 1 if vectors.ndim == 1 else int(vectors.shape[0])
    return len(vectors.offsets) - 1


def search_candidates(
    ctx: ReadContext,
    field: FieldSchema,
    spec: IndexSpec,
    queries: Any,
    k: int,
    params: Mapping[str, Any],
    masks: Sequence[np.ndarray | None],
) -> Candidates:
    """The best ``k`` hits per query across every source, best first."""
    nq = _nq(queries)
    found_in = [
        sid
        for sid, (source, mask) in enumerate(zip(ctx.sources, masks, strict=True))
        if (source.num_rows if mask is None else mask.any())
    ]
    # Sources are searched at once when the batch is small (engine/read/segment_pool.py).
    hits = run_all(
        [
            partial(_search_source, ctx, ctx.sources[sid], masks[sid], field, spec, queries, k, params)
            for sid in found_in
        ],
        nq,
    )
    if not hits:
        empty = np.empty((nq, 0))
        return Candidates(empty.astype(np.float32), empty.astype(np.int64), empty.astype(np.int64))
    all_scores = [np.asarray(scores, dtype=np.float32) for scores, _ in hits]
    all_rows = [np.asarray(rows, dtype=np.int64) for _, rows in hits]
    if len(all_scores) == 1:
        # One source (the common case): its hits are already best first, nothing to merge.
        rows = all_rows[0]
        valid = rows >= 0
        if valid.all():
            return Candidates(
                all_scores[0], np.full(rows.shape, found_in[0], dtype=np.int64), rows, full=True
            )
        return Candidates(
            np.where(valid, all_scores[0], worst_score(spec.metric_type)).astype(np.float32, copy=False),
            np.where(valid, found_in[0], -1),
            np.where(valid, rows, -1),
        )
    all_sources = [
        np.full(rows.shape, sid, dtype=np.int64) for sid, rows in zip(found_in, all_rows, strict=True)
    ]
    scores = np.concatenate(all_scores, axis=1)
    rows = np.concatenate(all_rows, axis=1)
    sources = np.concatenate(all_sources, axis=1)
    valid = rows >= 0
    key = np.where(valid, sort_key(spec.metric_type, scores), np.inf)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    take = np.take_along_axis
    valid = take(valid, order, axis=1)
    if valid.all():  # no padding among the best k (the common case)
        return Candidates(
            take(scores, order, axis=1), take(sources, order, axis=1), take(rows, order, axis=1), full=True
        )
    return Candidates(
        np.where(valid, take(scores, order, axis=1), worst_score(spec.metric_type)).astype(np.float32),
        np.where(valid, take(sources, order, axis=1), -1),
        np.where(valid, take(rows, order, axis=1), -1),
    )


def _search_source(
    ctx: ReadContext,
    source: RowSource,
    mask: np.ndarray | None,
    field: FieldSchema,
    spec: IndexSpec,
    queries: Any,
    k: int,
    params: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """One source's best ``min(k, allowed)`` hits per query: graph, exact scan or range."""
    allowed = source.num_rows if mask is None else int(np.count_nonzero(mask))
    depth = min(k, allowed)
    index = source.index(field.name)
    use_index = index is not None and allowed > EXACT_SEARCH_MAX_ROWS
    if params.get("radius") is not None:
        return _ranged(ctx, source, field, spec, queries, depth, params, mask, use_index)
    if index is not None and use_index and (beam := index_beam(params, depth, mask, allowed)) is not None:
        return index.search(queries, depth, beam, mask)
    return exact_search(spec, source.vectors(ctx.schema, field.name), queries, depth, params, mask)


def index_beam(
    params: Mapping[str, Any], k: int, mask: np.ndarray | None, allowed: int
) -> Mapping[str, Any] | None:
    """The params for an index search of the ``allowed`` rows of ``mask``; None: scan them.

    Unfiltered searches keep the index whatever ef asks (results as before); a filtered one is
    a scan when it keeps too few rows for the graph or when the allowed rows cost less than the
    widened beam. An ef below k stays the index's error to raise.
    """
    if mask is None:
        return params
    beam = filtered_params(params, k, allowed, len(mask))
    ef = parse_search_params(beam).ef
    width = max(k, 16) if ef is None else ef
    if width >= k and (allowed < MIN_GRAPH_SHARE * len(mask) or allowed <= EXACT_ROWS_PER_EF * width):
        return None
    return beam


def filtered_params(params: Mapping[str, Any], k: int, allowed: int, total: int) -> Mapping[str, Any]:
    """``params`` with ef widened for a filter that keeps ``allowed`` of ``total`` rows."""
    ef = parse_search_params(params).ef
    base = max(k, 16) if ef is None else ef
    if base < k or allowed >= total:
        return params  # ef < k is the index's error to raise; no filter, nothing to widen
    wanted = math.ceil(base * FILTERED_EF_SHARE * total / max(allowed, 1))
    widened = min(max(base, MAX_FILTERED_EF), wanted)
    if widened <= base:
        return params
    # A nested "params" object wins over flat keys, so the result is flattened.
    nested = params.get("params")
    inner = json.loads(nested) if isinstance(nested, str) and nested.strip() else nested
    flat = {key: value for key, value in params.items() if key != "params"}
    return {**flat, **(inner if isinstance(inner, Mapping) else {}), "ef": widened}


def _ranged(
    ctx: ReadContext,
    source: RowSource,
    field: FieldSchema,
    spec: IndexSpec,
    queries: Any,
    k: int,
    params: Mapping[str, Any],
    mask: np.ndarray | None,
    use_index: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Range search: every hit inside the window, cut to the best ``k`` per query."""
    index = source.index(field.name)
    if use_index and index is not None:
        lims, scores, labels = index.range_search(queries, params, mask)
    else:
        vectors: Any = source.vectors(ctx.schema, field.name)
        lims, scores, labels = exact_range_search(spec, vectors, queries, params, mask)
    nq = len(lims) - 1
    out_scores = np.full((nq, k), worst_score(spec.metric_type), dtype=np.float32)
    out_rows = np.full((nq, k), -1, dtype=np.int64)
    for q in range(nq):  # per query, not per row: each query's hits come best first
        lo, hi = int(lims[q]), int(lims[q + 1])
        n = min(k, hi - lo)
        out_scores[q, :n] = scores[lo : lo + n]
        out_rows[q, :n] = labels[lo : lo + n]
    return out_scores, out_rows


def execute_search(ctx: ReadContext, req: SearchRequest) -> SearchResult:
    if req.decay is not None:
        field = resolve_anns_field(ctx, req.anns_field)
        metric = index_spec(ctx, field, req.metric_type).metric_type
        return search_with_decay(partial(execute_search, ctx), metric, req)
    if req.limit < 1 or req.limit + req.offset > MAX_TOPK:
        raise invalid(f"topk [{req.limit + req.offset}] is invalid, it should be in range [1, {MAX_TOPK}]")
    if (struct_sub := struct_sub_of(ctx.schema, req.anns_field or "")) is not None:
        if req.group_by_field or req.params.get("radius") is not None:
            raise invalid("group by and range search are not supported in an embedding list search")
        metric = embedding_list_metric(*struct_sub, ctx.loaded_fields, ctx.indexes, req.metric_type)
        lists = query_lists(*struct_sub, req.vectors)
        output = ctx.plans.output(ctx.loaded_fields, req.output_fields, dynamic_loaded=ctx.dynamic_loaded)
        masks = row_masks(ctx, compile_checked(ctx, req.filter, req.filter_params))
        hits = embedding_list_hits(ctx.sources, *struct_sub, metric, lists, req.offset + req.limit, masks)
        return build_result(ctx, Candidates(*hits).after(req.offset), output, req.round_decimal)
    field = resolve_anns_field(ctx, req.anns_field)
    if isinstance(req.vectors, EmbeddingListQueries):
        raise invalid(f"EmbeddingList queries search an embedding list field (struct[sub]), not {field.name}")
    _check_queries(field, req.vectors)
    parse_search_params(req.params)  # checked even when only growing rows (searched exactly) answer
    spec = index_spec(ctx, field, req.metric_type)
    function = check_query_kind(ctx.schema, field, req.vectors)
    if function is not None and isinstance(req.vectors, TextQueries):
        hidden = _hidden_rows(ctx)
        queries, params = bm25_queries(
            ctx.schema, function, field, ctx.sources, hidden, req.vectors, req.params
        )
        req = replace(req, vectors=queries, params=params)
    output = ctx.plans.output(ctx.loaded_fields, req.output_fields, dynamic_loaded=ctx.dynamic_loaded)
    flt = compile_checked(ctx, req.filter, req.filter_params)
    masks = row_masks(ctx, flt)
    if field.nullable:
        masks = _without_null_vectors(ctx, field, masks)
    if req.group_by_field:
        return _grouped_search(ctx, req, field, spec, output, masks)
    found = search_candidates(ctx, field, spec, req.vectors, req.offset + req.limit, req.params, masks)
    return build_result(ctx, found.after(req.offset), output, req.round_decimal)


def _without_null_vectors(
    ctx: ReadContext, field: FieldSchema, masks: Sequence[np.ndarray | None]
) -> list[np.ndarray | None]:
    """A search never returns a row whose searched vector is null (Milvus's nullable vectors)."""
    out: list[np.ndarray | None] = []
    for source, mask in zip(ctx.sources, masks, strict=True):
        column = source.table.column(field.name)
        if column.null_count == 0:
            out.append(mask)
            continue
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        out.append(valid if mask is None else mask & valid)
    return out


def build_result(
    ctx: ReadContext,
    found: Candidates,
    output: OutputPlan,
    round_decimal: int,
    group_values: pa.Array | None = None,
) -> SearchResult:
    valid = None if found.full else found.sources >= 0
    # Valid hits are a prefix of each row (sorted best first), so row-major order is query order.
    if valid is None or valid.all():  # every slot filled (the common case): flat views
        nq, width = found.sources.shape
        topks = np.full(nq, width, dtype=np.int64)
        source_ids, rows = found.sources.ravel(), found.rows.ravel()
        scores = found.scores.ravel().astype(np.float32, copy=False)
    else:
        topks = valid.sum(axis=1).astype(np.int64)
        source_ids, rows = found.sources[valid], found.rows[valid]
        scores = found.scores[valid].astype(np.float32)
    if round_decimal >= 0:
        scores = np.round(scores, round_decimal).astype(np.float32)
    table = gather(ctx.sources, source_ids, rows, output)
    primary_field = ctx.schema.primary_field
    primary = primary_field.name
    if table.num_rows:
        column = table.column(primary)
        ids = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    else:
        ids = pa.array([], primary_field.arrow_type())
    returned = [n for n in output.columns if n != primary or primary in output.names]
    return SearchResult(
        primary_field=primary_field,
        topks=topks,
        ids=ids,
        scores=scores,
        fields=table.select(returned),
        output_fields=output.names,
        group_by_values=group_values,
    )


def _grouped_search(
    ctx: ReadContext,
    req: SearchRequest,
    field: FieldSchema,
    spec: IndexSpec,
    output: OutputPlan,
    masks: Sequence[np.ndarray | None],
) -> SearchResult:
    """Best hits with at most ``group_size`` per value of the group field, ``limit`` groups."""
    group_field = req.group_by_field or ""
    group_schema = ctx.schema.field(group_field)
    if group_schema is None:
        raise FieldNotFound(f"groupBy field not found in schema: field not found[field={group_field}]")
    if group_schema.dtype is DataType.ARRAY_OF_STRUCT:
        raise invalid(f"group by field {group_field} of type ArrayOfStruct is not supported")
    if group_field not in ctx.loaded_fields:
        raise UnexpectedError(f"field {group_field} is not loaded")
    groups_wanted = req.offset + req.limit
    size = max(1, req.group_size)
    total_rows = sum(
        s.num_rows if m is None else int(m.sum()) for s, m in zip(ctx.sources, masks, strict=True)
    )
    depth = min(total_rows, groups_wanted * size * GROUP_OVERFETCH)
    group_type = ctx.schema.arrow_schema().field(group_field).type
    group_plan = OutputPlan((group_field,), (group_field,), None, (group_type,))
    while True:
        found = search_candidates(ctx, field, spec, req.vectors, max(depth, 1), req.params, masks)
        picked, complete = _pick_groups(
            ctx, found, group_plan, groups_wanted, size, req.offset, req.strict_group_size
        )
        if complete or depth >= total_rows:
            break
        depth = min(total_rows, depth * 2)
    nq = found.scores.shape[0]
    width = max((len(p) for p in picked), default=0)
    scores = np.full((nq, width), worst_score(spec.metric_type), dtype=np.float32)
    sources = np.full((nq, width), -1, dtype=np.int64)
    rows = np.full((nq, width), -1, dtype=np.int64)
    for q, positions in enumerate(picked):
        n = len(positions)
        scores[q, :n] = found.scores[q, positions]
        sources[q, :n] = found.sources[q, positions]
        rows[q, :n] = found.rows[q, positions]
    cut = Candidates(scores, sources, rows)
    valid = sources >= 0
    values = gather(ctx.sources, sources[valid], rows[valid], group_plan).column(group_field).combine_chunks()
    return build_result(ctx, cut, output, req.round_decimal, values)


def _pick_groups(
    ctx: ReadContext,
    found: Candidates,
    plan: OutputPlan,
    groups_wanted: int,
    size: int,
    offset: int,
    strict: bool,
) -> tuple[list[np.ndarray], bool]:
    """Per query: positions of the kept hits, grouped (groups in order of their best hit)."""
    picked: list[np.ndarray] = []
    complete = True
    for q in range(found.scores.shape[0]):
        valid = np.flatnonzero(found.sources[q] >= 0)
        values = (
            gather(ctx.sources, found.sources[q, valid], found.rows[q, valid], plan).column(0).to_pylist()
        )
        groups: dict[Any, list[int]] = {}
        for position, value in zip(valid.tolist(), values, strict=True):
            members = groups.get(value)
            if members is None:
                if len(groups) >= groups_wanted:
                    continue
                groups[value] = members = []
            if len(members) < size:
                members.append(position)
        full = len(groups) >= groups_wanted and (not strict or all(len(m) >= size for m in groups.values()))
        complete = complete and full
        kept = list(groups.values())[offset:]
        picked.append(np.asarray([p for members in kept for p in members], dtype=np.int64))
    return picked, complete
