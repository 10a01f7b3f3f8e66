"""Handlers for manual compaction and flush-all (the engine's ``maintenance`` sub-facade)."""

from __future__ import annotations

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from sheafdb.api.grpc.context import RpcBase, database_of
from sheafdb.api.status import success
from sheafdb.engine.replicas import dml_channel
from sheafdb.engine.write.compaction_jobs import CompactionJob, CompactionState


def _merge_infos(job: CompactionJob) -> list[milvus_pb2.CompactionMergeInfo]:
    task_state = (
        common_pb2.CompactionTaskStateFailed if job.failure else common_pb2.CompactionTaskStateCompleted
    )
    if job.state is CompactionState.EXECUTING:
        task_state = common_pb2.CompactionTaskStateExecuting
    return [
        milvus_pb2.CompactionMergeInfo(
            sources=list(p.sources),
            target=p.targets[0] if p.targets else 0,
            targets=list(p.targets),
            plan_id=p.plan_id,
            trigger_id=job.job_id,
            collection_id=job.collection_id,
            partition_id=p.partition_id,
            channel=dml_channel(job.collection_id, 0),
            type=common_pb2.CompactionTypeMix,
            state=task_state,
            failure_reason=job.failure,
        )
        for p in job.plans
    ]


def _job_state(job: CompactionJob) -> int:
    return int(job.state) if job.state is not CompactionState.UNDEFINED else common_pb2.Completed


class MaintenanceRpcs(RpcBase):
    def ManualCompaction(
        self, request: milvus_pb2.ManualCompactionRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ManualCompactionResponse:
        job = self.engine.maintenance.start_compaction(
            database_of(context, request.db_name), request.collection_name
        )
        return milvus_pb2.ManualCompactionResponse(
            status=success(), compactionID=job.job_id, compactionPlanCount=job.planned
        )

    def GetCompactionState(
        self, request: milvus_pb2.GetCompactionStateRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetCompactionStateResponse:
        job = self.engine.maintenance.compaction(request.compactionID)
        executing = job.state is CompactionState.EXECUTING
        failed = len(job.plans) if job.failure else 0
        return milvus_pb2.GetCompactionStateResponse(
            status=success(),
            state=_job_state(job),
            executingPlanNo=max(job.planned, 1) if executing else 0,
            completedPlanNo=0 if executing else len(job.plans) - failed,
            failedPlanNo=failed,
        )

    def GetCompactionStateWithPlans(
        self, request: milvus_pb2.GetCompactionPlansRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetCompactionPlansResponse:
        if request.collection_name:  # pymilvus's list_compaction_tasks: every job of a collection
            jobs = self.engine.maintenance.compactions_of(
                database_of(context, request.db_name), request.collection_name
            )
            executing = any(j.state is CompactionState.EXECUTING for j in jobs)
            state = common_pb2.Executing if executing else common_pb2.Completed
            infos = [info for j in jobs for info in _merge_infos(j)]
            return milvus_pb2.GetCompactionPlansResponse(status=success(), state=state, mergeInfos=infos)
        job = self.engine.maintenance.compaction(request.compactionID)
        return milvus_pb2.GetCompactionPlansResponse(
            status=success(), state=_job_state(job), mergeInfos=_merge_infos(job)
        )

    def FlushAll(
        self, request: milvus_pb2.FlushAllRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.FlushAllResponse:
        flush_ts = self.engine.maintenance.flush_all(request.db_name or None)
        return milvus_pb2.FlushAllResponse(status=success(), flush_all_ts=flush_ts)

    def GetFlushAllState(
        self, request: milvus_pb2.GetFlushAllStateRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetFlushAllStateResponse:
        flushed = self.engine.maintenance.flushed(request.flush_all_ts, request.db_name or None)
        return milvus_pb2.GetFlushAllStateResponse(status=success(), flushed=flushed)
