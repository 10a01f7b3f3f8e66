"""Every RPC of the service answers with a Status: nothing escapes, nothing is left UNIMPLEMENTED
(but ``NotLogOwner``: a transport-level UNAVAILABLE, which a cluster proxy's relay retries).

An exception escaping a servicer becomes gRPC UNKNOWN, which pymilvus retries for minutes;
UNIMPLEMENTED on ``Connect`` makes the client refuse the server. So ``complete_service``
wraps each handler a servicer class defines so that any exception becomes the response's
``status`` (through ``api.status``), and gives every RPC it does not define a handler that
answers ``"<Rpc> is not supported by SheafDB"``. The list of those is therefore automatic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc

from sheafdb.api.grpc.unsupported_reasons import NOT_YET, OUT_OF_SCOPE
from sheafdb.api.status import to_status
from sheafdb.errors import NotLogOwner, Unsupported

SERVICE = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]
_BASE = milvus_pb2_grpc.MilvusServiceServicer

Handler = Callable[[Any, Message, grpc.ServicerContext], Message]
ServicerClass = TypeVar("ServicerClass", bound=type)


def error_response(method: MethodDescriptor, exc: BaseException) -> Message:
    """The method's response message carrying ``exc`` as its status."""
    response_class = message_factory.GetMessageClass(method.output_type)
    status = to_status(exc)
    if response_class is common_pb2.Status:
        return status
    response = response_class()
    # Most responses call it ``status``; some (AlterCollectionSchema) name it otherwise.
    for field in method.output_type.fields:
        if field.message_type is common_pb2.Status.DESCRIPTOR:
            getattr(response, field.name).CopyFrom(status)
            break
    return response


def _guarded(method: MethodDescriptor, handler: Handler) -> Handler:
    @functools.wraps(handler)
    def call(self: Any, request: Message, context: grpc.ServicerContext) -> Message:
        try:
            return handler(self, request, context)
        except NotLogOwner as exc:
            # A transport status, not a Status: the proxy's relay retries UNAVAILABLE on the
            # owner it resolves afresh (the one error that must leave this way).
            context.abort(grpc.StatusCode.UNAVAILABLE, exc.message)
            raise  # abort raises; a context whose abort did not still fails the call
        except Exception as exc:  # noqa: BLE001 - the whole point: every error becomes a Status
            return error_response(method, exc)

    return call


def _unsupported(method: MethodDescriptor) -> Handler:
    def call(self: Any, request: Message, context: grpc.ServicerContext) -> Message:
        return error_response(method, Unsupported.feature(method.name))

    call.__name__ = method.name
    return call


def is_implemented(cls: type, name: str) -> bool:
    return getattr(cls, name) is not getattr(_BASE, name)


def complete_service(cls: ServicerClass) -> ServicerClass:
    """Class decorator: guard each defined RPC handler, answer "not supported" for the rest."""
    unsupported: list[str] = []
    for method in SERVICE.methods:
        if is_implemented(cls, method.name):
            setattr(cls, method.name, _guarded(method, getattr(cls, method.name)))
        else:
            setattr(cls, method.name, _unsupported(method))
            unsupported.append(method.name)
    cls.unsupported_rpcs = tuple(unsupported)  # type: ignore[attr-defined]
    return cls


def unsupported_rpcs_markdown(names: tuple[str, ...]) -> str:
    """The text of ``docs/unsupported-rpcs.md`` (a test keeps the file equal to it): each method
    with its reason from ``unsupported_reasons``, out of scope on purpose first."""
    lines = [
        "# gRPC methods SheafDB does not support",
        "",
        "Generated from `MilvusServicer.unsupported_rpcs` (see `sheafdb/api/grpc/guard.py`) and the",
        "reasons in `sheafdb/api/grpc/unsupported_reasons.py`; `tests/api/grpc/test_unsupported_doc.py`",
        "fails when this list is stale. Regenerate with",
        "`python -m sheafdb.api.grpc.guard > docs/unsupported-rpcs.md`.",
        "",
        "Each answers a Status with code 1100 and the reason `<Rpc> is not supported by SheafDB`.",
        "",
        f"{len(names)} of {len(SERVICE.methods)} methods of `milvus.proto.milvus.MilvusService`.",
    ]
    for title, reasons in (("Out of scope on purpose", OUT_OF_SCOPE), ("Not built yet", NOT_YET)):
        listed = sorted(n for n in names if n in reasons)
        lines += ["", f"## {title} ({len(listed)})", ""]
        lines += [f"- `{name}`: {reasons[name]}" for name in listed]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from sheafdb.api.grpc.servicer import MilvusServicer

    print(unsupported_rpcs_markdown(MilvusServicer.unsupported_rpcs), end="")  # type: ignore[attr-defined]
