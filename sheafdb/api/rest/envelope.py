"""The REST v2 envelope: one request's parsed body and identity in, ``{"code", "data"}`` out.

Every endpoint is a plain synchronous function ``(Call) -> data`` (run in a worker thread,
since the engine blocks); ``Endpoint`` says which path it serves, which RBAC operation it is
and whether its reply carries ``cost``. Errors are raised, never returned: ``app.py`` renders
them in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

from sheafdb import strict_json
from sheafdb.api.status import code_and_message
from sheafdb.engine.access import AccessControl
from sheafdb.engine.engine import Engine
from sheafdb.errors import (
    NotLogOwner,
    PermissionDenied,
    RestNotAuthenticated,
    RestParameterMissing,
    RestRequestNotJson,
    invalid,
)

DEFAULT_DB = "default"


@dataclass(frozen=True)
class Call:
    """One REST call as the endpoint functions see it."""

    engine: Engine
    access: AccessControl | None
    body: Mapping[str, Any]
    db: str
    user: str | None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Accept-Type-Allow-Int64: false asks for int64 values as JSON strings (JavaScript clients).
    int64_as_number: bool = True

    def required(self, key: str) -> Any:
        value = self.body.get(key)
        if value is None or value == "" or value == []:
            raise RestParameterMissing(
                f"missing required parameters, error: Key: '{key}' Error:Field validation for '{key}' "
                "failed on the 'required' tag"
            )
        return value

    def text(self, key: str) -> str:
        """A required parameter read as text (names, filters, passwords)."""
        return str(self.required(key))

    def get(self, key: str, default: Any = None) -> Any:
        value = self.body.get(key)
        return default if value is None else value

    def names(self, key: str) -> tuple[str, ...]:
        """A list-of-names parameter (``partitionNames``, ``outputFields``): absent -> ()."""
        value = self.body.get(key) or ()
        if isinstance(value, str):
            return (value,)
        return tuple(str(v) for v in value)


@dataclass(frozen=True)
class Reply:
    """An endpoint result that needs more than ``data`` in the envelope."""

    data: Any
    extra: Mapping[str, Any] = field(default_factory=dict)


Handler = Callable[[Call], Any]


VECTORDB_PREFIX = "/v2/vectordb/"
# SheafDB's own endpoints (memory, load plans): apart from Milvus's names.
SHEAFDB_PREFIX = "/v2/sheafdb/"


@dataclass(frozen=True)
class Endpoint:
    path: str  # under ``prefix``
    handler: Handler
    # RBAC operation (a gRPC method name, see engine/access.py); "" for none.
    operation: str = ""
    # Body key naming the object the privilege applies to.
    object_key: str = "collectionName"
    # DML / DQL replies carry "cost".
    cost: bool = False
    prefix: str = VECTORDB_PREFIX


# A body may be as large as a gRPC message (Milvus's proxy.grpc.serverMaxRecvSize) and nest as
# deep as a JSON field's value inside an insert's rows, with room for the envelope around it.
MAX_BODY_BYTES = 512 * 1024 * 1024
MAX_BODY_DEPTH = strict_json.MAX_JSON_DEPTH + 8


def check_body_size(nbytes: int) -> None:
    if nbytes > MAX_BODY_BYTES:
        raise invalid(f"request body of {nbytes} bytes is larger than the limit of {MAX_BODY_BYTES} bytes")


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request. No body and ``null`` are an empty object: Go binds
    ``null`` to the zero request (Milvus's own REST test client posts ``null`` to ``list``),
    and an empty body is read the same way."""
    if not raw.strip():
        return {}
    check_body_size(len(raw))
    try:
        body = strict_json.loads(raw)
    except (strict_json.JsonRefused, UnicodeDecodeError) as err:
        raise RestRequestNotJson(f"can only accept json format request, error: {err}") from None
    if body is None:
        return {}
    if isinstance(body, (dict, list)) and strict_json.deeper_than(body, MAX_BODY_DEPTH):
        raise RestRequestNotJson(
            f"can only accept json format request, error: the body nests deeper than {MAX_BODY_DEPTH} levels"
        )
    if not isinstance(body, dict):
        raise RestRequestNotJson(
            "can only accept json format request, error: the request body must be an object"
        )
    return body


def database_of(body: Mapping[str, Any], headers: Mapping[str, str], query: Mapping[str, str]) -> str:
    """Body ``dbName``, else ``dbName`` in the query string (Milvus's REST test client sends it
    there), else the ``DB-Name`` header, else ``default`` (Milvus's wrapperPost)."""
    return str(body.get("dbName") or query.get("dbName") or headers.get("db-name") or DEFAULT_DB)


def int64_as_number(headers: Mapping[str, str]) -> bool:
    """``Accept-Type-Allow-Int64``: absent -> true (the 2.4+ server default); otherwise Go's
    ParseBool, where anything it cannot read counts as false (Milvus ignores the parse error)."""
    value = headers.get("accept-type-allow-int64", "").strip()
    return not value or value in ("1", "t", "T", "true", "TRUE", "True")


def success(result: Any, *, cost: bool) -> JSONResponse:
    content: dict[str, Any] = {"code": 0}
    if cost:
        content["cost"] = 0
    if isinstance(result, Reply):
        content["data"] = result.data
        content.update(result.extra)
    else:
        content["data"] = result
    return JSONResponse(content)


def failure(err: Exception) -> JSONResponse:
    """Business errors are HTTP 200 with the Milvus code; only auth failures change the status,
    and a write sent to a process that does not own the collection's log (HTTP 503: a cluster
    proxy's relay retries it on the owner)."""
    status = 200
    if isinstance(err, RestNotAuthenticated):
        status = 401
    elif isinstance(err, PermissionDenied):
        status = 403
    elif isinstance(err, NotLogOwner):
        status = 503
    code, message = code_and_message(err)
    return JSONResponse({"code": code, "message": message}, status_code=status)
