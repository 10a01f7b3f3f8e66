"""What else the server's HTTP side serves on the API port: the console (unless turned off)
and ``/metrics``, both behind the login when authentication is on; and the gRPC calls that
``/metrics`` counts, refused ones included."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from sheafdb.api.server import Server, ServerConfig

ROOT = "root:Milvus"


def started(tmp_path: Path, **config: object) -> Server:
    running = Server(ServerConfig(data_dir=tmp_path / "data", port=0, max_workers=4, **config))  # type: ignore[arg-type]
    running.start()
    return running


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Server]:
    running = started(tmp_path, auth_enabled=True)
    yield running
    running.stop()


def req_counts(text: str) -> dict[tuple[str, str, str], float]:
    counts = {}
    for family in text_string_to_metric_families(text):
        if family.name == "milvus_proxy_req_count":
            for s in family.samples:
                counts[(s.labels["function_name"], s.labels["status"], s.labels["collection_name"])] = s.value
    return counts


def test_console_and_metrics_sit_behind_the_login(secured: Server) -> None:
    base = f"http://127.0.0.1:{secured.port}"
    assert httpx.get(base + "/").status_code == 303  # to the login form
    assert httpx.get(base + "/").headers["location"] == "/login"
    assert "password" in httpx.get(base + "/login").text
    refused = httpx.post(base + "/login", data={"username": "root", "password": "nope"})
    assert refused.status_code == 401 and "auth check failure" in refused.text
    with httpx.Client(base_url=base) as browser:
        assert browser.post("/login", data={"username": "root", "password": "Milvus"}).status_code == 303
        page = browser.get("/")
        assert page.status_code == 200 and "Databases and collections" in page.text
        assert browser.get("/static/htmx.min.js").status_code == 200
    assert httpx.get(base + "/metrics").status_code == 401
    scraped = httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {ROOT}"})
    assert scraped.status_code == 200 and "sheafdb_memory_budget_bytes" in scraped.text


def test_grpc_calls_are_counted_per_rpc_and_outcome(secured: Server) -> None:
    token = [("authorization", base64.b64encode(ROOT.encode()).decode())]
    with grpc.insecure_channel(f"127.0.0.1:{secured.port}") as channel:
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        stub.HasCollection(milvus_pb2.HasCollectionRequest(collection_name="a"), metadata=token, timeout=10)
        missing = stub.DescribeCollection(
            milvus_pb2.DescribeCollectionRequest(collection_name="b"), metadata=token, timeout=10
        )
        assert missing.status.code == 100
        with pytest.raises(grpc.RpcError):
            stub.HasCollection(milvus_pb2.HasCollectionRequest(collection_name="c"), timeout=10)
    text = httpx.get(
        f"http://127.0.0.1:{secured.port}/metrics", headers={"Authorization": f"Bearer {ROOT}"}
    ).text
    counts = req_counts(text)
    assert counts[("HasCollection", "success", "a")] == 1 == counts[("HasCollection", "total", "a")]
    assert counts[("DescribeCollection", "fail", "b")] == 1
    # Refused by authentication before its request was read: counted, without a collection.
    assert counts[("HasCollection", "fail", "")] == 1
    assert 'milvus_proxy_req_latency_count{function_name="HasCollection",node_id="1"} 2.0' in text


def test_no_console_turns_only_the_console_off(tmp_path: Path) -> None:
    running = started(tmp_path, console=False)
    try:
        base = f"http://127.0.0.1:{running.port}"
        assert httpx.get(base + "/").status_code == 404
        assert httpx.get(base + "/static/htmx.min.js").status_code == 404
        assert httpx.get(base + "/metrics").status_code == 200  # authentication is off
        assert httpx.post(base + "/v2/sheafdb/memory", json={}).json()["code"] == 0
    finally:
        running.stop()


def test_the_console_shows_a_user_only_what_they_may(secured: Server) -> None:
    base = f"http://127.0.0.1:{secured.port}"
    root = {"Authorization": f"Bearer {ROOT}"}
    assert (
        httpx.post(
            base + "/v2/vectordb/collections/create",
            json={"collectionName": "books", "dimension": 4},
            headers=root,
        ).json()["code"]
        == 0
    )
    assert (
        httpx.post(
            base + "/v2/vectordb/users/create",
            json={"userName": "alice", "password": "secret-1"},
            headers=root,
        ).json()["code"]
        == 0
    )
    with httpx.Client(base_url=base) as browser:
        assert browser.post("/login", data={"username": "alice", "password": "secret-1"}).status_code == 303
        overview = browser.get("/")
        assert overview.status_code == 200 and "books" not in overview.text
        assert "books" not in browser.get("/memory").text
        page = browser.get("/db/default/collections/books")
        assert "GetLoadState: permission deny to alice" in page.text
        refused = browser.post("/db/default/collections/books/release", headers={"HX-Request": "true"})
        assert "Release: permission deny to alice" in refused.text
        assert (
            httpx.post(
                base + "/v2/vectordb/collections/get_load_state",
                json={"collectionName": "books"},
                headers=root,
            ).json()["data"]["loadState"]
            == "LoadStateLoaded"
        )
        browser.post("/logout")
        assert browser.get("/").status_code == 303  # logged out: back to the login form
    with httpx.Client(base_url=base) as browser:
        assert browser.post("/login", data={"username": "root", "password": "Milvus"}).status_code == 303
        assert "books" in browser.get("/").text
        released = browser.post("/db/default/collections/books/release", headers={"HX-Request": "true"})
        assert "Released: freed" in released.text and 'data-state="NotLoad"' in released.text


def test_the_console_loads_chosen_partitions_and_fields(tmp_path: Path) -> None:
    running = started(tmp_path)
    try:
        base = f"http://127.0.0.1:{running.port}"
        rest = f"{base}/v2/vectordb/"
        assert (
            httpx.post(rest + "collections/create", json={"collectionName": "books", "dimension": 4}).json()[
                "code"
            ]
            == 0
        )
        assert (
            httpx.post(
                rest + "partitions/create", json={"collectionName": "books", "partitionName": "new"}
            ).json()["code"]
            == 0
        )
        assert httpx.post(rest + "collections/release", json={"collectionName": "books"}).json()["code"] == 0
        form = {"fields": ["id", "vector"], "partitions": ["new"], "skip_dynamic": "on"}
        loaded = httpx.post(
            f"{base}/db/default/collections/books/load", data=form, headers={"HX-Request": "true"}
        )
        assert 'data-state="Loaded"' in loaded.text and "fields <code>id, vector</code>" in loaded.text
        state = httpx.post(
            rest + "collections/get_load_state",
            json={"collectionName": "books", "partitionNames": ["_default"]},
        )
        assert state.json()["data"]["loadState"] == "LoadStateNotLoad"  # only the partition asked for
        refused = httpx.post(
            f"{base}/db/default/collections/books/load",
            data={"fields": ["id"]},
            headers={"HX-Request": "true"},
        )
        assert "does not contain vector field" in refused.text and 'class="error"' in refused.text
        props = f"{base}/db/default/collections/books/properties"
        shown = httpx.post(
            props, data={"key": "collection.ttl.seconds", "value": "60"}, headers={"HX-Request": "true"}
        )
        assert "<code>collection.ttl.seconds</code></td><td>60</td>" in shown.text
        described = httpx.post(rest + "collections/describe", json={"collectionName": "books"}).json()["data"]
        assert {"key": "collection.ttl.seconds", "value": "60"} in described["properties"]
        dropped = httpx.post(
            props, data={"key": "collection.ttl.seconds", "action": "drop"}, headers={"HX-Request": "true"}
        )
        assert "<code>collection.ttl.seconds</code>" not in dropped.text and "No properties." in dropped.text
    finally:
        running.stop()
