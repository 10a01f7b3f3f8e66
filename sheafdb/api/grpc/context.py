"""What every handler needs from a call: the engine and the database the client is using."""

from __future__ import annotations

import grpc

from sheafdb.engine.access import AccessControl
from sheafdb.engine.engine import Engine

DEFAULT_DATABASE = "default"


def database_of(context: grpc.ServicerContext, request_db: str = "") -> str:
    """pymilvus leaves ``db_name`` empty and sends the database as ``dbname`` metadata;
    an empty value means ``default`` (Milvus's database interceptor does the same)."""
    if request_db:
        return request_db
    for key, value in context.invocation_metadata() or ():
        if key == "dbname" and value:
            return str(value)
    return DEFAULT_DATABASE


class RpcBase:
    """Shared state of the handler mixins. The engine and the access control are thread-safe;
    handlers hold no locks. ``access`` is None when the server keeps no credential store."""

    def __init__(self, engine: Engine, *, access: AccessControl | None = None) -> None:
        self.engine = engine
        self.access = access
