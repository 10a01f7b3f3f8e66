"""Milvus 2.6's decay rankers: a hit's score times how far a numeric field lies from an origin.

    d = max(0, |value - origin| - offset)
    gauss:  exp(-d^2 / (2 sigma^2)),  sigma^2 = -scale^2 / (2 ln decay)
    exp:    exp(lambda d),            lambda = ln(decay) / scale
    linear: max(0, (s - d) / s),      s = scale / (1 - decay)

so a value ``scale`` beyond the offset scores ``decay``. The relevance multiplied is the
hit's score for similarity metrics (IP, COSINE, BM25) and ``1 - 2 atan(d) / pi`` for
distances (L2, ...), so that higher is better before the decay applies; hits are then
re-sorted by the product. A row whose field is null decays to 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.engine.models import DecayRanker, SearchRequest, SearchResult
from sheafdb.errors import invalid
from sheafdb.index.metrics import higher_is_better


def decay_factor(ranker: DecayRanker, values: np.ndarray) -> np.ndarray:
    distance = np.maximum(0.0, np.abs(values - ranker.origin) - ranker.offset)
    if ranker.function == "gauss":
        sigma_sq = -(ranker.scale**2) / (2.0 * np.log(ranker.decay))
        return np.asarray(np.exp(-(distance**2) / (2.0 * sigma_sq)))
    if ranker.function == "exp":
        return np.asarray(np.exp(np.log(ranker.decay) / ranker.scale * distance))
    s = ranker.scale / (1.0 - ranker.decay)
    return np.maximum(0.0, (s - distance) / s)


def relevance(metric: str, scores: np.ndarray) -> np.ndarray:
    if higher_is_better(metric):
        return scores.astype(np.float64)
    return 1.0 - 2.0 * np.arctan(scores.astype(np.float64)) / np.pi


def field_values(ranker: DecayRanker, fields: pa.Table) -> np.ndarray:
    column = fields.column(ranker.field)
    numbers = pc.fill_null(pc.cast(column, pa.float64()), np.nan).to_numpy()
    return np.asarray(numbers, dtype=np.float64)


def rerank(
    result: SearchResult, ranker: DecayRanker, base: np.ndarray, limit: int, offset: int
) -> SearchResult:
    """Each query's hits ordered by ``base x decay``, cut to ``offset``..``offset + limit``."""
    factor = np.nan_to_num(decay_factor(ranker, field_values(ranker, result.fields)), nan=0.0)
    final = base * factor
    starts = np.concatenate([[0], np.cumsum(result.topks)])
    picks: list[np.ndarray] = []
    topks = np.zeros(result.nq, dtype=np.int64)
    for q in range(result.nq):
        lo, hi = int(starts[q]), int(starts[q + 1])
        order = lo + np.argsort(-final[lo:hi], kind="stable")
        kept = order[offset : offset + limit]
        picks.append(kept)
        topks[q] = len(kept)
    chosen = np.concatenate(picks) if picks else np.zeros(0, np.int64)
    taken = pa.array(chosen, type=pa.int64())
    return replace(
        result,
        topks=topks,
        ids=result.ids.take(taken),
        scores=final[chosen].astype(np.float32),
        fields=result.fields.take(taken),
    )


def search_with_decay(
    run: Callable[[SearchRequest], SearchResult], metric: str, req: SearchRequest
) -> SearchResult:
    """A search whose hits a decay ranker re-orders (``run`` is the plain search)."""
    ranker = req.decay
    assert ranker is not None
    wanted = req.output_fields
    extra = () if ranker.field in wanted else (ranker.field,)
    found = run(
        replace(
            req,
            decay=None,
            output_fields=(*wanted, *extra),
            limit=req.offset + req.limit,
            offset=0,
            round_decimal=-1,
        )
    )
    if ranker.field not in found.fields.column_names:
        raise invalid(f"decay function input field {ranker.field} is not loaded or not a schema field")
    ranked = rerank(found, ranker, relevance(metric, found.scores), req.limit, req.offset)
    if extra:
        kept = [n for n in ranked.fields.column_names if n != ranker.field]
        ranked = replace(
            ranked,
            fields=ranked.fields.select(kept),
            output_fields=tuple(n for n in ranked.output_fields if n != ranker.field),
        )
    if req.round_decimal >= 0:
        ranked = replace(ranked, scores=np.round(ranked.scores, req.round_decimal).astype(np.float32))
    return ranked
