"""Client keepalive pings on an idle connection (issue 14): the server allows them as Milvus's
does (one every 5 s at most, with or without calls), so an SDK that pings while idle keeps its
connection instead of getting GOAWAY ``too_many_pings`` and reconnecting.

A raw gRPC channel pings every 6 s while idle for 20 s: with gRPC's default server policy (one
ping per 5 minutes without data, two strikes) the third ping drew the GOAWAY and the channel
dropped from READY to IDLE. Here it must stay READY throughout, and the next call still answers.
"""

from __future__ import annotations

import base64
import threading
import time

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc

from tests.e2e.conftest import ROOT_TOKEN

PING_INTERVAL_MS = 6000  # above the server's 5 s minimum, as pymilvus's 10 s is
IDLE_S = 20.0  # three pings
CALLBACK_WAIT_S = 30.0  # bound on waiting for the READY callback (a hang fails, never a delay)


def test_idle_connection_with_keepalive_pings_is_kept(server_uri: str) -> None:
    channel = grpc.insecure_channel(
        server_uri.removeprefix("http://"),
        options=[
            ("grpc.keepalive_time_ms", PING_INTERVAL_MS),
            ("grpc.keepalive_timeout_ms", 5000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),  # the client itself never stops pinging
        ],
    )
    states: list[grpc.ChannelConnectivity] = []
    changed = threading.Lock()
    ready = threading.Event()

    def record(state: grpc.ChannelConnectivity) -> None:
        with changed:
            states.append(state)
        if state is grpc.ChannelConnectivity.READY:
            ready.set()

    channel.subscribe(record, try_to_connect=True)
    stub = milvus_pb2_grpc.MilvusServiceStub(channel)
    metadata = [("authorization", base64.b64encode(ROOT_TOKEN.encode()).decode())]
    try:
        first = stub.ShowCollections(milvus_pb2.ShowCollectionsRequest(), metadata=metadata)
        assert first.status.code == common_pb2.Success
        # The callbacks come on gRPC's own thread: READY may be told a little after the call.
        assert ready.wait(CALLBACK_WAIT_S)
        with changed:
            connected = len(states)
            assert states[-1] is grpc.ChannelConnectivity.READY
        time.sleep(IDLE_S)  # idle: only keepalive pings cross the connection
        with changed:
            while_idle = states[connected:]
        # A GOAWAY would have moved the channel out of READY (to IDLE, then connecting again).
        assert while_idle == [], [s.name for s in while_idle]
        again = stub.ShowCollections(milvus_pb2.ShowCollectionsRequest(), metadata=metadata)
        assert again.status.code == common_pb2.Success
    finally:
        channel.unsubscribe(record)
        channel.close()
