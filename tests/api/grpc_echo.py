"""A tiny MilvusService on pymilvus's own stubs, for auth and front tests (no engine)."""

from __future__ import annotations

from concurrent import futures

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc

from sheafdb.api.auth import current_user


class EchoServicer(milvus_pb2_grpc.MilvusServiceServicer):
    def GetVersion(self, request, context):  # noqa: N802 (gRPC method name)
        return milvus_pb2.GetVersionResponse(status=common_pb2.Status(), version=f"echo:{current_user()}")

    def LoadCollection(self, request, context):  # noqa: N802
        return common_pb2.Status(reason=f"loaded {request.collection_name}")


def start_echo_server(
    address: str, interceptors: tuple[grpc.ServerInterceptor, ...] = ()
) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=interceptors)
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(EchoServicer(), server)
    port = server.add_insecure_port(address)
    server.start()
    return server, port
