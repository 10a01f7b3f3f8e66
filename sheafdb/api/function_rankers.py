"""Function rankers (a search's or hybrid search's ``FunctionScore``, gRPC or REST) -> the
engine's rankers.

Milvus 2.6 names the ranker in the function's ``reranker`` param: ``decay`` (with ``function``
gauss / exp / linear, ``origin``, ``scale``, ``offset``, ``decay`` on one numeric input field),
``rrf`` and ``weighted`` (hybrid search), or ``model`` (a remote reranking service, which
SheafDB does not call).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sheafdb.engine.models import DecayRanker, Ranker
from sheafdb.errors import Unsupported, invalid
from sheafdb.schema_functions import FunctionType

DECAY_FUNCTIONS = ("gauss", "exp", "linear")


def function_ranker(
    count: int, name: str, kind_number: int, fields: Sequence[str], given: Mapping[str, Any]
) -> DecayRanker | Ranker:
    """The one rerank function of a FunctionScore (``count`` functions in it)."""
    if count != 1:
        raise invalid(f"only one rerank function is supported, got {count}")
    if kind_number != FunctionType.RERANK:
        raise invalid(f"function {name} is not a rerank function")
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in given.items()}
    kind = params.get("reranker", "").lower()
    if kind == "decay":
        return decay_ranker(tuple(fields), params)
    if kind in ("rrf", "weighted"):
        parsed = {k: _json(v) for k, v in params.items() if k != "reranker"}
        return Ranker(strategy=kind, params=parsed)
    if kind == "model":
        raise Unsupported.feature("model rankers (they call a remote reranking service)")
    raise invalid(f"unsupported rerank function: [{kind}], supported: [decay, rrf, weighted, model]")


def decay_ranker(fields: tuple[str, ...], params: dict[str, str]) -> DecayRanker:
    if len(fields) != 1:
        raise invalid(f"decay function only supports single input, but gets [{len(fields)}] input")
    function = params.get("function", "").lower()
    if function not in DECAY_FUNCTIONS:
        raise invalid(f"invalid decay function: {function}, only support [gauss, linear, exp]")

    def number(key: str, default: float | None = None) -> float:
        raw = params.get(key)
        if raw is None:
            if default is None:
                raise invalid(f"decay function lost param: {key}")
            return default
        try:
            return float(_json(raw))
        except (TypeError, ValueError):
            raise invalid(f"param {key}: {raw} is not a number") from None

    ranker = DecayRanker(
        function=function,
        field=fields[0],
        origin=number("origin"),
        scale=number("scale"),
        offset=number("offset", 0.0),
        decay=number("decay", 0.5),
    )
    if ranker.scale <= 0:
        raise invalid(f"decay function param: scale must > 0, but got {ranker.scale}")
    if ranker.offset < 0:
        raise invalid(f"decay function param: offset must >= 0, but got {ranker.offset}")
    if not 0 < ranker.decay < 1:
        raise invalid(f"decay function param: decay must 0 < decay < 1, but got {ranker.decay}")
    return ranker


def _json(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw
