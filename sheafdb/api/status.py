"""The one place where errors become wire statuses (gRPC ``common.Status``, REST bodies).

Everything below the API raises ``sheafdb.errors`` exceptions; the gRPC servicer and the REST
routes call ``to_status`` / ``code_and_message`` here and nowhere else decide codes.
"""

from __future__ import annotations

import logging

from pymilvus.grpc_gen import common_pb2

from sheafdb.errors import LEGACY_UNEXPECTED, SheafError

log = logging.getLogger("sheafdb.api")

UNEXPECTED_CODE = 65535


def success() -> common_pb2.Status:
    return common_pb2.Status(code=0, error_code=0)


def code_and_message(exc: BaseException) -> tuple[int, str]:
    """Milvus code and reason text for any exception (REST renders its JSON body from this)."""
    if isinstance(exc, SheafError):
        return exc.code, exc.message
    log.exception("unexpected error", exc_info=exc)
    return UNEXPECTED_CODE, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def to_status(exc: BaseException) -> common_pb2.Status:
    """The ``common.Status`` pymilvus turns back into the same ``MilvusException``."""
    code, message = code_and_message(exc)
    if not isinstance(exc, SheafError):
        return common_pb2.Status(code=code, error_code=LEGACY_UNEXPECTED, reason=message)
    status = common_pb2.Status(code=code, error_code=exc.legacy_code, reason=message, retriable=exc.retriable)
    if exc.is_input_error:
        status.extra_info["is_input_error"] = "true"
    return status
