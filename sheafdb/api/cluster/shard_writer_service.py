"""The MilvusService of a shard writer (``serve --cluster ... --role shard-writer``): Insert,
Upsert and Delete (the one-server handlers, over the process's ShardWriter), the session
calls a client makes first (Connect, GetVersion, CheckHealth) and DescribeCollection (every
SDK describes a collection before it writes to it: pymilvus's insert reads the schema so).
Every other call answers gRPC status UNAVAILABLE "not the coordinator": the proxy sends those
to the coordinator, and a client that reached a shard writer directly learns where it is not.
"""

from __future__ import annotations

from typing import Any, cast

import grpc
from google.protobuf.message import Message
from pymilvus.grpc_gen import milvus_pb2_grpc

from sheafdb.api.grpc.catalog_rpcs import CatalogRpcs
from sheafdb.api.grpc.context import RpcBase
from sheafdb.api.grpc.data_rpcs import DataRpcs
from sheafdb.api.grpc.guard import SERVICE, Handler, complete_service
from sheafdb.engine.access import AccessControl
from sheafdb.engine.engine import Engine
from sheafdb.engine.write.shard_writer import ShardWriter

SERVED = ("Insert", "Upsert", "Delete", "DescribeCollection", "Connect", "GetVersion", "CheckHealth")
NOT_THE_COORDINATOR = "not the coordinator: a shard writer serves Insert, Upsert and Delete only"


def _not_the_coordinator(name: str) -> Handler:
    def call(self: Any, request: Message, context: grpc.ServicerContext) -> Message:
        context.abort(grpc.StatusCode.UNAVAILABLE, f"{name}: {NOT_THE_COORDINATOR}")
        raise AssertionError("abort raises")

    call.__name__ = name
    return call


def _served_only(cls: type) -> type:
    """The handlers ``complete_service`` guards for ``SERVED``; a refusal for every other RPC."""
    complete_service(cls)
    for method in SERVICE.methods:
        if method.name not in SERVED:
            setattr(cls, method.name, _not_the_coordinator(method.name))
    return cls


@_served_only
class ShardWriterServicer(RpcBase, milvus_pb2_grpc.MilvusServiceServicer):
    """The one-server handlers over a ShardWriter, which answers the Engine's DML calls
    (insert, upsert, delete, collection_schema, describe_collection) with the same signatures."""

    def __init__(self, writer: ShardWriter, *, access: AccessControl | None = None) -> None:
        super().__init__(cast(Engine, writer), access=access)

    _schema = DataRpcs._schema
    Insert = DataRpcs.Insert
    Upsert = DataRpcs.Upsert
    Delete = DataRpcs.Delete
    DescribeCollection = CatalogRpcs.DescribeCollection
    Connect = CatalogRpcs.Connect
    GetVersion = CatalogRpcs.GetVersion
    CheckHealth = CatalogRpcs.CheckHealth
