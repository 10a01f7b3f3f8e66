"""Authentication and privilege checks at the edge: a gRPC interceptor and the REST header rule.

gRPC (Milvus's authentication and privilege interceptors): the ``authorization`` metadata is
base64 of ``user:password``; failures abort with UNAUTHENTICATED (a raw gRPC status, not a
``common.Status``, so the SDK does not retry), privilege denials with PERMISSION_DENIED.
REST: ``Authorization: Bearer user:password`` or HTTP Basic.

The authenticated user of the running call is in ``current_user()`` (a context variable set
in the worker thread that runs the handler), for handlers that act on "my own" account.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from sheafdb.engine.access import OPERATIONS, AccessControl
from sheafdb.errors import CredentialInvalid, PermissionDenied

MISSING_AUTHORIZATION = "missing authorization in header"
INVALID_TOKEN_FORMAT = "invalid token format"
# Wrapped handlers kept (one per method, user and header database seen); past it, start over.
MAX_WRAPPED_HANDLERS = 4096

_current_user: contextvars.ContextVar[str | None] = contextvars.ContextVar("sheafdb_user", default=None)


def current_user() -> str | None:
    return _current_user.get()


def token_from_http_header(value: str) -> str:
    """The ``user:password`` (or API key) an HTTP ``Authorization`` header carries."""
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "basic" and rest:
        try:
            return base64.b64decode(rest.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
    if scheme.lower() == "bearer" and rest:
        return rest.strip()
    return value.strip()


def _abort_handler(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def abort(_request: Any, context: grpc.ServicerContext) -> None:
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates every call and checks the privilege of those listed in ``OPERATIONS``.

    With access control off it passes every call through untouched.
    """

    def __init__(self, access: AccessControl) -> None:
        self._access = access
        # (method, user, header database) -> its wrapped handler, built on first use instead of
        # per call. No lock: grpc runs interceptors on its one polling thread, and a dict get /
        # set is atomic anyway (a race would only build a wrapper twice). Bounded by clearing.
        self._wrapped: dict[tuple[str, str, str], grpc.RpcMethodHandler] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        if not self._access.enabled:
            return continuation(handler_call_details)
        encoded, header_db = _auth_metadata(handler_call_details.invocation_metadata)
        if not encoded:
            return _abort_handler(grpc.StatusCode.UNAUTHENTICATED, MISSING_AUTHORIZATION)
        try:
            token = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return _abort_handler(grpc.StatusCode.UNAUTHENTICATED, INVALID_TOKEN_FORMAT)
        try:
            user = self._access.authenticate_token(token)
        except CredentialInvalid as err:
            return _abort_handler(grpc.StatusCode.UNAUTHENTICATED, err.message)
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        key = (handler_call_details.method, user, header_db)
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            if len(self._wrapped) >= MAX_WRAPPED_HANDLERS:
                self._wrapped.clear()
            operation = handler_call_details.method.rsplit("/", 1)[-1]
            wrapped = self._wrapped[key] = self._wrap(handler, user, operation, header_db)
        return wrapped

    def _wrap(
        self, handler: grpc.RpcMethodHandler, user: str, operation: str, header_db: str
    ) -> grpc.RpcMethodHandler:
        behaviour = handler.unary_unary
        access = self._access
        checked = operation in OPERATIONS

        def run(request: Any, context: grpc.ServicerContext) -> Any:
            if checked:
                db = getattr(request, "db_name", "") or header_db or "default"
                try:
                    access.authorize(user, operation, db, _object_name(request, operation, user))
                except PermissionDenied as err:
                    context.abort(grpc.StatusCode.PERMISSION_DENIED, err.message)
            token = _current_user.set(user)
            try:
                return behaviour(request, context)
            finally:
                _current_user.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            run,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _auth_metadata(metadata: Sequence[tuple[str, str | bytes]] | None) -> tuple[str, str]:
    """The ``authorization`` and ``dbname`` values of a call (the last of each, as a dict of the
    pairs would keep), read in one pass."""
    encoded: str | bytes = ""
    header_db: str | bytes = ""
    for key, value in metadata or ():
        if key == "authorization":
            encoded = value
        elif key == "dbname":
            header_db = value
    return str(encoded) if encoded else "", str(header_db) if header_db else ""


def _object_name(request: Any, operation: str, user: str) -> str:
    if operation in ("UpdateCredential", "SelectUser"):
        # A SelectUser that names nobody lists every user: that is not "your own account".
        return str(
            getattr(request, "username", "") or getattr(getattr(request, "user", None), "name", "") or "*"
        )
    return str(getattr(request, "collection_name", "") or "*")
