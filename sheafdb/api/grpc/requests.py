"""Search / query requests on the wire -> the engine's request types.

pymilvus sends search settings as string key/values (``str()`` of Python values, so booleans
are ``"True"``/``"False"``; dicts as JSON), query vectors as one serialized
``PlaceholderGroup`` and filter parameters as ``TemplateValue`` maps.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from sheafdb import strict_json
from sheafdb.api.function_rankers import function_ranker
from sheafdb.api.grpc.field_codec import sparse_rows_to_arrow
from sheafdb.engine.models import (
    DecayRanker,
    EmbeddingListQueries,
    HybridSearchRequest,
    QueryRequest,
    QueryVectors,
    Ranker,
    SearchRequest,
    SparseQueries,
    TextQueries,
)
from sheafdb.errors import ParameterInvalid, Unsupported, invalid

MAX_TOPK = 16384
# A search by primary keys carries no vectors: the engine reads them from the rows.
_NO_VECTORS = np.empty((0, 0), dtype=np.float32)

_DENSE_QUERY_DTYPE: dict[int, type[np.generic]] = {
    common_pb2.PlaceholderType.FloatVector: np.float32,
    common_pb2.PlaceholderType.Float16Vector: np.float16,
    # bf16 has no numpy type: the raw 16-bit patterns, as the engine expects.
    common_pb2.PlaceholderType.BFloat16Vector: np.uint16,
    common_pb2.PlaceholderType.Int8Vector: np.int8,
    common_pb2.PlaceholderType.BinaryVector: np.uint8,
}


# Looked up once: attribute access on a generated enum wrapper is a slow Python __getattr__.
_SPARSE_PLACEHOLDER = common_pb2.PlaceholderType.SparseFloatVector
_TEXT_PLACEHOLDER = common_pb2.PlaceholderType.VarChar
_EMB_LIST_FLOAT_PLACEHOLDER = common_pb2.PlaceholderType.EmbListFloatVector


def key_values(pairs: Iterable[common_pb2.KeyValuePair]) -> dict[str, str]:
    return {kv.key: kv.value for kv in pairs}


def parse_bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("true", "1")


# The spellings Go's strconv.ParseBool (Milvus's parser for these flags) takes.
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_ignore_growing(params: Mapping[str, str]) -> bool:
    raw = params.get("ignore_growing")
    if raw is None or raw in _GO_FALSE:
        return False
    if raw in _GO_TRUE:
        return True
    raise invalid("parse ignore growing field failed")


def parse_int(params: Mapping[str, str], key: str, default: int) -> int:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid(f"{key} [{raw}] is invalid, it should be an integer") from None


def decode_placeholders(blob: bytes, nq: int) -> QueryVectors:
    """The query vectors of a search: one ``numpy.frombuffer`` over the joined rows."""
    try:
        group = common_pb2.PlaceholderGroup.FromString(blob)
    except DecodeError:
        raise invalid("the placeholder group of the query vectors could not be decoded") from None
    if len(group.placeholders) != 1:
        raise invalid("a search takes exactly one placeholder of query vectors")
    holder = group.placeholders[0]
    rows = list(holder.values)
    if nq and len(rows) != nq:
        raise invalid(f"nq [{nq}] does not match the number of query vectors [{len(rows)}]")
    if not rows:
        raise invalid("no query vectors in the search request")
    kind = holder.type
    if kind == _EMB_LIST_FLOAT_PLACEHOLDER:
        if any(len(row) == 0 or len(row) % 4 for row in rows):
            raise invalid("an embedding list query is not a whole number of float32 values")
        return EmbeddingListQueries(tuple(np.frombuffer(row, dtype=np.float32) for row in rows))
    if kind == _TEXT_PLACEHOLDER:
        # Bytes that are not UTF-8 read as U+FFFD, as Go's strings do (never a decode error).
        return TextQueries(tuple(row.decode(errors="replace") for row in rows))
    if kind == _SPARSE_PLACEHOLDER:
        array = sparse_rows_to_arrow(rows)
        entries = array.values
        return SparseQueries(
            offsets=array.offsets.to_numpy().astype(np.int64),
            indices=entries.field("index").to_numpy(zero_copy_only=False),
            values=entries.field("value").to_numpy(zero_copy_only=False),
        )
    dtype = _DENSE_QUERY_DTYPE.get(kind)
    if dtype is None:
        raise Unsupported.feature(f"placeholder type {kind}")
    width = len(rows[0])
    if width == 0 or (len(rows) > 1 and any(len(r) != width for r in rows)):
        raise invalid("the query vectors do not all have the same dimension")
    itemsize = np.dtype(dtype).itemsize
    if width % itemsize:
        name = common_pb2.PlaceholderType.Name(kind)
        raise invalid(f"the byte length {width} of a {name} query vector is not a multiple of {itemsize}")
    flat = np.frombuffer(rows[0] if len(rows) == 1 else b"".join(rows), dtype=dtype)
    return flat.reshape(len(rows), -1)


def template_values(values: Mapping[str, schema_pb2.TemplateValue]) -> dict[str, Any]:
    if not values:
        return {}  # the common case, without the comprehension's setup
    return {name: _template_value(v) for name, v in values.items()}


def _template_value(value: schema_pb2.TemplateValue) -> Any:
    which = value.WhichOneof("val")
    if which is None:
        return None
    if which == "array_val":
        return _template_array(value.array_val)
    return getattr(value, which)


def _template_array(array: schema_pb2.TemplateArrayValue) -> list[Any]:
    which = array.WhichOneof("data")
    if which is None:
        return []
    if which == "array_data":
        return [_template_array(a) for a in array.array_data.data]
    if which == "json_data":
        try:
            return [strict_json.loads_bounded(blob) for blob in array.json_data.data]
        except strict_json.JsonRefused as err:
            raise invalid(f"invalid JSON in the filter's template values: {err}") from None
    return list(getattr(array, which).data)


def _search_params_json(params: Mapping[str, str]) -> dict[str, Any]:
    raw = params.get("params", "")
    if not raw:
        return {}
    # A fresh top-level dict per request over the cached parse: clients repeat the same text.
    return dict(_parsed_search_params(raw))


@functools.lru_cache(maxsize=256)
def _parsed_search_params(raw: str) -> dict[str, Any]:
    """One search params text parsed (cached; callers copy it). Errors are not cached."""
    try:
        decoded = strict_json.loads_bounded(raw)
    except strict_json.JsonRefused:
        raise invalid(f"search params [{_excerpt(raw)}] is not valid JSON") from None
    if not isinstance(decoded, dict):
        raise invalid(f"search params [{raw}] should be a JSON object")
    return decoded


def _function_ranker(score: schema_pb2.FunctionScore) -> DecayRanker | Ranker:
    first = score.functions[0] if len(score.functions) else schema_pb2.FunctionSchema()
    params = {kv.key: kv.value for kv in first.params}
    return function_ranker(len(score.functions), first.name, first.type, first.input_field_names, params)


def _excerpt(text: str, limit: int = 200) -> str:
    """A hostile request's text shortened for an error message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _check_result_window(offset: int, limit: int) -> None:
    """Milvus's validateMaxQueryResultWindow for a query that names its limit."""
    problem = None
    if offset < 0:
        problem = f"offset [{offset}] is invalid, should be gte than 0"
    elif limit <= 0:
        problem = f"limit [{limit}] is invalid, should be greater than 0"
    elif offset + limit > MAX_TOPK:
        problem = f"(offset+limit) should be in range [1, {MAX_TOPK}], but got {offset + limit}"
    if problem is not None:
        raise invalid(f"invalid max query result window, {problem}")


def _check_topk(topk: int) -> int:
    if not 1 <= topk <= MAX_TOPK:
        raise ParameterInvalid(
            f"topk [{topk}] is invalid, it should be in range [1, {MAX_TOPK}], but got {topk}"
        )
    return topk


def search_request(req: milvus_pb2.SearchRequest, params: Mapping[str, str] | None = None) -> SearchRequest:
    """The engine's request; ``params``: ``req.search_params`` as a dict, when the caller has it."""
    by_keys = req.HasField("ids") and not req.placeholder_group
    if len(req.function_chains):
        raise Unsupported.feature("search function chains")
    decay = None
    if req.HasField("function_score"):
        found = _function_ranker(req.function_score)
        if not isinstance(found, DecayRanker):
            raise invalid("a search (not hybrid) takes only a decay function ranker")
        decay = found
    if params is None:
        params = key_values(req.search_params)
    if "topk" not in params:
        raise ParameterInvalid("topk not found in search_params: missing parameter")
    topk = _check_topk(parse_int(params, "topk", 0))
    offset = parse_int(params, "offset", 0)
    if offset < 0 or topk + offset > MAX_TOPK:
        raise ParameterInvalid(
            f"topk+offset [{topk + offset}] is invalid, it should be in range [1, {MAX_TOPK}], "
            f"but got {topk + offset}"
        )
    group_by = params.get("group_by_field") or None
    return SearchRequest(
        collection=req.collection_name,
        vectors=_NO_VECTORS if by_keys else decode_placeholders(req.placeholder_group, req.nq),
        limit=topk,
        anns_field=params.get("anns_field") or None,
        metric_type=params.get("metric_type") or None,
        offset=offset,
        filter=req.dsl,
        filter_params=template_values(req.expr_template_values),
        output_fields=tuple(req.output_fields),
        partition_names=tuple(req.partition_names),
        params=_search_params_json(params),
        group_by_field=group_by,
        group_size=parse_int(params, "group_size", 1),
        strict_group_size=parse_bool(params.get("strict_group_size")),
        round_decimal=parse_int(params, "round_decimal", -1),
        ignore_growing=parse_ignore_growing(params),
        decay=decay,
        ids=_primary_keys(req.ids) if by_keys else None,
    )


def _primary_keys(ids: schema_pb2.IDs) -> list[int] | list[str]:
    if ids.HasField("str_id"):
        return list(ids.str_id.data)
    return list(ids.int_id.data)


def hybrid_search_request(req: milvus_pb2.HybridSearchRequest) -> HybridSearchRequest:
    if len(req.function_chains):
        raise Unsupported.feature("hybrid search function chains")
    params = key_values(req.rank_params)
    strategy = params.get("strategy", "rrf") or "rrf"
    ranker_params = _search_params_json(params)
    decay = None
    if req.HasField("function_score"):
        found = _function_ranker(req.function_score)
        if isinstance(found, DecayRanker):
            decay = found
        else:
            strategy, ranker_params = found.strategy, dict(found.params)
    limit = _check_topk(parse_int(params, "limit", 0))
    requests = tuple(search_request(sub) for sub in req.requests)
    if any(sub.ids is not None for sub in requests):
        raise invalid("hybrid search does not support search by primary keys")
    return HybridSearchRequest(
        collection=req.collection_name,
        requests=requests,
        ranker=Ranker(strategy=strategy.lower(), params=ranker_params),
        limit=limit,
        offset=parse_int(params, "offset", 0),
        output_fields=tuple(req.output_fields),
        partition_names=tuple(req.partition_names),
        round_decimal=parse_int(params, "round_decimal", -1),
        group_by_field=params.get("group_by_field") or None,
        group_size=parse_int(params, "group_size", 1),
        decay=decay,
    )


def query_request(req: milvus_pb2.QueryRequest) -> QueryRequest:
    params = key_values(req.query_params)
    limit = parse_int(params, "limit", -1)
    offset = parse_int(params, "offset", 0)
    if "limit" in params:
        _check_result_window(offset, limit)
    elif offset < 0:
        raise invalid(f"offset [{offset}] is invalid, it should be non-negative")
    is_iterator = parse_bool(params.get("iterator"))
    return QueryRequest(
        collection=req.collection_name,
        filter=req.expr,
        filter_params=template_values(req.expr_template_values),
        output_fields=tuple(req.output_fields),
        partition_names=tuple(req.partition_names),
        limit=None if limit < 0 else limit,
        offset=offset,
        ignore_growing=parse_ignore_growing(params),
        order_by_primary_key=is_iterator,
        group_by_fields=tuple(n.strip() for n in params.get("group_by_fields", "").split(",") if n.strip()),
    )
