"""Why each MilvusService method SheafDB does not implement is left out, in one line.

``docs/unsupported-rpcs.md`` is generated from this table and the servicer (``guard.py``); a
test fails when a method answers "not supported" without a line here, or a line names a method
that is implemented. ``OUT_OF_SCOPE`` holds what SheafDB leaves out on purpose; ``NOT_YET``
what it should answer one day.
"""

from __future__ import annotations

_REPLICATION = "cross-cluster replication (CDC) streams: SheafDB is one node with one write-ahead log"
_EXTERNAL = "external collections read data SheafDB does not store (lake tables); not a goal"
_NAMESPACE = "namespaces (multi-tenancy inside a collection) are a Milvus 2.6 preview; partitions serve"
# File resources (analyzer dictionaries kept in Milvus's object store, named from analyzer
# params as stop_words_file, synonyms_file, ...) arrive with Milvus 3.0; 2.6 analyzers take
# their word lists inline, as SheafDB's do.
# Milvus 2.6's proxy does not implement these either (proto placeholders, answered UNIMPLEMENTED).
_PREWARM = "namespace prewarm tasks belong to namespaces (above); load_collection loads at once"
# Row-level security is Milvus 3.0's (its proxy and the 3.0 SDK references), not 2.6's, and
# pymilvus 3.0 has no call for it: enforcing policies in every read and write is not built.
_ROW_SECURITY = (
    "row-level security (row policies, user tags): a Milvus 3.0 feature, not 2.6's; no pymilvus call"
)

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
    "CreateNamespace": _NAMESPACE,
    "DescribeNamespace": _NAMESPACE,
    "ListNamespaces": _NAMESPACE,
    "DropNamespace": _NAMESPACE,
    "HasNamespace": _NAMESPACE,
    "GetNamespaceStats": _NAMESPACE,
    "CreateRowPolicy": _ROW_SECURITY,
    "DropRowPolicy": _ROW_SECURITY,
    "ListRowPolicies": _ROW_SECURITY,
    "AddUserTags": _ROW_SECURITY,
    "DeleteUserTags": _ROW_SECURITY,
    "GetUserTags": _ROW_SECURITY,
    "ListUsersWithTag": _ROW_SECURITY,
    "Prewarm": _PREWARM,
    "DescribePrewarmTask": _PREWARM,
    "DescribeSegmentIndexData": "federation: raw Knowhere index files for another engine; these are faiss",
}

# Methods meant to be built and not built yet (none today: every unsupported method above is
# out of scope on purpose).
NOT_YET: dict[str, str] = {}
