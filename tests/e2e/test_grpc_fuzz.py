"""The gRPC fuzzer (tests/e2e/grpc_fuzz.py), a short run against the session server.

The long run is a command: ``.venv/bin/python bench/fuzz_grpc.py --requests 20000``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings

from tests.e2e.conftest import ROOT_TOKEN
from tests.e2e.grpc_fuzz import FuzzTarget, create_target, requests

SHORT_RUN = 200


@pytest.fixture(scope="module")
def target(server_uri: str) -> Iterator[FuzzTarget]:
    create_target(server_uri, ROOT_TOKEN)
    fuzz = FuzzTarget(server_uri.removeprefix("http://"), ROOT_TOKEN)
    yield fuzz
    fuzz.close()


@settings(
    max_examples=SHORT_RUN,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(request=requests())
def test_fuzzed_requests_get_milvus_answers(target: FuzzTarget, request: tuple[str, Message]) -> None:
    target.send(*request)
