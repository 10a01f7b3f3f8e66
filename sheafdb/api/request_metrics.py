"""The gRPC interceptor that counts and times every call for ``/metrics`` (metrics.py).

It sits outside the authentication interceptor, so refused calls are counted too (as
``fail``). A call fails when its handler raises (an abort) or its reply carries a failed
``common.Status``. The wrapper of each inner handler is built once and kept, keyed by that
handler itself (the authentication interceptor hands a different one per user).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import grpc

from sheafdb.api.metrics import reply_failed

# Wrappers kept; past it, start over (as the authentication interceptor does).
MAX_WRAPPED_HANDLERS = 4096


class CallSink(Protocol):
    """Where the interceptor reports each call: the server's metrics, or a query worker's
    tally of the calls it served (worker_reports.py)."""

    def grpc_call(
        self, function: str, db: str, collection: str, *, failed: bool, started_at: float
    ) -> None: ...


class MetricsInterceptor(grpc.ServerInterceptor):
    def __init__(self, metrics: CallSink) -> None:
        self._metrics = metrics
        # inner handler -> its wrapper; no lock: a race only builds a wrapper twice.
        self._wrapped: dict[grpc.RpcMethodHandler, grpc.RpcMethodHandler] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        wrapped = self._wrapped.get(handler)
        if wrapped is None:
            wrapped = self._wrap(handler, handler_call_details.method.rsplit("/", 1)[-1])
            # An authentication failure's handler is new at every call: not kept.
            if handler.request_deserializer is not None:
                if len(self._wrapped) >= MAX_WRAPPED_HANDLERS:
                    self._wrapped.clear()
                self._wrapped[handler] = wrapped
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler, function: str) -> grpc.RpcMethodHandler:
        behaviour = handler.unary_unary
        metrics = self._metrics

        def run(request: Any, context: grpc.ServicerContext) -> Any:
            started_at = time.monotonic()
            db = str(getattr(request, "db_name", "") or "default")
            collection = str(getattr(request, "collection_name", "") or "")
            failed = True
            try:
                response = behaviour(request, context)
                failed = reply_failed(response)
                return response
            finally:
                metrics.grpc_call(function, db, collection, failed=failed, started_at=started_at)

        return grpc.unary_unary_rpc_method_handler(
            run,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
