"""Search requests on the wire -> SearchRequest: the parsed search params (cached by their text)."""

from __future__ import annotations

import numpy as np
import pytest
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from sheafdb.api.grpc.requests import search_request
from sheafdb.errors import ParameterInvalid


def _request(params_text: str) -> milvus_pb2.SearchRequest:
    query = np.arange(4, dtype=np.float32)
    group = common_pb2.PlaceholderGroup(
        placeholders=[
            common_pb2.PlaceholderValue(
                tag="$0", type=common_pb2.PlaceholderType.FloatVector, values=[query.tobytes()]
            )
        ]
    )
    return milvus_pb2.SearchRequest(
        collection_name="c",
        placeholder_group=group.SerializeToString(),
        nq=1,
        search_params=[
            common_pb2.KeyValuePair(key="topk", value="3"),
            common_pb2.KeyValuePair(key="params", value=params_text),
        ],
    )


def test_each_request_gets_its_own_params_dict() -> None:
    first = search_request(_request('{"ef": 64, "hints": "x"}'))
    assert first.params == {"ef": 64, "hints": "x"}
    first.params["ef"] = 1  # type: ignore[index] - a caller changing its copy
    second = search_request(_request('{"ef": 64, "hints": "x"}'))
    assert second.params == {"ef": 64, "hints": "x"}
    assert second.params is not first.params
    assert np.array_equal(second.vectors, np.arange(4, dtype=np.float32).reshape(1, 4))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "search params [{not json] is not valid JSON: invalid parameter"),
        ("[1, 2]", "search params [[1, 2]] should be a JSON object: invalid parameter"),
    ],
)
def test_bad_params_are_refused_every_time(text: str, reason: str) -> None:
    for _ in range(2):  # the second time too: a refusal is never cached as a result
        with pytest.raises(ParameterInvalid) as info:
            search_request(_request(text))
        assert info.value.message == reason
        assert info.value.code == 1100
