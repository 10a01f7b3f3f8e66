"""Handlers for Milvus 3.0's file resources: AddFileResource, RemoveFileResource,
ListFileResources (``engine/file_resources.py`` holds the rules)."""

from __future__ import annotations

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from sheafdb.api.grpc.context import RpcBase
from sheafdb.api.status import success


class FileResourceRpcs(RpcBase):
    def AddFileResource(
        self, request: milvus_pb2.AddFileResourceRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.file_resources.add(request.name, request.path)
        return success()

    def RemoveFileResource(
        self, request: milvus_pb2.RemoveFileResourceRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.remove_file_resource(request.name)
        return success()

    def ListFileResources(
        self, request: milvus_pb2.ListFileResourcesRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ListFileResourcesResponse:
        return milvus_pb2.ListFileResourcesResponse(
            status=success(),
            resources=[
                milvus_pb2.FileResourceInfo(id=r.resource_id, name=r.name, path=r.path)
                for r in self.engine.file_resources.records()
            ],
        )
