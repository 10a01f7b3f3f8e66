"""``/v2/vectordb/entities/*``: writes, query, get, search, hybrid search."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pyarrow as pa

from sheafdb.api.function_rankers import function_ranker
from sheafdb.api.grpc.context import WRITE_ID_KEY, WRITE_RETRY_KEY
from sheafdb.api.rest.envelope import Call, Endpoint, Reply
from sheafdb.api.rest.rows import (
    int64_texts,
    query_vectors,
    rows_to_table,
    search_hits,
    table_to_rows,
    vector_field,
)
from sheafdb.api.rest.schema_json import consistency_level
from sheafdb.engine.models import (
    DecayRanker,
    HybridSearchRequest,
    MutationResult,
    QueryRequest,
    Ranker,
    SearchRequest,
    SearchResult,
)
from sheafdb.engine.write.write_ids import WriteTag
from sheafdb.errors import ParameterInvalid, RestPrimaryKeyInvalid, invalid
from sheafdb.schema import CollectionSchema, DataType
from sheafdb.schema_functions import FunctionType

DEFAULT_LIMIT = 100
MAX_TOPK = 16384  # the proxy's topk bound (quotaAndLimits.limits.topK)
_INT64_KEYS = range(-(2**63), 2**63)


def _schema(call: Call, name: str) -> CollectionSchema:
    return call.engine.collection_schema(call.db, name)


def _ids(call: Call, result: MutationResult) -> list[Any]:
    ids = result.ids.to_pylist()
    if not call.int64_as_number and result.ids.type == pa.int64():
        return int64_texts(ids)
    return ids


def _write_tag(call: Call) -> WriteTag | None:
    """A cluster proxy's tag of a relayed write (the same headers as gRPC's metadata)."""
    write_id = call.headers.get(WRITE_ID_KEY)
    return WriteTag(write_id, call.headers.get(WRITE_RETRY_KEY) == "1") if write_id else None


def insert(call: Call) -> dict[str, Any]:
    name = call.text("collectionName")
    table = rows_to_table(_schema(call, name), call.required("data"))
    result = call.engine.insert(
        call.db, name, table, str(call.get("partitionName", "")), tag=_write_tag(call)
    )
    return {"insertCount": result.count, "insertIds": _ids(call, result)}


def upsert(call: Call) -> dict[str, Any]:
    name = call.text("collectionName")
    table = rows_to_table(_schema(call, name), call.required("data"))
    result = call.engine.upsert(
        call.db,
        name,
        table,
        str(call.get("partitionName", "")),
        partial_update=bool(call.get("partialUpdate", False)),
        tag=_write_tag(call),
    )
    return {"upsertCount": result.count, "upsertIds": _ids(call, result)}


def delete(call: Call) -> dict[str, Any]:
    name = call.text("collectionName")
    result = call.engine.delete(
        call.db,
        name,
        call.text("filter"),
        dict(call.get("exprParams", {})),
        str(call.get("partitionName", "")),
    )
    return {"deleteCount": result.count}


def _output_fields(call: Call, default: tuple[str, ...] = ("*",)) -> tuple[str, ...]:
    return call.names("outputFields") or default


def query(call: Call) -> list[dict[str, Any]]:
    name = call.text("collectionName")
    consistency_level(call.get("consistencyLevel"))
    output = _output_fields(call)
    counting = any(f.replace(" ", "").lower() == "count(*)" for f in output)
    request = QueryRequest(
        collection=name,
        filter=str(call.get("filter", "")),
        filter_params=dict(call.get("exprParams", {})),
        output_fields=output,
        partition_names=call.names("partitionNames"),
        limit=_query_limit(call, counting),
        offset=int(call.get("offset", 0)),
    )
    result = call.engine.query(call.db, request)
    return table_to_rows(_schema(call, name), result.table, int64_as_number=call.int64_as_number)


def _query_limit(call: Call, counting: bool) -> int | None:
    """Milvus's REST passes only a positive limit on (and none with count(*))."""
    limit = int(call.get("limit", DEFAULT_LIMIT))
    return None if counting or limit <= 0 else limit


def get(call: Call) -> list[dict[str, Any]]:
    name = call.text("collectionName")
    consistency_level(call.get("consistencyLevel"))
    schema = _schema(call, name)
    request = QueryRequest(
        collection=name,
        output_fields=_output_fields(call),
        partition_names=call.names("partitionNames"),
        ids=_primary_keys(schema, call.required("id")),
    )
    result = call.engine.query(call.db, request)
    return table_to_rows(schema, result.table, int64_as_number=call.int64_as_number)


def _primary_keys(schema: CollectionSchema, value: Any) -> list[Any]:
    """``id`` as the primary key's type, as Milvus's REST casts it: an Int64 key is an integer
    (2.0 reads as 2) or a string of one (what a client that asked for int64-as-string got back
    from insert); a VarChar key is a string. Anything else (1.5, true, null, an object) is
    refused with 1806, never truncated to another key."""
    ids = value if isinstance(value, list) else [value]
    field = schema.primary_field
    if field.dtype is DataType.INT64:
        return [_int64_key(item) for item in ids]
    for item in ids:
        if not isinstance(item, str):
            raise RestPrimaryKeyInvalid(
                f"{RestPrimaryKeyInvalid.default_text}, error: id {json.dumps(item)} is not a string, "
                f"the type of primary key {field.name} is VarChar"
            )
    return ids


def _int64_key(item: Any) -> int:
    if isinstance(item, int) and not isinstance(item, bool) and item in _INT64_KEYS:
        return item
    if isinstance(item, float) and item.is_integer() and int(item) in _INT64_KEYS:
        return int(item)
    if isinstance(item, str):
        try:
            key = int(item.strip(), 10)
        except ValueError:
            key = None
        if key is not None and key in _INT64_KEYS:
            return key
    text = item if isinstance(item, str) else json.dumps(item)
    raise RestPrimaryKeyInvalid(
        f"{RestPrimaryKeyInvalid.default_text}, error: "
        f"unable to cast {json.dumps(text)} of type string to int64"
    )


def _search_request(
    schema: CollectionSchema, name: str, spec: Mapping[str, Any], call: Call, params: Mapping[str, Any]
) -> SearchRequest:
    field = vector_field(schema, spec.get("annsField"))
    limit = int(spec.get("limit", DEFAULT_LIMIT))
    if not 1 <= limit <= MAX_TOPK:  # Milvus sends it as topk: the proxy's check
        raise ParameterInvalid(
            f"topk [{limit}] is invalid, it should be in range [1, {MAX_TOPK}], but got {limit}"
        )
    search_params = dict(params)
    inner = dict(search_params.pop("params", None) or {})
    for key in ("radius", "range_filter"):
        if key in search_params:
            inner[key] = search_params.pop(key)
    return SearchRequest(
        collection=name,
        vectors=query_vectors(field, spec.get("data")),
        limit=limit,
        anns_field=field.name,
        metric_type=search_params.get("metricType") or spec.get("metricType") or None,
        offset=int(spec.get("offset", 0)),
        filter=str(spec.get("filter", "")),
        filter_params=dict(spec.get("exprParams") or {}),
        output_fields=call.names("outputFields"),
        partition_names=call.names("partitionNames"),
        params=inner,
        group_by_field=spec.get("groupingField") or None,
        group_size=int(spec.get("groupSize", 1)),
        strict_group_size=bool(spec.get("strictGroupSize", False)),
        ignore_growing=bool(search_params.get("ignoreGrowing", False)),
    )


def _function_score(call: Call) -> DecayRanker | Ranker | None:
    """``functionScore: {functions: [{name, type: "Rerank", inputFieldNames, params}], params}``."""
    score = call.get("functionScore")
    if not score:
        return None
    functions = list(score.get("functions") or [])
    first: Mapping[str, Any] = functions[0] if functions else {}
    kind = (
        FunctionType.RERANK if str(first.get("type", "Rerank")).lower() == "rerank" else FunctionType.UNKNOWN
    )
    return function_ranker(
        len(functions),
        str(first.get("name", "")),
        kind,
        first.get("inputFieldNames") or (),
        first.get("params") or {},
    )


def search(call: Call) -> Reply | list[Any]:
    name = call.text("collectionName")
    call.required("data")
    consistency_level(call.get("consistencyLevel"))
    schema = _schema(call, name)
    request = _search_request(schema, name, call.body, call, dict(call.get("searchParams", {})))
    ranker = _function_score(call)
    if ranker is not None:
        if not isinstance(ranker, DecayRanker):
            raise invalid("a search (not hybrid) takes only a decay function ranker")
        request = replace(request, decay=ranker)
    return _hits_reply(call, schema, call.engine.search(call.db, request))


def _hits_reply(call: Call, schema: CollectionSchema, result: SearchResult) -> Reply:
    """Hits of every query in one flat list; ``topks`` (top level) says how many per query."""
    hits = search_hits(schema, result, int64_as_number=call.int64_as_number)
    return Reply(hits, {"topks": [int(k) for k in result.topks]})


def hybrid_search(call: Call) -> Reply:
    name = call.text("collectionName")
    subs = call.required("search")
    consistency_level(call.get("consistencyLevel"))
    schema = _schema(call, name)
    requests = tuple(
        _search_request(
            schema, name, sub, call, {"metricType": sub.get("metricType"), "params": sub.get("params")}
        )
        for sub in subs
    )
    rerank = dict(call.get("rerank", {}))
    ranker = Ranker(strategy=str(rerank.get("strategy", "rrf")), params=dict(rerank.get("params", {})))
    function = _function_score(call)
    request = HybridSearchRequest(
        collection=name,
        requests=requests,
        ranker=function if isinstance(function, Ranker) else ranker,
        decay=function if isinstance(function, DecayRanker) else None,
        limit=int(call.get("limit", DEFAULT_LIMIT)),
        offset=int(call.get("offset", 0)),
        output_fields=call.names("outputFields"),
        partition_names=call.names("partitionNames"),
        group_by_field=call.get("groupingField") or None,
        group_size=int(call.get("groupSize", 1)),
    )
    return _hits_reply(call, schema, call.engine.hybrid_search(call.db, request))


ENDPOINTS = (
    Endpoint("entities/insert", insert, "Insert", cost=True),
    Endpoint("entities/upsert", upsert, "Upsert", cost=True),
    Endpoint("entities/delete", delete, "Delete", cost=True),
    Endpoint("entities/query", query, "Query", cost=True),
    Endpoint("entities/get", get, "Query", cost=True),
    Endpoint("entities/search", search, "Search", cost=True),
    Endpoint("entities/hybrid_search", hybrid_search, "HybridSearch", cost=True),
    Endpoint("entities/advanced_search", hybrid_search, "HybridSearch", cost=True),
)
