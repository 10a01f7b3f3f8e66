"""Handlers for replicas and resource groups (the engine's ``replicas`` sub-facade)."""

from __future__ import annotations

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2, rg_pb2

from sheafdb.api.grpc.context import RpcBase, database_of
from sheafdb.api.status import success
from sheafdb.engine.replicas import ReplicaInfo
from sheafdb.engine.resource_groups import ResourceGroupConfig


def config_from_proto(config: rg_pb2.ResourceGroupConfig) -> ResourceGroupConfig:
    """A config as the request gives it; requests or limits left out stay None (Milvus refuses)."""
    return ResourceGroupConfig(
        requests=config.requests.node_num if config.HasField("requests") else None,
        limits=config.limits.node_num if config.HasField("limits") else None,
        transfer_from=tuple(t.resource_group for t in config.transfer_from),
        transfer_to=tuple(t.resource_group for t in config.transfer_to),
        node_labels=tuple((kv.key, kv.value) for kv in config.node_filter.node_labels),
    )


def config_to_proto(config: ResourceGroupConfig) -> rg_pb2.ResourceGroupConfig:
    return rg_pb2.ResourceGroupConfig(
        requests=rg_pb2.ResourceGroupLimit(node_num=config.requested),
        limits=rg_pb2.ResourceGroupLimit(node_num=config.limited),
        transfer_from=[rg_pb2.ResourceGroupTransfer(resource_group=n) for n in config.transfer_from],
        transfer_to=[rg_pb2.ResourceGroupTransfer(resource_group=n) for n in config.transfer_to],
        node_filter=rg_pb2.ResourceGroupNodeFilter(
            node_labels=[common_pb2.KeyValuePair(key=k, value=v) for k, v in config.node_labels]
        ),
    )


def _replica_to_proto(replica: ReplicaInfo, with_shard_nodes: bool) -> milvus_pb2.ReplicaInfo:
    return milvus_pb2.ReplicaInfo(
        replicaID=replica.replica_id,
        collectionID=replica.collection_id,
        partition_ids=list(replica.partition_ids),
        node_ids=list(replica.node_ids),
        resource_group_name=replica.resource_group,
        shard_replicas=[
            milvus_pb2.ShardReplica(
                leaderID=s.leader_id,
                dm_channel_name=s.channel,
                node_ids=list(s.node_ids) if with_shard_nodes else [],
            )
            for s in replica.shards
        ],
    )


class ReplicaRpcs(RpcBase):
    def GetReplicas(
        self, request: milvus_pb2.GetReplicasRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetReplicasResponse:
        db = database_of(context, request.db_name)
        replicas = self.engine.replicas.get_replicas(db, request.collection_name, request.collectionID)
        return milvus_pb2.GetReplicasResponse(
            status=success(), replicas=[_replica_to_proto(r, request.with_shard_nodes) for r in replicas]
        )

    def CreateResourceGroup(
        self, request: milvus_pb2.CreateResourceGroupRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        config = config_from_proto(request.config) if request.HasField("config") else None
        self.engine.replicas.groups.create(request.resource_group, config)
        return success()

    def UpdateResourceGroups(
        self, request: milvus_pb2.UpdateResourceGroupsRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        configs = {name: config_from_proto(c) for name, c in request.resource_groups.items()}
        self.engine.replicas.groups.update(configs)
        return success()

    def DropResourceGroup(
        self, request: milvus_pb2.DropResourceGroupRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.replicas.drop_group(request.resource_group)
        return success()

    def ListResourceGroups(
        self, request: milvus_pb2.ListResourceGroupsRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ListResourceGroupsResponse:
        return milvus_pb2.ListResourceGroupsResponse(
            status=success(), resource_groups=self.engine.replicas.groups.names()
        )

    def DescribeResourceGroup(
        self, request: milvus_pb2.DescribeResourceGroupRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.DescribeResourceGroupResponse:
        info = self.engine.replicas.describe_group(request.resource_group)
        return milvus_pb2.DescribeResourceGroupResponse(
            status=success(),
            resource_group=milvus_pb2.ResourceGroup(
                name=info.name,
                capacity=info.capacity,
                num_available_node=info.num_available_node,
                num_loaded_replica=dict(info.num_loaded_replica),
                config=config_to_proto(info.config),
                nodes=[
                    common_pb2.NodeInfo(node_id=n, address=info.host_of(n)[0], hostname=info.host_of(n)[1])
                    for n in info.nodes
                ],
            ),
        )

    def TransferNode(
        self, request: milvus_pb2.TransferNodeRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.replicas.groups.transfer_node(
            request.source_resource_group, request.target_resource_group, request.num_node
        )
        return success()

    def TransferReplica(
        self, request: milvus_pb2.TransferReplicaRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.replicas.transfer_replica(
            request.source_resource_group,
            request.target_resource_group,
            database_of(context, request.db_name),
            request.collection_name,
            request.num_replica,
        )
        return success()

    def LoadBalance(
        self, request: milvus_pb2.LoadBalanceRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.replicas.balance(
            database_of(context, request.db_name),
            request.collectionName,
            request.src_nodeID,
            tuple(request.dst_nodeIDs),
            tuple(request.sealed_segmentIDs),
        )
        return success()
