"""``/v2/sheafdb/memory``, ``load_plan`` and ``release`` (the bytes freed), and ``/metrics``: their
figures are the memory accountant's, and go back to the baseline after a release."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from sheafdb.api.metrics import ServerMetrics
from sheafdb.api.rest.app import build_app
from tests.api.rest.conftest import Rest

ROWS = 2000
# Only the key and the vectors: no dynamic field ("title" lives there).
PARTIAL = {"collectionName": "books", "loadFields": ["id", "vector"], "skipLoadDynamicField": True}


@pytest.fixture
def served(engine):
    """The REST app with metrics, on a collection of sealed rows that is not loaded."""
    metrics = ServerMetrics(engine)
    with TestClient(build_app(engine, metrics=metrics)) as client:
        rest = Rest(client, None)
        assert rest("collections/create", {"collectionName": "books", "dimension": 8})["code"] == 0
        rows = [{"id": i, "vector": [float(i % 7)] * 8, "title": f"t{i}"} for i in range(ROWS)]
        assert rest("entities/insert", {"collectionName": "books", "data": rows})["code"] == 0
        assert rest("collections/flush", {"collectionName": "books"})["code"] == 0
        engine.wait_for_index_builds(60)
        assert rest("collections/release", {"collectionName": "books"})["code"] == 0
        settle(engine)
        yield rest, client, metrics
    metrics.close()


def settle(engine) -> None:
    """Wait out a catch-up of the seal that was still reserving when the release came (it gives
    its reservation back as soon as it sees the release)."""
    deadline = time.monotonic() + 30
    while engine.memory_report()["reserved_bytes"] and time.monotonic() < deadline:
        time.sleep(0.01)


def sheafdb(rest: Rest, path: str, body: dict) -> dict:
    response = rest.client.post("/v2/sheafdb/" + path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def scrape(client: TestClient) -> dict[str, list]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def test_memory_matches_the_accountant_and_returns_to_baseline(served, engine, caplog) -> None:
    rest, _, _ = served
    baseline = sheafdb(rest, "memory", {})["data"]
    assert baseline["usedBytes"] == engine.memory_report()["used_bytes"]
    assert baseline["collections"] == []

    assert rest("collections/load", PARTIAL)["code"] == 0
    loaded = sheafdb(rest, "memory", {})["data"]
    report = engine.memory_report()
    assert loaded["usedBytes"] == report["used_bytes"] > baseline["usedBytes"]
    assert loaded["budgetBytes"] == report["budget_bytes"] == 256 << 20
    assert loaded["freeBytes"] == loaded["budgetBytes"] - loaded["usedBytes"] - loaded["reservedBytes"]
    (books,) = loaded["collections"]
    (accounted,) = report["collections"].values()
    assert books["bytes"] == accounted["bytes"]
    fields = {(f["fieldName"], f["kind"]): f["bytes"] for f in books["fields"]}
    assert fields[("vector", "index")] == accounted["indexes"]["vector"]
    assert fields[("vector", "field")] == accounted["fields"]["vector"]
    assert ("$meta", "field") not in fields  # a partial load holds only what it was asked for
    assert sum(p["bytes"] for p in books["partitions"]) == books["bytes"]

    with caplog.at_level("INFO", logger="sheafdb.engine"):
        released = sheafdb(rest, "release", {"collectionName": "books"})
    assert released == {"code": 0, "data": {"freedBytes": books["bytes"]}}
    assert f"released collection default.books: freed {books['bytes']} bytes" in caplog.messages
    after = sheafdb(rest, "memory", {})["data"]
    assert after["usedBytes"] == baseline["usedBytes"] == engine.memory_report()["used_bytes"]
    assert after["collections"] == []


def test_load_plan_prices_a_load_without_loading(served, engine) -> None:
    rest, _, _ = served
    partial = sheafdb(rest, "load_plan", PARTIAL)["data"]
    full = sheafdb(rest, "load_plan", {"collectionName": "books"})["data"]
    state = rest("collections/get_load_state", {"collectionName": "books"})["data"]
    assert state == {"loadState": "LoadStateNotLoad"}  # nothing was loaded
    assert partial["fits"] is True and partial["partitionNames"] == ["_default"]
    kinds = {(i["fieldName"], i["kind"]) for i in partial["items"]}
    assert {("id", "field"), ("vector", "field"), ("vector", "index")} <= kinds
    assert ("$meta", "field") not in kinds
    assert full["totalBytes"] > partial["totalBytes"] == sum(i["bytes"] for i in partial["items"])
    assert partial["budgetBytes"] == 256 << 20 and 0 < partial["freeBytes"] <= partial["budgetBytes"]

    # The plan's column and index bytes are what the load then holds.
    rest("collections/load", PARTIAL)
    (accounted,) = engine.memory_report()["collections"].values()
    planned = {(i["fieldName"], i["kind"]): i["bytes"] for i in partial["items"]}
    assert planned[("vector", "index")] == accounted["indexes"]["vector"]
    assert planned[("vector", "field")] == accounted["fields"]["vector"]
    again = sheafdb(rest, "load_plan", PARTIAL)["data"]
    assert again["totalBytes"] == 0 and again["partitionNames"] == []  # already loaded: adds nothing
    changed = sheafdb(rest, "load_plan", {"collectionName": "books"})
    # What the load itself answers (a parameter error, 1100).
    assert changed["code"] == 1100 and "can't change the load field list" in changed["message"]


def test_load_plan_says_what_the_load_would_refuse(served) -> None:
    rest, _, _ = served
    missing = sheafdb(rest, "load_plan", {"collectionName": "nope"})
    assert missing["code"] == 100
    no_vector = sheafdb(rest, "load_plan", {"collectionName": "books", "loadFields": ["id"]})
    assert no_vector["code"] == 1100
    assert no_vector["message"].startswith("load field list [id] does not contain vector field")
    untyped = sheafdb(rest, "load_plan", {"collectionName": "books", "loadFields": "id"})
    assert untyped["code"] == 1801


def test_metrics_match_the_accountant_and_return_to_baseline(served, engine) -> None:
    rest, client, _ = served
    before = scrape(client)
    assert before["sheafdb_memory_used_bytes"][0].value == 0
    assert before["sheafdb_resident_bytes"] == []

    rest("collections/load", {"collectionName": "books"})
    rest("entities/search", {"collectionName": "books", "data": [[1.0] * 8], "limit": 3})
    loaded = scrape(client)
    report = engine.memory_report()
    resident = loaded["sheafdb_resident_bytes"]
    assert sum(s.value for s in resident) == report["used_bytes"] > 0
    assert loaded["sheafdb_memory_used_bytes"][0].value == report["used_bytes"]
    assert loaded["sheafdb_memory_budget_bytes"][0].value == 256 << 20
    (accounted,) = report["collections"].values()
    index = [s for s in resident if s.labels["field_name"] == "vector" and s.labels["kind"] == "index"]
    assert sum(s.value for s in index) == accounted["indexes"]["vector"]
    assert {s.labels["collection_name"] for s in resident} == {"books"}
    assert {s.labels["partition_name"] for s in resident} == {"_default"}
    progress = loaded["sheafdb_load_progress"]
    assert [(s.labels["collection_name"], s.value) for s in progress] == [("books", 100)]
    assert loaded["milvus_querycoord_collection_num"][0].value == 1
    loads = {s.labels["status"]: s.value for s in loaded["milvus_querycoord_load_req_count"]}
    assert loads["success"] >= 1 and loads["total"] >= loads["success"]
    rest_paths = {s.labels["path"] for s in loaded["milvus_proxy_restful_api_req_count"]}
    assert "/v2/vectordb/entities/search" in rest_paths
    assert loaded["milvus_querycoord_load_latency"]  # the load was timed to Loaded

    rest("collections/release", {"collectionName": "books"})
    after = scrape(client)
    assert after["sheafdb_memory_used_bytes"][0].value == 0 == engine.memory_report()["used_bytes"]
    assert after["sheafdb_resident_bytes"] == [] and after["sheafdb_load_progress"] == []
    releases = {s.labels["status"]: s.value for s in after["milvus_querycoord_release_req_count"]}
    assert releases["success"] >= 2  # the fixture's and this one


def test_milvus_release_keeps_milvus_reply_and_ours_tells_the_bytes(served) -> None:
    rest, _, _ = served
    rest("collections/load", {"collectionName": "books"})
    assert rest("collections/release", {"collectionName": "books"}) == {"code": 0, "data": {}}
    rest("collections/load", {"collectionName": "books"})
    partition = sheafdb(rest, "release", {"collectionName": "books", "partitionNames": ["_default"]})
    assert partition["code"] == 0 and partition["data"]["freedBytes"] > 0
    again = sheafdb(rest, "release", {"collectionName": "books"})
    assert again == {"code": 0, "data": {"freedBytes": 0}}  # nothing was left to free
    missing = sheafdb(rest, "release", {"collectionName": "nope"})
    assert missing["code"] == 100


def test_openapi_documents_the_extension(rest) -> None:
    document = rest.client.get("/v2/vectordb/openapi.json").json()
    assert "/v2/sheafdb/memory" in document["paths"]
    plan = document["paths"]["/v2/sheafdb/load_plan"]["post"]
    body = plan["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["collectionName"] and "loadFields" in body["properties"]


def test_memory_shows_only_what_the_user_may_see(engine, access) -> None:
    with TestClient(build_app(engine, access)) as client:
        root = Rest(client, "root:Milvus")
        root("collections/create", {"collectionName": "books", "dimension": 4})
        root("entities/insert", {"collectionName": "books", "data": [{"id": 1, "vector": [1, 2, 3, 4]}]})
        root("collections/flush", {"collectionName": "books"})
        engine.wait_for_index_builds(60)
        root("collections/release", {"collectionName": "books"})
        root("collections/load", {"collectionName": "books"})
        root("users/create", {"userName": "alice", "password": "secret-1"})
        alice = {"Authorization": "Bearer alice:secret-1"}
        seen = client.post("/v2/sheafdb/memory", json={}, headers=alice).json()["data"]
        assert seen["collections"] == [] and seen["usedBytes"] > 0
        denied = client.post("/v2/sheafdb/load_plan", json={"collectionName": "books"}, headers=alice)
        assert denied.status_code == 403
        anonymous = client.post("/v2/sheafdb/memory", json={})
        assert anonymous.status_code == 401
        mine = client.post("/v2/sheafdb/memory", json={}, headers={"Authorization": "Bearer root:Milvus"})
        assert [c["collectionName"] for c in mine.json()["data"]["collections"]] == ["books"]
