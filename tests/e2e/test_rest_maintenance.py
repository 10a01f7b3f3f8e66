"""REST v2 compaction and resource group routes against the real server over real HTTP (httpx),
with Milvus's paths, bodies and reply shapes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

DEFAULT_RG = "__default_resource_group"


@pytest.fixture
def http(server_uri: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": "Bearer root:Milvus"}
    with httpx.Client(base_url=server_uri + "/v2/vectordb/", headers=headers, timeout=60) as client:
        yield client


def post(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = http.post(path, json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_compact_and_get_compaction_state(http: httpx.Client) -> None:
    name = f"rest_compact_{uuid.uuid4().hex[:8]}"
    assert post(http, "collections/create", {"collectionName": name, "dimension": 2})["code"] == 0
    try:
        for batch in range(2):
            rows = [{"id": batch * 10 + i, "vector": [i, 1]} for i in range(10)]
            assert post(http, "entities/insert", {"collectionName": name, "data": rows})["code"] == 0
            assert post(http, "collections/flush", {"collectionName": name})["code"] == 0
        reply = post(http, "collections/compact", {"collectionName": name})
        assert reply["code"] == 0
        job = reply["data"]["compactionID"]
        deadline = time.monotonic() + 60
        while True:
            state = post(http, "collections/get_compaction_state", {"jobID": job})
            assert state["code"] == 0
            if state["data"]["state"] == "Completed" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert state["data"] == {
            "compactionID": job,
            "state": "Completed",
            "executingPlanNumber": 0,
            "timeoutPlanNumber": 0,
            "completedPlanNumber": 1,
        }
        missing = post(http, "collections/compact", {"collectionName": "no_such_collection"})
        assert missing["code"] == 100
        assert post(http, "collections/compact", {})["code"] == 1802
    finally:
        post(http, "collections/drop", {"collectionName": name})


def test_resource_group_routes(http: httpx.Client) -> None:
    listed = post(http, "resource_groups/list", {})
    assert listed["code"] == 0 and DEFAULT_RG in listed["data"]
    described = post(http, "resource_groups/describe", {"name": DEFAULT_RG})
    assert described["code"] == 0
    group = described["resource_group"]
    assert group["name"] == DEFAULT_RG
    assert group["capacity"] == 1_000_000
    assert group["num_available_node"] == 1
    assert group["config"]["limits"] == {"node_num": 1_000_000}
    assert len(group["nodes"]) == 1

    name = f"rg_{uuid.uuid4().hex[:8]}"
    config = {"requests": {"node_num": 0}, "limits": {"node_num": 1}}
    assert post(http, "resource_groups/create", {"name": name, "config": config})["code"] == 0
    try:
        assert name in post(http, "resource_groups/list", {})["data"]
        # requests and limits are required inside a config, as Milvus's binding says
        refused = post(
            http, "resource_groups/create", {"name": name + "x", "config": {"limits": {"node_num": 1}}}
        )
        assert refused["code"] == 1802
        bad = post(http, "resource_groups/create", {"name": "12-s"})
        assert bad["code"] == 1100
        assert (
            "the first character of a resource group name must be an underscore or letter" in bad["message"]
        )
        grow = {name: {"requests": {"node_num": 1}, "limits": {"node_num": 1}}}
        assert post(http, "resource_groups/alter", {"resource_groups": grow})["code"] == 0
        assert (
            post(http, "resource_groups/describe", {"name": name})["resource_group"]["num_available_node"]
            == 1
        )
        missing = post(http, "resource_groups/describe", {"name": "nope"})
        assert (missing["code"], missing["message"]) == (300, "resource group not found[rg=nope]")
        moved = post(
            http,
            "resource_groups/transfer_replica",
            {"sourceRgName": DEFAULT_RG, "targetRgName": name, "collectionName": "no_such", "replicaNum": 1},
        )
        assert moved["code"] == 100
    finally:
        empty = {name: {"requests": {"node_num": 0}, "limits": {"node_num": 0}}}
        assert post(http, "resource_groups/alter", {"resource_groups": empty})["code"] == 0
        assert post(http, "resource_groups/drop", {"name": name})["code"] == 0
    assert name not in post(http, "resource_groups/list", {})["data"]
    assert (
        post(http, "resource_groups/describe", {"name": DEFAULT_RG})["resource_group"]["num_available_node"]
        == 1
    )
