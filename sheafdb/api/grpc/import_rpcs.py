"""Bulk import over gRPC (pymilvus's ``utility.do_bulk_insert`` / ``get_bulk_insert_state`` /
``list_bulk_insert_tasks``), answered as Milvus 2.6's proxy answers them from its import jobs;
and ``Dummy``, Milvus's probe of its query path."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from sheafdb.api.grpc.context import RpcBase, database_of
from sheafdb.api.status import success
from sheafdb.engine.imports.jobs import ImportJobState, ImportJobView
from sheafdb.engine.models import QueryRequest
from sheafdb.errors import SheafError

# Milvus's proxy maps its job states onto the old ImportState enum so.
_GRPC_STATE = {
    ImportJobState.Pending: common_pb2.ImportPending,
    ImportJobState.PreImporting: common_pb2.ImportPending,
    ImportJobState.Importing: common_pb2.ImportStarted,
    ImportJobState.Completed: common_pb2.ImportCompleted,
    ImportJobState.Failed: common_pb2.ImportFailed,
}


def file_groups(files: list[str]) -> list[list[str]]:
    """The old API's flat file list as Milvus groups it: NumPy files (one per field) are one
    group, every other file is a group of its own."""
    if files and all(PurePosixPath(f).suffix.lower() == ".npy" for f in files):
        return [list(files)]
    return [[f] for f in files]


def import_state(job: ImportJobView) -> milvus_pb2.GetImportStateResponse:
    infos = {
        "failed_reason": job.reason,
        "progress_percent": str(job.progress),
        "collection": job.collection_name,
        "partition": job.partition_name,
        "files": ",".join(p for f in job.files for p in f.paths),
    }
    return milvus_pb2.GetImportStateResponse(
        status=success(),
        state=_GRPC_STATE[job.state],
        row_count=job.imported_rows,
        infos=[common_pb2.KeyValuePair(key=k, value=v) for k, v in infos.items()],
        id=job.job_id,
        collection_id=job.collection_id,
        segment_ids=list(job.segment_ids),
        create_ts=int(job.create_time),
    )


class ImportRpcs(RpcBase):
    def Import(
        self, request: milvus_pb2.ImportRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ImportResponse:
        job_id = self.engine.imports.submit(
            database_of(context, request.db_name),
            request.collection_name,
            request.partition_name,
            file_groups(list(request.files)),
            {kv.key: kv.value for kv in request.options},
        )
        return milvus_pb2.ImportResponse(status=success(), tasks=[job_id])

    def GetImportState(
        self, request: milvus_pb2.GetImportStateRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetImportStateResponse:
        return import_state(self.engine.imports.get(request.task))

    def ListImportTasks(
        self, request: milvus_pb2.ListImportTasksRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ListImportTasksResponse:
        jobs = self.engine.imports.list(
            database_of(context, request.db_name), request.collection_name, int(request.limit)
        )
        return milvus_pb2.ListImportTasksResponse(status=success(), tasks=[import_state(j) for j in jobs])

    def Dummy(
        self, request: milvus_pb2.DummyRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.DummyResponse:
        """Milvus: ``{"request_type": "query", ...}`` runs that query and answers whether it
        worked; anything else answers fail."""
        failed = milvus_pb2.DummyResponse(response='{"status": "fail"}')
        try:
            asked = json.loads(request.request_type)
        except ValueError:
            return failed
        if not isinstance(asked, dict) or asked.get("request_type") != "query":
            return failed
        try:
            self.engine.query(
                database_of(context, str(asked.get("dbname") or "")),
                QueryRequest(
                    collection=str(asked.get("collection_name") or ""),
                    filter=str(asked.get("expr") or ""),
                    output_fields=tuple(asked.get("output_fields") or ()),
                    partition_names=tuple(asked.get("partition_names") or ()),
                ),
            )
        except (SheafError, TypeError, ValueError):
            return failed
        return milvus_pb2.DummyResponse(response='{"status": "success"}')
