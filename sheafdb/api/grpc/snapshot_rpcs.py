"""Handlers for collection snapshots: create, describe, list, drop, pin, restore and export jobs
(the engine's ``snapshots``, ``restores`` and ``exports`` sub-facades)."""

from __future__ import annotations

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from sheafdb.api.grpc.context import RpcBase, database_of
from sheafdb.api.status import success
from sheafdb.engine.snapshot_export import ExportJob
from sheafdb.engine.snapshot_restore import RestoreJob


def _restore_info(job: RestoreJob) -> milvus_pb2.RestoreSnapshotInfo:
    return milvus_pb2.RestoreSnapshotInfo(
        job_id=job.job_id,
        snapshot_name=job.snapshot_name,
        db_name=job.db_name,
        collection_name=job.collection_name,
        state=int(job.state),
        progress=job.progress,
        reason=job.reason,
        start_time=job.start_ms,
        time_cost=job.time_cost_ms,
    )


def _export_info(job: ExportJob) -> milvus_pb2.ExportSnapshotInfo:
    return milvus_pb2.ExportSnapshotInfo(
        job_id=job.job_id,
        snapshot_name=job.snapshot_name,
        db_name=job.db_name,
        collection_name=job.collection_name,
        state=int(job.state),
        progress=job.progress,
        reason=job.reason,
        start_time=job.start_ms,
        time_cost=job.time_cost_ms,
        total_files=job.total_files,
        copied_files=job.copied_files,
        snapshot_metadata_uri=job.manifest_uri,
        total_bytes=job.total_bytes,
    )


class SnapshotRpcs(RpcBase):
    def CreateSnapshot(
        self, request: milvus_pb2.CreateSnapshotRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.snapshots.create(
            database_of(context, request.db_name),
            request.collection_name,
            request.name,
            request.description,
            request.compaction_protection_seconds,
        )
        return success()

    def DescribeSnapshot(
        self, request: milvus_pb2.DescribeSnapshotRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.DescribeSnapshotResponse:
        info = self.engine.snapshots.describe(
            database_of(context, request.db_name), request.collection_name, request.name
        )
        return milvus_pb2.DescribeSnapshotResponse(
            status=success(),
            name=info.name,
            description=info.description,
            collection_name=info.collection_name,
            partition_names=list(info.partition_names),
            create_ts=info.create_ts,
            s3_location=info.location,
        )

    def ListSnapshots(
        self, request: milvus_pb2.ListSnapshotsRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ListSnapshotsResponse:
        names = self.engine.snapshots.list(database_of(context, request.db_name), request.collection_name)
        return milvus_pb2.ListSnapshotsResponse(status=success(), snapshots=names)

    def DropSnapshot(
        self, request: milvus_pb2.DropSnapshotRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.snapshots.drop(
            database_of(context, request.db_name), request.collection_name, request.name
        )
        return success()

    def PinSnapshotData(
        self, request: milvus_pb2.PinSnapshotDataRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.PinSnapshotDataResponse:
        pin_id = self.engine.snapshots.pin(
            database_of(context, request.db_name), request.collection_name, request.name, request.ttl_seconds
        )
        return milvus_pb2.PinSnapshotDataResponse(status=success(), pin_id=pin_id)

    def UnpinSnapshotData(
        self, request: milvus_pb2.UnpinSnapshotDataRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.snapshots.unpin(request.pin_id)
        return success()

    def RestoreSnapshot(
        self, request: milvus_pb2.RestoreSnapshotRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.RestoreSnapshotResponse:
        source_db = database_of(context, request.db_name)
        snapshot = self.engine.snapshots.find(source_db, request.collection_name, request.name)
        job_id = self.engine.restores.start(
            snapshot, request.target_db_name or source_db, request.target_collection_name
        )
        return milvus_pb2.RestoreSnapshotResponse(status=success(), job_id=job_id)

    def GetRestoreSnapshotState(
        self, request: milvus_pb2.GetRestoreSnapshotStateRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetRestoreSnapshotStateResponse:
        job = self.engine.restores.job(request.job_id)
        return milvus_pb2.GetRestoreSnapshotStateResponse(status=success(), info=_restore_info(job))

    def ListRestoreSnapshotJobs(
        self, request: milvus_pb2.ListRestoreSnapshotJobsRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ListRestoreSnapshotJobsResponse:
        jobs = self.engine.restores.jobs(database_of(context, request.db_name), request.collection_name)
        return milvus_pb2.ListRestoreSnapshotJobsResponse(
            status=success(), jobs=[_restore_info(j) for j in jobs]
        )

    def ExportSnapshot(
        self, request: milvus_pb2.ExportSnapshotRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ExportSnapshotResponse:
        snapshot = self.engine.snapshots.find(
            database_of(context, request.db_name), request.collection_name, request.name
        )
        job_id, manifest_uri = self.engine.exports.start(snapshot, request.target_s3_path)
        return milvus_pb2.ExportSnapshotResponse(
            status=success(), job_id=job_id, snapshot_metadata_uri=manifest_uri
        )

    def GetExportSnapshotState(
        self, request: milvus_pb2.GetExportSnapshotStateRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetExportSnapshotStateResponse:
        job = self.engine.exports.job(request.job_id)
        return milvus_pb2.GetExportSnapshotStateResponse(status=success(), info=_export_info(job))
