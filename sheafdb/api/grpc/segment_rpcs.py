"""Handlers for segments and index progress: what is on disk, what is loaded, what is indexed."""

from __future__ import annotations

import grpc
from pymilvus.grpc_gen import common_pb2, feder_pb2, milvus_pb2

from sheafdb.api.grpc.catalog_rpcs import index_description
from sheafdb.api.grpc.context import RpcBase, database_of
from sheafdb.api.status import success
from sheafdb.engine.models import IndexInfo
from sheafdb.errors import IndexDuplicate


class SegmentRpcs(RpcBase):
    def GetPersistentSegmentInfo(
        self, request: milvus_pb2.GetPersistentSegmentInfoRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetPersistentSegmentInfoResponse:
        segments = self.engine.maintenance.persistent_segments(
            database_of(context, request.dbName), request.collectionName
        )
        wanted = set(request.states)
        return milvus_pb2.GetPersistentSegmentInfoResponse(
            status=success(),
            infos=[
                milvus_pb2.PersistentSegmentInfo(
                    segmentID=s.segment_id,
                    collectionID=s.collection_id,
                    partitionID=s.partition_id,
                    num_rows=s.num_rows,
                    state=s.state,
                    level=s.level,
                    insert_channel=s.channel,
                )
                for s in segments
                if not wanted or s.state in wanted
            ],
        )

    def GetQuerySegmentInfo(
        self, request: milvus_pb2.GetQuerySegmentInfoRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetQuerySegmentInfoResponse:
        segments = self.engine.maintenance.loaded_segments(
            database_of(context, request.dbName), request.collectionName
        )
        return milvus_pb2.GetQuerySegmentInfoResponse(
            status=success(),
            infos=[
                milvus_pb2.QuerySegmentInfo(
                    segmentID=s.segment_id,
                    collectionID=s.collection_id,
                    partitionID=s.partition_id,
                    mem_size=s.mem_size,
                    num_rows=s.num_rows,
                    index_name=s.index_name,
                    indexID=s.index_id,
                    nodeID=s.node_ids[0],
                    nodeIds=list(s.node_ids),
                    state=common_pb2.Sealed,
                    level=s.level,
                )
                for s in segments
            ],
        )

    def ListIndexedSegment(
        self, request: feder_pb2.ListIndexedSegmentRequest, context: grpc.ServicerContext
    ) -> feder_pb2.ListIndexedSegmentResponse:
        ids = self.engine.maintenance.indexed_segments(
            database_of(context), request.collection_name, request.index_name
        )
        return feder_pb2.ListIndexedSegmentResponse(status=success(), segmentIDs=ids)

    def _one_index(
        self, context: grpc.ServicerContext, db: str, collection: str, index: str, field: str
    ) -> IndexInfo:
        infos = self.engine.describe_indexes(database_of(context, db), collection, index, field)
        if len(infos) > 1:
            raise IndexDuplicate("there are multiple indexes, please specify the index_name")
        return infos[0]

    def GetIndexState(
        self, request: milvus_pb2.GetIndexStateRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetIndexStateResponse:
        info = self._one_index(
            context, request.db_name, request.collection_name, request.index_name, request.field_name
        )
        return milvus_pb2.GetIndexStateResponse(
            status=success(), state=int(info.state), fail_reason=info.fail_reason
        )

    def GetIndexBuildProgress(
        self, request: milvus_pb2.GetIndexBuildProgressRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetIndexBuildProgressResponse:
        info = self._one_index(
            context, request.db_name, request.collection_name, request.index_name, request.field_name
        )
        return milvus_pb2.GetIndexBuildProgressResponse(
            status=success(), indexed_rows=info.indexed_rows, total_rows=info.total_rows
        )

    def GetIndexStatistics(
        self, request: milvus_pb2.GetIndexStatisticsRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetIndexStatisticsResponse:
        infos = self.engine.describe_indexes(
            database_of(context, request.db_name), request.collection_name, request.index_name
        )
        return milvus_pb2.GetIndexStatisticsResponse(
            status=success(), index_descriptions=[index_description(i) for i in infos]
        )
