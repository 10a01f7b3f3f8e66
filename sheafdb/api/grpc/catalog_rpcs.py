"""Handlers for the session and the catalog: connect, databases, collections, partitions,
aliases and indexes. Translation only; the engine decides."""

from __future__ import annotations

import random
from collections.abc import Mapping

import grpc
from google.protobuf.message import DecodeError
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from sheafdb.api.auth import current_user
from sheafdb.api.grpc.context import RpcBase, database_of
from sheafdb.api.grpc.requests import key_values
from sheafdb.api.grpc.schema_codec import field_from_proto, schema_from_proto, schema_to_proto
from sheafdb.api.grpc.struct_schema_codec import struct_from_proto
from sheafdb.api.status import success
from sheafdb.engine.models import ConsistencyLevel, IndexInfo
from sheafdb.errors import LEGACY_UNEXPECTED, CollectionNotFound, Unsupported, invalid

# What GetVersion reports: the Milvus line whose protocol SheafDB follows.
MILVUS_VERSION = "v2.6.0"
SERVER_NAME = "SheafDB 0.1.0"


def _kv(pairs: Mapping[str, object]) -> list[common_pb2.KeyValuePair]:
    return [common_pb2.KeyValuePair(key=k, value=str(v)) for k, v in pairs.items()]


class CatalogRpcs(RpcBase):
    # -- session ----------------------------------------------------------------------------
    def Connect(
        self, request: milvus_pb2.ConnectRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ConnectResponse:
        info = common_pb2.ServerInfo(build_tags=SERVER_NAME, deploy_mode="STANDALONE")
        return milvus_pb2.ConnectResponse(
            status=success(), server_info=info, identifier=random.getrandbits(62)
        )

    def GetVersion(
        self, request: milvus_pb2.GetVersionRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetVersionResponse:
        return milvus_pb2.GetVersionResponse(status=success(), version=MILVUS_VERSION)

    def CheckHealth(
        self, request: milvus_pb2.CheckHealthRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.CheckHealthResponse:
        return milvus_pb2.CheckHealthResponse(status=success(), isHealthy=True)

    def AllocTimestamp(
        self, request: milvus_pb2.AllocTimestampRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.AllocTimestampResponse:
        return milvus_pb2.AllocTimestampResponse(status=success(), timestamp=self.engine.issue_timestamp())

    # -- databases --------------------------------------------------------------------------
    def CreateDatabase(
        self, request: milvus_pb2.CreateDatabaseRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.create_database(request.db_name, key_values(request.properties))
        return success()

    def DropDatabase(
        self, request: milvus_pb2.DropDatabaseRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.drop_database(request.db_name)
        return success()

    def ListDatabases(
        self, request: milvus_pb2.ListDatabasesRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ListDatabasesResponse:
        dbs = self.engine.list_databases()
        if self.access is not None:
            shown = set(self.access.visible_databases(current_user(), [d.name for d in dbs]))
            dbs = [d for d in dbs if d.name in shown]
        return milvus_pb2.ListDatabasesResponse(
            status=success(),
            db_names=[d.name for d in dbs],
            db_ids=[d.database_id for d in dbs],
            created_timestamp=[d.created_timestamp for d in dbs],
        )

    def DescribeDatabase(
        self, request: milvus_pb2.DescribeDatabaseRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.DescribeDatabaseResponse:
        info = self.engine.describe_database(request.db_name or database_of(context))
        return milvus_pb2.DescribeDatabaseResponse(
            status=success(),
            db_name=info.name,
            dbID=info.database_id,
            created_timestamp=info.created_timestamp,
            properties=_kv(info.properties),
        )

    def AlterDatabase(
        self, request: milvus_pb2.AlterDatabaseRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.alter_database(
            request.db_name or database_of(context),
            key_values(request.properties),
            tuple(request.delete_keys),
        )
        return success()

    # -- collections ------------------------------------------------------------------------
    def CreateCollection(
        self, request: milvus_pb2.CreateCollectionRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        try:
            proto = schema_pb2.CollectionSchema.FromString(request.schema)
        except Exception:  # noqa: BLE001 - any decode failure is the client's bad input
            raise invalid("the collection schema could not be decoded") from None
        try:
            level = ConsistencyLevel(request.consistency_level)
        except ValueError:
            raise invalid(f"unknown consistency level {request.consistency_level}") from None
        self.engine.create_collection(
            database_of(context, request.db_name),
            request.collection_name,
            schema_from_proto(proto),
            consistency_level=level,
            num_partitions=request.num_partitions,
            shards_num=request.shards_num or 1,
            properties=key_values(request.properties),
        )
        return success()

    def DescribeCollection(
        self, request: milvus_pb2.DescribeCollectionRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.DescribeCollectionResponse:
        db = database_of(context, request.db_name)
        try:
            info = self.engine.describe_collection(db, request.collection_name)
        except CollectionNotFound:
            # Milvus's special case that pymilvus's has_collection relies on (§3.2).
            status = common_pb2.Status(
                code=CollectionNotFound.code,
                error_code=LEGACY_UNEXPECTED,
                reason=f"can't find collection[database={db}][collection={request.collection_name}]",
            )
            status.extra_info["is_input_error"] = "true"
            return milvus_pb2.DescribeCollectionResponse(status=status)
        return milvus_pb2.DescribeCollectionResponse(
            status=success(),
            schema=schema_to_proto(info.name, info.schema),
            collectionID=info.collection_id,
            created_timestamp=info.created_timestamp,
            created_utc_timestamp=info.created_utc_ms,
            shards_num=info.shards_num,
            aliases=list(info.aliases),
            consistency_level=int(info.consistency_level),
            collection_name=info.name,
            properties=_kv(info.properties),
            db_name=info.db_name,
            num_partitions=info.num_partitions,
            update_timestamp=info.updated_timestamp,
        )

    def HasCollection(
        self, request: milvus_pb2.HasCollectionRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.BoolResponse:
        exists = self.engine.has_collection(database_of(context, request.db_name), request.collection_name)
        return milvus_pb2.BoolResponse(status=success(), value=exists)

    def ShowCollections(
        self, request: milvus_pb2.ShowCollectionsRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ShowCollectionsResponse:
        db = database_of(context, request.db_name)
        names = self.engine.list_collections(db)
        if self.access is not None:
            names = self.access.visible_collections(current_user(), db, names)
        return milvus_pb2.ShowCollectionsResponse(status=success(), collection_names=names)

    def DropCollection(
        self, request: milvus_pb2.DropCollectionRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.drop_collection(database_of(context, request.db_name), request.collection_name)
        return success()

    def RenameCollection(
        self, request: milvus_pb2.RenameCollectionRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.rename_collection(
            database_of(context, request.db_name), request.oldName, request.newName, request.newDBName or None
        )
        return success()

    def TruncateCollection(
        self, request: milvus_pb2.TruncateCollectionRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.TruncateCollectionResponse:
        self.engine.truncate_collection(database_of(context, request.db_name), request.collection_name)
        return milvus_pb2.TruncateCollectionResponse(status=success())

    def AlterCollection(
        self, request: milvus_pb2.AlterCollectionRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        db = database_of(context, request.db_name)
        if request.delete_keys:
            self.engine.drop_collection_properties(db, request.collection_name, tuple(request.delete_keys))
        if request.properties:
            self.engine.alter_collection_properties(
                db, request.collection_name, key_values(request.properties)
            )
        return success()

    def AlterCollectionField(
        self, request: milvus_pb2.AlterCollectionFieldRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.alter_collection_field(
            database_of(context, request.db_name),
            request.collection_name,
            request.field_name,
            key_values(request.properties),
        )
        return success()

    def AddCollectionField(
        self, request: milvus_pb2.AddCollectionFieldRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        try:
            proto = schema_pb2.FieldSchema.FromString(request.schema)
        except DecodeError:
            raise invalid("the field schema could not be decoded") from None
        field = field_from_proto(proto)
        self.engine.add_collection_field(
            database_of(context, request.db_name), request.collection_name, field
        )
        return success()

    def AddCollectionStructField(
        self, request: milvus_pb2.AddCollectionStructFieldRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        # The engine's rules answer it as Milvus 2.6 does (no struct array field is added later).
        field = struct_from_proto(request.struct_array_field_schema)
        self.engine.add_collection_field(
            database_of(context, request.db_name), request.collection_name, field
        )
        return success()

    def AlterCollectionSchema(
        self, request: milvus_pb2.AlterCollectionSchemaRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.AlterCollectionSchemaResponse:
        # pymilvus tries this first for add_collection_field and falls back to
        # AddCollectionField only on this exact text.
        raise Unsupported(
            "AlterCollectionSchema is not supported by SheafDB (alter collection schema operation is "
            "not supported for external collection): use AddCollectionField"
        )

    def GetCollectionStatistics(
        self, request: milvus_pb2.GetCollectionStatisticsRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetCollectionStatisticsResponse:
        rows = self.engine.collection_row_count(
            database_of(context, request.db_name), request.collection_name
        )
        return milvus_pb2.GetCollectionStatisticsResponse(
            status=success(), stats=_kv({"row_count": str(rows)})
        )

    # -- partitions -------------------------------------------------------------------------
    def CreatePartition(
        self, request: milvus_pb2.CreatePartitionRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.create_partition(
            database_of(context, request.db_name), request.collection_name, request.partition_name
        )
        return success()

    def DropPartition(
        self, request: milvus_pb2.DropPartitionRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.drop_partition(
            database_of(context, request.db_name), request.collection_name, request.partition_name
        )
        return success()

    def HasPartition(
        self, request: milvus_pb2.HasPartitionRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.BoolResponse:
        exists = self.engine.has_partition(
            database_of(context, request.db_name), request.collection_name, request.partition_name
        )
        return milvus_pb2.BoolResponse(status=success(), value=exists)

    def ShowPartitions(
        self, request: milvus_pb2.ShowPartitionsRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ShowPartitionsResponse:
        parts = self.engine.list_partitions(database_of(context, request.db_name), request.collection_name)
        return milvus_pb2.ShowPartitionsResponse(
            status=success(),
            partition_names=[p.name for p in parts],
            partitionIDs=[p.partition_id for p in parts],
            created_timestamps=[p.created_timestamp for p in parts],
        )

    def GetPartitionStatistics(
        self, request: milvus_pb2.GetPartitionStatisticsRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetPartitionStatisticsResponse:
        rows = self.engine.partition_row_count(
            database_of(context, request.db_name), request.collection_name, request.partition_name
        )
        return milvus_pb2.GetPartitionStatisticsResponse(
            status=success(), stats=_kv({"row_count": str(rows)})
        )

    # -- aliases ----------------------------------------------------------------------------
    def CreateAlias(
        self, request: milvus_pb2.CreateAliasRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.create_alias(
            database_of(context, request.db_name), request.collection_name, request.alias
        )
        return success()

    def DropAlias(
        self, request: milvus_pb2.DropAliasRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.drop_alias(database_of(context, request.db_name), request.alias)
        return success()

    def AlterAlias(
        self, request: milvus_pb2.AlterAliasRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.alter_alias(database_of(context, request.db_name), request.collection_name, request.alias)
        return success()

    def DescribeAlias(
        self, request: milvus_pb2.DescribeAliasRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.DescribeAliasResponse:
        info = self.engine.describe_alias(database_of(context, request.db_name), request.alias)
        return milvus_pb2.DescribeAliasResponse(
            status=success(), db_name=info.db_name, alias=info.alias, collection=info.collection_name
        )

    def ListAliases(
        self, request: milvus_pb2.ListAliasesRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ListAliasesResponse:
        db = database_of(context, request.db_name)
        aliases = self.engine.list_aliases(db, request.collection_name)
        return milvus_pb2.ListAliasesResponse(
            status=success(),
            db_name=db,
            collection_name=request.collection_name,
            aliases=[a.alias for a in aliases],
        )

    # -- indexes ----------------------------------------------------------------------------
    def CreateIndex(
        self, request: milvus_pb2.CreateIndexRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.create_index(
            database_of(context, request.db_name),
            request.collection_name,
            request.field_name,
            request.index_name,
            key_values(request.extra_params),
        )
        return success()

    def DescribeIndex(
        self, request: milvus_pb2.DescribeIndexRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.DescribeIndexResponse:
        infos = self.engine.describe_indexes(
            database_of(context, request.db_name),
            request.collection_name,
            request.index_name,
            request.field_name,
        )
        response = milvus_pb2.DescribeIndexResponse(status=success())
        response.index_descriptions.extend(index_description(i) for i in infos)
        return response

    def DropIndex(
        self, request: milvus_pb2.DropIndexRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.drop_index(
            database_of(context, request.db_name),
            request.collection_name,
            request.index_name,
            request.field_name,
        )
        return success()

    def AlterIndex(
        self, request: milvus_pb2.AlterIndexRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.alter_index(
            database_of(context, request.db_name),
            request.collection_name,
            request.index_name,
            key_values(request.extra_params),
            tuple(request.delete_keys),
        )
        return success()


def index_description(info: IndexInfo) -> milvus_pb2.IndexDescription:
    return milvus_pb2.IndexDescription(
        index_name=info.index_name,
        indexID=info.index_id,
        params=_kv(info.params),
        field_name=info.field_name,
        indexed_rows=info.indexed_rows,
        total_rows=info.total_rows,
        pending_index_rows=info.pending_index_rows,
        state=int(info.state),
        index_state_fail_reason=info.fail_reason,
    )
