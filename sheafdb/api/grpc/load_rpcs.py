"""Handlers for the collection lifecycle: load, release, load state and progress."""

from __future__ import annotations

from typing import Any

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from sheafdb.api.grpc.context import RpcBase, database_of
from sheafdb.api.status import success
from sheafdb.engine.models import LoadState
from sheafdb.errors import CollectionNotFound, DatabaseNotFound


def _load_options(
    request: milvus_pb2.LoadCollectionRequest | milvus_pb2.LoadPartitionsRequest,
) -> dict[str, Any]:
    """The load options both load RPCs carry, as the engine's keyword arguments (a replica
    number of 0 or less means one replica, as in Milvus)."""
    return {
        "load_fields": tuple(request.load_fields),
        "skip_load_dynamic_field": request.skip_load_dynamic_field,
        "replica_number": max(request.replica_number, 1),
        "refresh": request.refresh,
        "resource_groups": tuple(request.resource_groups),
    }


class LoadRpcs(RpcBase):
    def LoadCollection(
        self, request: milvus_pb2.LoadCollectionRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.load_collection(
            database_of(context, request.db_name), request.collection_name, **_load_options(request)
        )
        return success()

    def LoadPartitions(
        self, request: milvus_pb2.LoadPartitionsRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.load_partitions(
            database_of(context, request.db_name),
            request.collection_name,
            tuple(request.partition_names),
            **_load_options(request),
        )
        return success()

    def ReleaseCollection(
        self, request: milvus_pb2.ReleaseCollectionRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.release_collection(database_of(context, request.db_name), request.collection_name)
        return success()

    def ReleasePartitions(
        self, request: milvus_pb2.ReleasePartitionsRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.release_partitions(
            database_of(context, request.db_name), request.collection_name, tuple(request.partition_names)
        )
        return success()

    def GetLoadState(
        self, request: milvus_pb2.GetLoadStateRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetLoadStateResponse:
        try:
            state = self.engine.get_load_state(
                database_of(context, request.db_name), request.collection_name, tuple(request.partition_names)
            )
        except (CollectionNotFound, DatabaseNotFound):
            # Milvus answers success + NotExist here, never an error (§2.1).
            state = LoadState.NOT_EXIST
        return milvus_pb2.GetLoadStateResponse(status=success(), state=int(state))

    def GetLoadingProgress(
        self, request: milvus_pb2.GetLoadingProgressRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetLoadingProgressResponse:
        progress = self.engine.get_loading_progress(
            database_of(context, request.db_name), request.collection_name, tuple(request.partition_names)
        )
        return milvus_pb2.GetLoadingProgressResponse(
            status=success(), progress=progress.progress, refresh_progress=progress.refresh_progress
        )
