"""The wire server's pure parts: grpc-timeout values and the trailers' percent-encoding."""

from __future__ import annotations

import pytest
from hpack import Decoder

from sheafdb.api.wire.call import parse_timeout
from sheafdb.api.wire.frames import trailers


def test_grpc_timeout_units() -> None:
    assert parse_timeout("10S") == 10.0
    assert parse_timeout("1500m") == 1.5
    assert parse_timeout("2M") == 120.0
    assert parse_timeout("1H") == 3600.0
    assert parse_timeout("250u") == pytest.approx(250e-6)
    assert parse_timeout("7n") == pytest.approx(7e-9)


def test_malformed_grpc_timeouts_mean_no_deadline() -> None:
    for value in ("", "S", "10", "10x", "-1S", "123456789S", "1.5S"):
        assert parse_timeout(value) is None


def test_trailers_decode_with_hpack_and_percent_encode_the_message() -> None:
    block = trailers(3, "bad 100% ünïcode\nline", (("x-extra", "v"),))
    headers = dict(Decoder().decode(block))
    assert headers["grpc-status"] == "3"
    assert headers["grpc-message"] == "bad 100%25 %C3%BCn%C3%AFcode%0Aline"
    assert headers["x-extra"] == "v"
