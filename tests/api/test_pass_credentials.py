"""The cluster writer's PassCredentials (api/cluster/caller_credentials.py) on a real gRPC
server: every call's own ``authorization`` reaches its handler (as ``CALL_METADATA``, what the
reads it makes through the workers carry), and each method's wrapped handler is built once."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from sheafdb.api.cluster.caller_credentials import PassCredentials
from sheafdb.engine.distribution.cluster_reads import CALL_METADATA

METHOD = "/test.Echo/Passed"


def _passed(request: bytes, context: grpc.ServicerContext) -> bytes:
    return repr(CALL_METADATA.get()).encode()


@pytest.fixture
def served() -> Iterator[tuple[grpc.Channel, PassCredentials]]:
    interceptor = PassCredentials()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        handlers=[
            grpc.method_handlers_generic_handler(
                "test.Echo", {"Passed": grpc.unary_unary_rpc_method_handler(_passed)}
            )
        ],
        interceptors=[interceptor],
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel, interceptor
    channel.close()
    server.stop(0).wait()


def test_each_call_passes_its_own_authorization_through_one_wrapped_handler(
    served: tuple[grpc.Channel, PassCredentials],
) -> None:
    channel, interceptor = served
    call = channel.unary_unary(METHOD)
    assert (
        call(b"", metadata=[("authorization", "YWxpY2U6MQ==")])
        == repr((("authorization", "YWxpY2U6MQ=="),)).encode()
    )
    built = interceptor._wrapped[METHOD]
    assert (
        call(b"", metadata=[("authorization", "Ym9iOjI=")]) == repr((("authorization", "Ym9iOjI="),)).encode()
    )
    assert call(b"") == b"()"  # none sent, none passed
    assert interceptor._wrapped[METHOD] is built  # the same handler served every call
    assert CALL_METADATA.get() == ()  # the handler's thread set it, and only for the call
