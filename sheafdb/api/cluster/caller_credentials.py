"""The calling client's authorization, passed on to the query workers with the reads its call
makes (``CALL_METADATA``, engine/distribution/cluster_reads.py): the workers check its
privileges. A proxy wraps its served read handlers (gRPC and REST); the writer wraps every
call, since a delete by filter or a partial upsert reads through the workers too
(engine/distribution/writer_reads.py).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import grpc

from sheafdb.api.auth import token_from_http_header
from sheafdb.api.rest.envelope import Call, Endpoint
from sheafdb.engine.distribution.cluster_reads import CALL_METADATA


def grpc_credentials(handler: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
    """A gRPC handler that passes the client's ``authorization`` on to the workers."""

    def call(request: Any, context: grpc.ServicerContext) -> Any:
        passed = tuple(
            (key, str(value)) for key, value in context.invocation_metadata() or () if key == "authorization"
        )
        token = CALL_METADATA.set(passed)
        try:
            return handler(request, context)
        finally:
            CALL_METADATA.reset(token)

    return call


def rest_credentials(handler: Callable[[Call], Any]) -> Callable[[Call], Any]:
    """A REST handler that passes the caller's token on, as gRPC's ``authorization``."""

    def call(rest_call: Call) -> Any:
        header = rest_call.headers.get("authorization")
        passed: tuple[tuple[str, str], ...] = ()
        if header:
            token_text = token_from_http_header(header)
            passed = (("authorization", base64.b64encode(token_text.encode()).decode()),)
        token = CALL_METADATA.set(passed)
        try:
            return handler(rest_call)
        finally:
            CALL_METADATA.reset(token)

    return call


def endpoints_passing_credentials(endpoints: Sequence[Endpoint]) -> tuple[Endpoint, ...]:
    """REST endpoints whose handlers pass the caller's token on (``rest_credentials``)."""
    return tuple(replace(spec, handler=rest_credentials(spec.handler)) for spec in endpoints)


class PassCredentials(grpc.ServerInterceptor):
    """Every unary call's handler wrapped by ``grpc_credentials`` (the cluster writer's). Each
    method's wrapped handler is made once, on its first call, and kept (for as long as the
    server gives the same handler for it): not rebuilt on every call."""

    def __init__(self) -> None:
        # Method -> (the server's handler, its wrapped one). Replaced whole, never mutated, so
        # handler threads read it without a lock (two first calls may both build one: harmless).
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = grpc.unary_unary_rpc_method_handler(
            grpc_credentials(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped = {**self._wrapped, method: (handler, wrapped)}
        return wrapped
