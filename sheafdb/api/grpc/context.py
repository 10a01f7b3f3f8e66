"""What every handler needs from a call: the engine and the database the client is using."""

from __future__ import annotations

import time

import grpc

from sheafdb.engine.access import AccessControl
from sheafdb.engine.engine import Engine

DEFAULT_DATABASE = "default"
_LOGICAL_BITS = 18


def database_of(context: grpc.ServicerContext, request_db: str = "") -> str:
    """pymilvus leaves ``db_name`` empty and sends the database as ``dbname`` metadata;
    an empty value means ``default`` (Milvus's database interceptor does the same)."""
    if request_db:
        return request_db
    for key, value in context.invocation_metadata() or ():
        if key == "dbname" and value:
            return str(value)
    return DEFAULT_DATABASE


def wall_clock_timestamp() -> int:
    """A hybrid timestamp (``physical_ms << 18``) for replies that only need "now"
    (AllocTimestamp, a read's session_ts); the engine's writes use its own oracle."""
    return (time.time_ns() // 1_000_000) << _LOGICAL_BITS


class RpcBase:
    """Shared state of the handler mixins. The engine and the access control are thread-safe;
    handlers hold no locks. ``access`` is None when the server keeps no credential store."""

    def __init__(self, engine: Engine, *, access: AccessControl | None = None) -> None:
        self.engine = engine
        self.access = access
