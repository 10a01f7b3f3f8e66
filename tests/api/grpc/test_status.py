"""Errors -> Status, and pymilvus reading the Status back as the same MilvusException."""

from __future__ import annotations

import pytest
from pymilvus.client.utils import check_status
from pymilvus.exceptions import MilvusException

from sheafdb.api.status import code_and_message, to_status
from sheafdb.errors import CollectionNotFound, CollectionNotLoaded, ParameterInvalid, SheafError


@pytest.mark.parametrize(
    "error",
    [
        CollectionNotFound.named("default", "c"),
        CollectionNotLoaded(),
        ParameterInvalid("bad: invalid parameter"),
    ],
)
def test_pymilvus_raises_the_same_code_and_text(error: SheafError) -> None:
    with pytest.raises(MilvusException) as raised:
        check_status(to_status(error))
    assert raised.value.code == error.code
    assert raised.value.message == error.message
    assert raised.value.compatible_code == error.legacy_code


def test_input_errors_are_flagged() -> None:
    assert to_status(ParameterInvalid()).extra_info["is_input_error"] == "true"
    assert "is_input_error" not in to_status(CollectionNotLoaded()).extra_info


def test_any_other_exception_is_65535_with_its_text() -> None:
    status = to_status(ValueError("boom"))
    assert status.code == 65535 and status.error_code == 1 and "boom" in status.reason
    assert code_and_message(KeyError("k"))[0] == 65535
