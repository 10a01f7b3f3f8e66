"""The pure rules of the user / role handlers (the RPCs themselves run in tests/e2e/test_access.py)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sheafdb.api.grpc.access_rpcs import decode_password
from sheafdb.errors import ParameterInvalid


@given(st.text(min_size=0, max_size=64))
def test_passwords_round_trip_through_base64(password: str) -> None:
    assert decode_password(base64.b64encode(password.encode()).decode()) == password


def test_a_password_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ParameterInvalid, match="decode password fail"):
        decode_password("not base64!")
