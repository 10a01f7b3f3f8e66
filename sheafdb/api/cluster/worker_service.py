"""A query worker's internal read service: Contract C's ``/sheafdb.cluster.Worker/Read``.

One generic unary gRPC method whose request and answer are pickled ``ReadCall`` /
``ReadAnswer`` (engine/distribution/read_calls.py). A pickle can run code when loaded, so the
bytes are unpickled only after the call proved it comes from a holder of the catalog: its
``sheafdb-cluster-secret`` metadata must equal the secret in the catalog's meta (compared in
constant time); anything else is refused with PERMISSION_DENIED before a byte is read.

With authentication on, the client's own ``authorization`` (relayed by the proxy) is checked
as the embedded server checks it (api/auth.AuthInterceptor: UNAUTHENTICATED when missing or
wrong), then its privilege for the collection (Search / Query, PERMISSION_DENIED). The
privilege is checked after the read ran and before its answer leaves: the read's one
PostgreSQL statement also read the credentials' change counter (storage/pg_log.py), so
users and grants are followed without a statement of their own (the password is checked
again when they changed).

Threads: gRPC's handler pool (``max_workers``); the handler is stateless apart from the view
and the access control, both thread-safe.
"""

from __future__ import annotations

import base64
import hmac
import pickle
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc

from sheafdb.api.auth import AuthInterceptor, current_user
from sheafdb.engine.access import AccessControl
from sheafdb.engine.distribution.read_calls import READ_METHOD, SECRET_METADATA_KEY, ReadAnswer, ReadCall
from sheafdb.errors import CredentialInvalid, PermissionDenied

SERVICE_NAME, METHOD_NAME = READ_METHOD.strip("/").split("/")
# The privilege each read call needs, as the embedded server's Search / HybridSearch / Query.
OPERATIONS = {"search": "Search", "hybrid_search": "HybridSearch", "query": "Query"}
NOT_A_CLUSTER_CALLER = "not a caller of this cluster"


class WorkerService:
    """The gRPC server of one query worker, on ``host:port`` (port 0: any free one)."""

    def __init__(
        self,
        answer: Callable[[ReadCall], ReadAnswer],
        secret: Callable[[], int | None],
        *,
        access: AccessControl | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_workers: int = 16,
        max_message_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self._answer = answer
        self._secret = secret
        # The secret as first seen: a writer makes it once and it never changes, so the
        # catalog is asked again only until it exists (not once per call).
        self._known_secret: str | None = None
        self._access = access
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        handler = grpc.method_handlers_generic_handler(
            SERVICE_NAME, {METHOD_NAME: grpc.unary_unary_rpc_method_handler(self._read)}
        )
        interceptors = [_FollowingAuth(access)] if access is not None and access.enabled else []
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sheafdb-worker-grpc"),
            handlers=[handler],
            options=options,
            interceptors=interceptors,
        )
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {host}:{port}")
        self.address = f"{host}:{self.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self, grace_s: float = 0.5) -> None:
        self._server.stop(grace_s).wait()

    def _read(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        if not self._from_cluster(context):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, NOT_A_CLUSTER_CALLER)
        call = pickle.loads(request)  # noqa: S301 - the caller proved it holds the catalog
        if not isinstance(call, ReadCall):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"not a read call: {type(call).__name__}")
        if self._access is not None:
            self._access.saw_store_version(None)  # only this call's own look counts
        try:
            # The read's one statement also reads the credentials' change counter: the
            # privilege is checked after it, against users and grants current when the call
            # came in, and nothing of the answer leaves before the check.
            answer = self._answer(call)
        finally:
            self._authorize(call, context)
        return pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)

    def _from_cluster(self, context: grpc.ServicerContext) -> bool:
        secret = self._known_secret
        if secret is None:
            made = self._secret()
            if made is None:
                return False
            secret = self._known_secret = str(made)
        sent = _metadata(context, SECRET_METADATA_KEY)
        return sent is not None and hmac.compare_digest(sent, secret)

    def _authorize(self, call: ReadCall, context: grpc.ServicerContext) -> None:
        """The user the interceptor authenticated, checked for the call's privilege."""
        access = self._access
        if access is None or not access.enabled:
            return
        user = current_user()
        if user is None:  # the interceptor let nothing through unauthenticated; never here
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing authorization in header")
            return
        if access.follow_store():
            # The store changed since the interceptor's cached check: the password again.
            token = _metadata(context, "authorization") or ""
            try:
                access.authenticate_token(base64.b64decode(token).decode())
            except (CredentialInvalid, ValueError) as err:
                message = err.message if isinstance(err, CredentialInvalid) else "invalid token format"
                context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        try:
            access.authorize(user, OPERATIONS.get(call.method, "Search"), call.db, call.request.collection)
        except PermissionDenied as err:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, err.message)


def _metadata(context: grpc.ServicerContext, key: str) -> str | None:
    found: Any = None
    for name, value in context.invocation_metadata() or ():
        if name == key:
            found = value
    return None if found is None else str(found)


class _FollowingAuth(grpc.ServerInterceptor):
    """AuthInterceptor on the users as last followed; the handler then follows the writer's
    changes to users, roles and grants (the store's change counter, read in the read's own
    statement) and checks the password again if they changed: a changed password or a
    revoked privilege is refused from the next call on."""

    def __init__(self, access: AccessControl) -> None:
        self._access = access
        self._inner = AuthInterceptor(access)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        return self._inner.intercept_service(continuation, handler_call_details)
