"""BatchDescribeCollection: DescribeCollection for several names, each with its own status."""

from __future__ import annotations

import grpc
from pymilvus.grpc_gen import milvus_pb2

from sheafdb.api.grpc.context import RpcBase
from sheafdb.api.status import success


class BatchRpcs(RpcBase):
    def BatchDescribeCollection(
        self, request: milvus_pb2.BatchDescribeCollectionRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.BatchDescribeCollectionResponse:
        # Each answer is DescribeCollection's own (a guarded handler of the same servicer), so a
        # missing collection fails its entry only.
        describe = self.DescribeCollection  # type: ignore[attr-defined]
        responses = [
            describe(
                milvus_pb2.DescribeCollectionRequest(db_name=request.db_name, collection_name=name), context
            )
            for name in request.collection_name
        ]
        return milvus_pb2.BatchDescribeCollectionResponse(status=success(), responses=responses)
