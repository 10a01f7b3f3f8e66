"""The REST v2 application: routes table, authentication, and the one place errors render.

``build_app(engine, access)`` returns a Starlette ASGI app serving ``POST /v2/vectordb/...``.
Every endpoint function is synchronous and runs in anyio's worker threads (the engine blocks);
a ``Request-Timeout`` header (seconds, default 30) bounds the wait: past it the client gets
HTTP 408 while the abandoned call finishes in its thread. Bodies are checked against their
declared schema (``bodies.py``) before a handler runs. A non-``SheafError`` escaping a handler
is a bug, but it still leaves as the Milvus envelope (code 65535), never as a bare HTTP 500.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sheafdb.api.auth import token_from_http_header
from sheafdb.api.metrics import ServerMetrics
from sheafdb.api.rest import (
    aliases,
    analyzers,
    collections,
    compaction,
    databases,
    entities,
    imports,
    indexes,
    memory,
    partitions,
    resource_groups,
    users,
)
from sheafdb.api.rest.bodies import check_body, without_nulls
from sheafdb.api.rest.envelope import (
    Call,
    Endpoint,
    check_body_size,
    database_of,
    failure,
    int64_as_number,
    parse_body,
    success,
)
from sheafdb.api.rest.openapi import openapi_document
from sheafdb.engine.access import AccessControl
from sheafdb.engine.engine import Engine
from sheafdb.errors import CredentialInvalid, ParameterInvalid, RestNotAuthenticated, SheafError

PREFIX = "/v2/vectordb/"
DEFAULT_TIMEOUT_SECONDS = 30.0

ENDPOINTS: tuple[Endpoint, ...] = (
    *collections.ENDPOINTS,
    *entities.ENDPOINTS,
    *partitions.ENDPOINTS,
    *indexes.ENDPOINTS,
    *aliases.ENDPOINTS,
    *databases.ENDPOINTS,
    *users.ENDPOINTS,
    *memory.ENDPOINTS,
    *analyzers.ENDPOINTS,
    *compaction.ENDPOINTS,
    *resource_groups.ENDPOINTS,
    *imports.ENDPOINTS,
)


def authenticate(access: AccessControl | None, authorization: str | None) -> str | None:
    """The caller's user name; RestNotAuthenticated when access control is on and it fails."""
    if access is None or not access.enabled:
        return None
    if not authorization:
        raise RestNotAuthenticated()
    try:
        return access.authenticate_token(token_from_http_header(authorization))
    except CredentialInvalid:
        raise RestNotAuthenticated() from None


def _timeout(request: Request) -> float:
    header = request.headers.get("request-timeout")
    if header is None:
        return DEFAULT_TIMEOUT_SECONDS
    if not header.isdigit():
        raise ParameterInvalid(f"invalid Request-Timeout header {header!r}: invalid parameter")
    return float(header)


def _make_endpoint(
    spec: Endpoint, engine: Engine, access: AccessControl | None, metrics: ServerMetrics | None
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if metrics is None:
            return await guarded(request)
        started_at = time.monotonic()
        failed = True
        body: dict[str, Any] = {}
        try:
            response = await guarded(request, body)
            failed = response.status_code != 200 or b'"code":0' not in bytes(response.body)[:16]
            return response
        finally:
            metrics.rest_call(
                spec.prefix + spec.path,
                spec.operation,
                database_of(body, request.headers, request.query_params),
                str(body.get("collectionName") or ""),
                failed=failed,
                started_at=started_at,
            )

    async def guarded(request: Request, seen: dict[str, Any] | None = None) -> Response:
        try:
            return await serve(request, seen)
        except SheafError:
            raise
        except Exception as err:  # noqa: BLE001 - every reply is the envelope, even for a bug
            return failure(err)

    async def serve(request: Request, seen: dict[str, Any] | None = None) -> Response:
        """The call itself; ``seen`` receives the parsed body (for the metrics' labels)."""
        user = authenticate(access, request.headers.get("authorization"))
        declared = request.headers.get("content-length", "")
        if declared.isdigit():
            check_body_size(int(declared))  # before reading a body too large to hold
        body = parse_body(await request.body())
        if seen is not None:
            seen.update(body)
        check_body(spec.path, body)
        body = without_nulls(spec.path, body)
        db = database_of(body, request.headers, request.query_params)
        if access is not None and user is not None and spec.operation:
            access.authorize(user, spec.operation, db, str(body.get(spec.object_key) or "*"))
        call = Call(
            engine=engine,
            access=access,
            body=body,
            db=db,
            user=user,
            headers=dict(request.headers),
            int64_as_number=int64_as_number(request.headers),
        )
        timeout = _timeout(request)
        with anyio.move_on_after(timeout) as scope:
            try:
                result = await anyio.to_thread.run_sync(
                    functools.partial(spec.handler, call), abandon_on_cancel=True
                )
            except SheafError:
                raise
            except Exception as err:  # a handler bug: log it, answer in the envelope
                return failure(err)
        if scope.cancelled_caught:
            return JSONResponse({"code": 10001, "message": "request timeout"}, status_code=408)
        return success(result, cost=spec.cost)

    return endpoint


def _metrics_endpoint(
    metrics: ServerMetrics, access: AccessControl | None
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        # Collection names are in the labels: with --auth on, a scraper logs in like a client.
        authenticate(access, request.headers.get("authorization"))
        text = await anyio.to_thread.run_sync(metrics.exposition)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    return endpoint


async def _render_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SheafError)
    return failure(exc)


def build_app(
    engine: Engine,
    access: AccessControl | None = None,
    *,
    metrics: ServerMetrics | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    endpoints: Sequence[Endpoint] = ENDPOINTS,
) -> Starlette:
    """The REST v2 ASGI app over ``engine``; ``access`` None or disabled means no auth.

    ``metrics`` counts the calls and serves ``GET /metrics`` (behind the same login);
    ``extra_routes`` (the console) are served by the same app, after the API's routes;
    ``endpoints``: the API's routes served (a cluster proxy serves its reads only)."""
    routes: list[BaseRoute] = [
        Route(spec.prefix + spec.path, _make_endpoint(spec, engine, access, metrics), methods=["POST"])
        for spec in endpoints
    ]
    document = openapi_document(ENDPOINTS)

    async def openapi(_request: Request) -> Response:
        return JSONResponse(document)

    routes.append(Route(PREFIX + "openapi.json", openapi, methods=["GET"]))
    if metrics is not None:
        routes.append(Route("/metrics", _metrics_endpoint(metrics, access), methods=["GET"]))
    routes.extend(extra_routes)
    exception_handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        SheafError: _render_error
    }
    # Milvus answers every origin (and OPTIONS with 204-style preflight replies).
    middleware = [Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])]
    return Starlette(routes=routes, exception_handlers=exception_handlers, middleware=middleware)
