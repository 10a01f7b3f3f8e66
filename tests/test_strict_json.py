"""sheafdb/strict_json.py: Go's strictness on untrusted JSON text."""

from __future__ import annotations

import pytest

from sheafdb import strict_json


@pytest.mark.parametrize("text", ['{"a": NaN}', "[Infinity]", "[-Infinity]", "[1,", "\ud800"])
def test_non_standard_or_broken_json_is_refused(text: str) -> None:
    with pytest.raises(strict_json.JsonRefused):
        strict_json.loads(text)


def test_absurd_nesting_is_refused_without_recursion_error() -> None:
    with pytest.raises(strict_json.JsonRefused):
        strict_json.loads("[" * 100_000 + "]" * 100_000)


def test_depth_bound() -> None:
    limit = strict_json.MAX_JSON_DEPTH
    assert strict_json.loads_bounded("[" * limit + "]" * limit) is not None
    with pytest.raises(strict_json.JsonRefused, match="deeper than"):
        strict_json.loads_bounded('{"a":' * (limit + 1) + "1" + "}" * (limit + 1))
    assert not strict_json.deeper_than([[1.0] * 1000, {"k": [1, 2]}], 3)
    assert strict_json.deeper_than([[1.0], {"k": [[1]]}], 3)


def test_lone_surrogate_escapes_read_as_the_replacement_character() -> None:
    text = '{"k\\ud800": ["x\\udc00", {"pair": "\\ud83d\\ude00"}]}'
    expected = {"k\ufffd": ["x\ufffd", {"pair": "\U0001f600"}]}
    assert strict_json.loads(text) == expected
    assert strict_json.loads(text.encode()) == expected
