"""Handlers about the server itself: component state, metrics, and the link probe."""

from __future__ import annotations

import json

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from sheafdb.api.grpc.catalog_rpcs import MILVUS_VERSION
from sheafdb.api.grpc.context import RpcBase
from sheafdb.api.grpc.system_info import system_info_json
from sheafdb.api.status import success
from sheafdb.engine.resource_groups import NODE_ID
from sheafdb.errors import ParameterInvalid, ServiceUnavailable

SYSTEM_INFO = "system_info"


def _metric_type(request: str) -> str:
    try:
        parsed = json.loads(request)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or "metric_type" not in parsed:
        raise ParameterInvalid("metric_type not found in request")
    return str(parsed["metric_type"])


class SystemRpcs(RpcBase):
    def GetComponentStates(
        self, request: milvus_pb2.GetComponentStatesRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ComponentStates:
        info = milvus_pb2.ComponentInfo(nodeID=NODE_ID, role="proxy", state_code=common_pb2.Healthy)
        return milvus_pb2.ComponentStates(state=info, status=success())

    def GetMetrics(
        self, request: milvus_pb2.GetMetricsRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetMetricsResponse:
        if _metric_type(request.request).lower() != SYSTEM_INFO:
            raise ParameterInvalid("sorry, but this metric type is not implemented")
        body = system_info_json(
            self.engine.maintenance.memory(), MILVUS_VERSION, str(self.engine.config.data_dir)
        )
        return milvus_pb2.GetMetricsResponse(
            status=success(), response=body, component_name=f"proxy{NODE_ID}"
        )

    def RegisterLink(
        self, request: milvus_pb2.RegisterLinkRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.RegisterLinkResponse:
        return milvus_pb2.RegisterLinkResponse(status=success())

    def CalcDistance(
        self, request: milvus_pb2.CalcDistanceRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.CalcDistanceResults:
        # Milvus 2.3+ answers exactly this (its SDKs dropped the call); so does SheafDB.
        raise ServiceUnavailable("service unavailable: CalcDistance deprecated")
