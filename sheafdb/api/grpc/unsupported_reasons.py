"""Why each MilvusService method SheafDB does not implement is left out, in one line.

``docs/unsupported-rpcs.md`` is generated from this table and the servicer (``guard.py``); a
test fails when a method answers "not supported" without a line here, or a line names a method
that is implemented. ``OUT_OF_SCOPE`` holds what SheafDB leaves out on purpose; ``NOT_YET``
what it should answer one day.
"""

from __future__ import annotations

_REPLICATION = "cross-cluster replication (CDC) streams: SheafDB is one node with one write-ahead log"
_EXTERNAL = "external collections read data SheafDB does not store (lake tables); not a goal"
_SNAPSHOT = "collection snapshots on object storage: SheafDB's restore unit is the data directory"
_NAMESPACE = "namespaces (multi-tenancy inside a collection) are a Milvus 2.6 preview; partitions serve"
# File resources (analyzer dictionaries kept in Milvus's object store, named from analyzer
# params as stop_words_file, synonyms_file, ...) arrive with Milvus 3.0; 2.6 analyzers take
# their word lists inline, as SheafDB's do.
_FILE_RESOURCE = "file resources (analyzer dictionaries) arrive with Milvus 3.0; 2.6 takes word lists inline"
# Milvus 2.6's proxy does not implement these either (proto placeholders, answered UNIMPLEMENTED).
_PREWARM = "namespace prewarm tasks belong to namespaces (above); load_collection loads at once"
_ROW_SECURITY = "row policies and user tags: proto placeholders Milvus 2.6 does not implement either"

OUT_OF_SCOPE: dict[str, str] = {
    "CreateReplicateStream": _REPLICATION,
    "GetReplicateConfiguration": _REPLICATION,
    "GetReplicateInfo": _REPLICATION,
    "ReplicateMessage": _REPLICATION,
    "UpdateReplicateConfiguration": _REPLICATION,
    "DumpMessages": "dumps Milvus's streaming WAL messages for replication; SheafDB's log is its own",
    "RefreshExternalCollection": _EXTERNAL,
    "GetRefreshExternalCollectionProgress": _EXTERNAL,
    "ListRefreshExternalCollectionJobs": _EXTERNAL,
    "RestoreExternalSnapshot": _EXTERNAL,
    "BatchUpdateManifest": "storage-v2 manifests of external and snapshot data; not SheafDB's file layout",
    "CreateSnapshot": _SNAPSHOT,
    "DropSnapshot": _SNAPSHOT,
    "ListSnapshots": _SNAPSHOT,
    "DescribeSnapshot": _SNAPSHOT,
    "RestoreSnapshot": _SNAPSHOT,
    "ExportSnapshot": _SNAPSHOT,
    "GetExportSnapshotState": _SNAPSHOT,
    "GetRestoreSnapshotState": _SNAPSHOT,
    "ListRestoreSnapshotJobs": _SNAPSHOT,
    "PinSnapshotData": _SNAPSHOT,
    "UnpinSnapshotData": _SNAPSHOT,
    "CreateNamespace": _NAMESPACE,
    "DescribeNamespace": _NAMESPACE,
    "ListNamespaces": _NAMESPACE,
    "DropNamespace": _NAMESPACE,
    "HasNamespace": _NAMESPACE,
    "GetNamespaceStats": _NAMESPACE,
    "AddFileResource": _FILE_RESOURCE,
    "RemoveFileResource": _FILE_RESOURCE,
    "ListFileResources": _FILE_RESOURCE,
    "CreateRowPolicy": _ROW_SECURITY,
    "DropRowPolicy": _ROW_SECURITY,
    "ListRowPolicies": _ROW_SECURITY,
    "AddUserTags": _ROW_SECURITY,
    "DeleteUserTags": _ROW_SECURITY,
    "GetUserTags": _ROW_SECURITY,
    "ListUsersWithTag": _ROW_SECURITY,
    "Dummy": "Milvus's internal probe of its query path, not a client feature",
    "Prewarm": _PREWARM,
    "DescribePrewarmTask": _PREWARM,
    "DescribeSegmentIndexData": "federation: raw Knowhere index files for another engine; these are faiss",
}

_IMPORT = "bulk import from object-storage files: not built yet (insert in batches instead)"

NOT_YET: dict[str, str] = {
    "Import": _IMPORT,
    "GetImportState": _IMPORT,
    "ListImportTasks": _IMPORT,
    "AddCollectionStructField": "struct (array of struct) fields: not built yet",
}
