"""What every handler needs from a call: the engine and the database the client is using."""

from __future__ import annotations

import grpc

from sheafdb.engine.access import AccessControl
from sheafdb.engine.engine import Engine
from sheafdb.engine.write.write_ids import WriteTag

DEFAULT_DATABASE = "default"
# The metadata a cluster proxy tags a relayed insert or upsert with (engine/write/write_ids.py):
# the client call's id, and "1" on every try after the first.
WRITE_ID_KEY = "sheafdb-write-id"
WRITE_RETRY_KEY = "sheafdb-write-retry"


def database_of(context: grpc.ServicerContext, request_db: str = "") -> str:
    """pymilvus leaves ``db_name`` empty and sends the database as ``dbname`` metadata;
    an empty value means ``default`` (Milvus's database interceptor does the same)."""
    if request_db:
        return request_db
    for key, value in context.invocation_metadata() or ():
        if key == "dbname" and value:
            return str(value)
    return DEFAULT_DATABASE


def write_tag_of(context: grpc.ServicerContext) -> WriteTag | None:
    """The proxy's tag of a relayed write; None for a client's own call."""
    metadata = dict(context.invocation_metadata() or ())
    write_id = metadata.get(WRITE_ID_KEY)
    if not write_id:
        return None
    return WriteTag(str(write_id), metadata.get(WRITE_RETRY_KEY) == "1")


class RpcBase:
    """Shared state of the handler mixins. The engine and the access control are thread-safe;
    handlers hold no locks. ``access`` is None when the server keeps no credential store."""

    def __init__(self, engine: Engine, *, access: AccessControl | None = None) -> None:
        self.engine = engine
        self.access = access
