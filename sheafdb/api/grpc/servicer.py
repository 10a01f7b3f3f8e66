"""The MilvusService servicer: the handler groups on pymilvus's generated base class.

Every RPC handler is guarded (no exception escapes, see ``guard``); every RPC none of the
groups handles answers "<Rpc> is not supported by SheafDB".
"""

from __future__ import annotations

from pymilvus.grpc_gen import milvus_pb2_grpc

from sheafdb.api.grpc.access_rpcs import AccessRpcs
from sheafdb.api.grpc.batch_rpcs import BatchRpcs
from sheafdb.api.grpc.catalog_rpcs import CatalogRpcs
from sheafdb.api.grpc.data_rpcs import DataRpcs
from sheafdb.api.grpc.file_resource_rpcs import FileResourceRpcs
from sheafdb.api.grpc.guard import complete_service
from sheafdb.api.grpc.import_rpcs import ImportRpcs
from sheafdb.api.grpc.load_rpcs import LoadRpcs
from sheafdb.api.grpc.maintenance_rpcs import MaintenanceRpcs
from sheafdb.api.grpc.rbac_backup_rpcs import RbacBackupRpcs
from sheafdb.api.grpc.replica_rpcs import ReplicaRpcs
from sheafdb.api.grpc.segment_rpcs import SegmentRpcs
from sheafdb.api.grpc.snapshot_rpcs import SnapshotRpcs
from sheafdb.api.grpc.system_rpcs import SystemRpcs
from sheafdb.api.grpc.text_rpcs import TextRpcs


@complete_service
class MilvusServicer(
    RbacBackupRpcs,  # before AccessRpcs, which it extends
    AccessRpcs,
    BatchRpcs,
    CatalogRpcs,
    DataRpcs,
    ImportRpcs,
    LoadRpcs,
    MaintenanceRpcs,
    ReplicaRpcs,
    SegmentRpcs,
    SnapshotRpcs,
    SystemRpcs,
    TextRpcs,
    FileResourceRpcs,
    milvus_pb2_grpc.MilvusServiceServicer,
):
    """Holds the engine and the access control (both thread-safe); handlers run on the gRPC
    thread pool, lock-free."""
