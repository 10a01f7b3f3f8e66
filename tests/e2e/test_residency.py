"""Residency policies against the real server: idle release, reload on read, pinning, and the
eviction order of ``--evict-under-pressure`` (collection properties ``sheafdb.*``)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready

DIM = 8


def make(client: MilvusClient, name: str, rows: int = 300, **properties: str) -> None:
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    client.release_collection(name)  # created loaded (empty): each test loads what it needs
    vectors = np.random.default_rng(rows).random((rows, DIM), dtype=np.float32)
    client.insert(name, [{"id": i, "vec": vectors[i].tolist()} for i in range(rows)])
    client.flush(name)
    if properties:
        client.alter_collection_properties(
            name, properties={k.replace("__", "."): v for k, v in properties.items()}
        )


def state(client: MilvusClient, name: str) -> str:
    return str(client.get_load_state(name)["state"].name)


def until(condition: Callable[[], bool]) -> None:
    """Poll (no duration is asserted: the loop only bounds a hang)."""
    for _ in range(600):
        if condition():
            return
        threading.Event().wait(0.05)
    pytest.fail("condition never held")


def test_an_idle_collection_is_released_and_says_so(client: MilvusClient) -> None:
    make(client, "idle_plain", sheafdb__idle_release_seconds="1")
    described = client.describe_collection("idle_plain")
    assert described["properties"]["sheafdb.idle_release_seconds"] == "1"
    client.load_collection("idle_plain")
    assert len(client.search("idle_plain", [[0.5] * DIM], limit=3)[0]) == 3
    until(lambda: state(client, "idle_plain") == "NotLoad")
    with pytest.raises(MilvusException) as err:
        client.search("idle_plain", [[0.5] * DIM], limit=3)
    assert err.value.code == 101
    client.drop_collection("idle_plain")


def test_reload_on_read_serves_the_read_after_an_idle_release(client: MilvusClient) -> None:
    make(client, "idle_reload", sheafdb__idle_release_seconds="1", sheafdb__reload_on_read="true")
    client.load_collection("idle_reload")
    until(lambda: state(client, "idle_reload") == "NotLoad")
    hits = client.search("idle_reload", [[0.5] * DIM], limit=3)  # waits for the load it starts
    assert len(hits[0]) == 3
    assert state(client, "idle_reload") == "Loaded"
    client.drop_collection("idle_reload")


def test_a_pinned_collection_is_never_released_by_a_policy(client: MilvusClient) -> None:
    make(client, "pinned_one", sheafdb__idle_release_seconds="1", sheafdb__pinned="true")
    make(client, "unpinned_one", sheafdb__idle_release_seconds="1")
    client.load_collection("pinned_one")
    client.load_collection("unpinned_one")
    until(lambda: state(client, "unpinned_one") == "NotLoad")
    assert state(client, "pinned_one") == "Loaded"  # idle as long, but pinned
    client.drop_collection("pinned_one")
    client.drop_collection("unpinned_one")


def test_a_wrong_policy_value_is_refused_naming_the_property(client: MilvusClient) -> None:
    make(client, "bad_policy")
    for key, value in (("sheafdb.idle_release_seconds", "soon"), ("sheafdb.pinned", "yes")):
        with pytest.raises(MilvusException) as err:
            client.alter_collection_properties("bad_policy", properties={key: value})
        assert err.value.code == 1100 and key in err.value.message
    client.drop_collection("bad_policy")


def test_eviction_releases_lowest_priority_then_least_recently_read(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log_path = tmp_path / "server.log"
    # First a server that can load nothing, to learn what one collection needs.
    port = free_port()
    process = start_server(data, port, log_path, extra=("--memory-budget", "1KiB"))
    wait_ready(process, log_path)
    try:
        client = MilvusClient(uri=f"http://127.0.0.1:{port}", token=ROOT_TOKEN)
        make(client, "low", 2000, sheafdb__priority="0")
        make(client, "high", 2000, sheafdb__priority="5")
        make(client, "pinned", 2000, sheafdb__priority="-3", sheafdb__pinned="true")
        make(client, "newer_low", 2000, sheafdb__priority="0")
        make(client, "incoming", 2000)
        with pytest.raises(MilvusException) as err:
            client.load_collection("low")
        needed = int(re.search(r"needs (\d+) bytes", err.value.message).group(1))  # type: ignore[union-attr]
        client.close()
    finally:
        stop_server(process)
    # Room for four of the five, each of the same size.
    budget = str(int(needed * 4.5))
    port = free_port()
    process = start_server(data, port, log_path, extra=("--memory-budget", budget, "--evict-under-pressure"))
    wait_ready(process, log_path)
    try:
        client = MilvusClient(uri=f"http://127.0.0.1:{port}", token=ROOT_TOKEN)
        for name in ("low", "high", "pinned", "newer_low"):
            client.load_collection(name)
        client.search("low", [[0.5] * DIM], limit=1)  # "newer_low" is now the least recently read
        client.load_collection("incoming")
        states = {n: state(client, n) for n in ("low", "high", "pinned", "newer_low", "incoming")}
        assert states == {
            "low": "Loaded",
            "high": "Loaded",
            "pinned": "Loaded",
            "newer_low": "NotLoad",  # priority 0 like "low", but read least recently
            "incoming": "Loaded",
        }
        assert "released under pressure: newer_low (" in log_path.read_text()
        client.close()
    finally:
        stop_server(process)
