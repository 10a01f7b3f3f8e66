"""Hybrid search: several sub-searches fused into one ranking (RRF or weighted), as Milvus does.

RRF: a hit's score is the sum over the sub-searches that found it of ``1 / (k + rank)``, rank
starting at 1, ``k`` 60 by default. Weighted: each sub-search's scores are normalised to 0..1
(Milvus's ``norm_score``: ``0.5 + atan(s)/pi`` for IP, ``(1 + s)/2`` for COSINE,
``1 - 2*atan(d)/pi`` for L2 distances, so that higher is better for all) and summed with the
sub-search's weight. Both fuse per query on the primary key; the fused hits' output columns
come from the sub-search rows that found them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from sheafdb.engine.models import HybridSearchRequest, SearchRequest, SearchResult
from sheafdb.engine.read.decay import rerank
from sheafdb.engine.read.search import MAX_TOPK, ReadContext, execute_search, index_spec, resolve_anns_field
from sheafdb.engine.read.struct_search import embedding_list_metric
from sheafdb.engine.struct_index import struct_sub_of
from sheafdb.errors import invalid

DEFAULT_RRF_K = 60


def normalise(metric: str, scores: np.ndarray) -> np.ndarray:
    metric = metric.upper()
    if metric == "COSINE":
        normalised: np.ndarray = (1.0 + scores) * 0.5
    elif metric in ("IP", "MAX_SIM_IP", "MAX_SIM_COSINE"):
        normalised = 0.5 + np.arctan(scores) / np.pi
    elif metric == "BM25":
        normalised = 2.0 * np.arctan(scores) / np.pi
    else:
        normalised = 1.0 - 2.0 * np.arctan(scores) / np.pi
    return normalised


def _ranker_scores(ranker: str, params: Mapping[str, Any], count: int) -> tuple[str, float, list[float]]:
    if ranker == "rrf":
        k = float(params.get("k", DEFAULT_RRF_K))
        if not 0 < k < 16384:
            raise invalid(f"The rank params k should be in range (0, 16384), but got {k}")
        return ranker, k, []
    if ranker == "weighted":
        weights = [float(w) for w in params.get("weights", [])]
        if len(weights) != count:
            raise invalid(
                f"the length of weights param mismatch with ann search requests: "
                f"weights: {len(weights)}, ann search requests: {count}"
            )
        return ranker, 0.0, weights
    raise invalid(f"unsupported rank type {ranker}")


def check_hybrid(req: HybridSearchRequest) -> None:
    """Milvus's refusals of a hybrid search, before any sub-search runs."""
    if not req.requests:
        raise invalid("no ann search requests")
    if req.limit < 1 or req.limit + req.offset > MAX_TOPK:
        raise invalid(f"topk [{req.limit + req.offset}] is invalid, it should be in range [1, {MAX_TOPK}]")
    if req.decay is None:
        _ranker_scores(req.ranker.strategy.lower(), req.ranker.params, len(req.requests))


def sub_searches(req: HybridSearchRequest) -> tuple[SearchRequest, ...]:
    """The sub-searches to run: each with the fields fusion and output need, whole, unrounded."""
    outputs = req.output_fields
    if req.decay is not None and req.decay.field not in outputs:
        outputs = (*outputs, req.decay.field)
    return tuple(replace(s, output_fields=outputs, offset=0, round_decimal=-1) for s in req.requests)


def execute_hybrid_search(ctx: ReadContext, req: HybridSearchRequest) -> SearchResult:
    check_hybrid(req)
    subs: list[SearchResult] = []
    metrics: list[str] = []
    for sub_request in sub_searches(req):
        struct_sub = struct_sub_of(ctx.schema, sub_request.anns_field or "")
        if struct_sub is not None:
            loaded, indexes = ctx.loaded_fields, ctx.indexes
            metrics.append(embedding_list_metric(*struct_sub, loaded, indexes, sub_request.metric_type))
        else:
            field = resolve_anns_field(ctx, sub_request.anns_field)
            metrics.append(index_spec(ctx, field, sub_request.metric_type).metric_type)
        subs.append(execute_search(ctx, sub_request))
    return fuse(req, subs, metrics)


def fuse(req: HybridSearchRequest, subs: Sequence[SearchResult], metrics: Sequence[str]) -> SearchResult:
    """The sub-searches' results (of ``sub_searches(req)``, searched with ``metrics``) fused."""
    decay = req.decay
    if decay is None:
        strategy, rrf_k, weights = _ranker_scores(
            req.ranker.strategy.lower(), req.ranker.params, len(req.requests)
        )
    else:
        strategy, rrf_k, weights = "max", 0.0, []
    norm = bool(req.ranker.params.get("norm_score", True))
    nq = subs[0].nq
    if any(s.nq != nq for s in subs):
        raise invalid("nq of the ann search requests differ")
    fused_ids: list[Any] = []
    fused_scores: list[float] = []
    picks: list[tuple[int, int]] = []  # (sub-search, row) holding each fused hit's fields
    topks = np.zeros(nq, dtype=np.int64)
    starts = [np.concatenate([[0], np.cumsum(s.topks)]) for s in subs]
    id_lists = [s.ids.to_pylist() for s in subs]
    for q in range(nq):
        total: dict[Any, float] = {}
        holder: dict[Any, tuple[int, int]] = {}
        for i, sub in enumerate(subs):
            lo, hi = int(starts[i][q]), int(starts[i][q + 1])
            scores = sub.scores[lo:hi].astype(np.float64)
            if strategy == "rrf":
                contribution = 1.0 / (rrf_k + np.arange(1, hi - lo + 1))
            elif strategy == "max":  # a decay ranker: each hit's best normalised score
                values = normalise(metrics[i], scores)
                for position, pk in enumerate(id_lists[i][lo:hi]):
                    total[pk] = max(total.get(pk, -np.inf), float(values[position]))
                    holder.setdefault(pk, (i, lo + position))
                continue
            else:
                values = normalise(metrics[i], scores) if norm else scores
                contribution = weights[i] * values
            for position, pk in enumerate(id_lists[i][lo:hi]):
                total[pk] = total.get(pk, 0.0) + float(contribution[position])
                holder.setdefault(pk, (i, lo + position))
        ranked = sorted(total.items(), key=lambda item: -item[1])
        if decay is None:
            ranked = ranked[req.offset : req.offset + req.limit]
        topks[q] = len(ranked)
        for pk, score in ranked:
            fused_ids.append(pk)
            fused_scores.append(score)
            picks.append(holder[pk])
    scores = np.asarray(fused_scores, dtype=np.float32)
    fields = _take_rows([s.fields for s in subs], picks)
    fused = SearchResult(
        primary_field=subs[0].primary_field,
        topks=topks,
        ids=pa.array(fused_ids, type=subs[0].ids.type),
        scores=scores,
        fields=fields,
        output_fields=subs[0].output_fields,
    )
    if decay is not None:
        fused = rerank(fused, decay, scores.astype(np.float64), req.limit, req.offset)
        if decay.field not in req.output_fields:
            kept = [n for n in fused.fields.column_names if n != decay.field]
            names = tuple(n for n in fused.output_fields if n != decay.field)
            fused = replace(fused, fields=fused.fields.select(kept), output_fields=names)
    if req.round_decimal >= 0:
        fused = replace(fused, scores=np.round(fused.scores, req.round_decimal).astype(np.float32))
    return fused


def _take_rows(tables: Sequence[pa.Table], picks: Sequence[tuple[int, int]]) -> pa.Table:
    """Rows ``tables[i][row]`` for each pick, in order: one concat and one take."""
    offsets = np.concatenate([[0], np.cumsum([t.num_rows for t in tables])])
    merged = pa.concat_tables(tables, promote_options="permissive")
    positions = np.asarray([offsets[i] + row for i, row in picks], dtype=np.int64)
    return merged.take(pa.array(positions))
