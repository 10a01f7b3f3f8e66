"""The command line against the real server: ``sheafdb collections | describe | plan | load |
memory | release`` as a person runs them (tables) and as a script does (``--json``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from pymilvus import MilvusClient

from tests.e2e.conftest import ROOT_TOKEN

NAME = "cli_books"
DIM = 8


def sheafdb(server_uri: str, *args: str, token: str = ROOT_TOKEN) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sheafdb", *args, "--uri", server_uri, "--token", token]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={"COLUMNS": "160", "PATH": ""}
    )


def as_json(server_uri: str, *args: str) -> object:
    done = sheafdb(server_uri, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def books(client: MilvusClient) -> str:
    client.create_collection(NAME, dimension=DIM)
    client.insert(NAME, [{"id": i, "vector": [float(i % 5)] * DIM, "title": f"t{i}"} for i in range(3000)])
    client.flush(NAME)
    # Built before the test loads: an index landing mid-test would change the figures it compares.
    for _ in range(600):
        index = client.describe_index(NAME, "vector")
        if index.get("state") == "Finished" and index.get("indexed_rows") == index.get("total_rows"):
            break
        time.sleep(0.1)
    client.release_collection(NAME)
    yield NAME
    client.drop_collection(NAME)


def test_load_plan_memory_release_round_trip(server_uri: str, books: str) -> None:
    listed = as_json(server_uri, "collections")
    mine = next(row for row in listed if row["collectionName"] == books)
    assert mine["rowCount"] == 3000 and mine["loadState"] == "LoadStateNotLoad" and mine["residentBytes"] == 0

    plan = as_json(server_uri, "plan", books, "--fields", "id", "vector")
    assert plan["fits"] is True and plan["totalBytes"] > 0
    assert {item["fieldName"] for item in plan["items"]} >= {"id", "vector"}

    loaded = sheafdb(server_uri, "load", books, "--fields", "id", "vector")
    assert loaded.returncode == 0, loaded.stderr
    assert f"{books}: Loaded, added" in loaded.stdout and "100%" in loaded.stdout

    memory = as_json(server_uri, "memory")
    (entry,) = [c for c in memory["collections"] if c["collectionName"] == books]
    assert entry["bytes"] > 0 and {f["fieldName"] for f in entry["fields"]} >= {"id", "vector"}
    table = sheafdb(server_uri, "memory")
    assert table.returncode == 0 and books in table.stdout and "budget" in table.stdout

    described = sheafdb(server_uri, "describe", books)
    assert described.returncode == 0, described.stderr
    assert "Loaded" in described.stdout and "AUTOINDEX" in described.stdout and "_default" in described.stdout

    released = as_json(server_uri, "release", books)
    assert released == {"collectionName": books, "freedBytes": entry["bytes"]}
    after = as_json(server_uri, "memory")
    assert books not in {c["collectionName"] for c in after["collections"]}


def test_load_json_reports_the_bytes_added(server_uri: str, books: str) -> None:
    loaded = as_json(server_uri, "load", books)
    assert loaded["loadState"] == "LoadStateLoaded" and loaded["addedBytes"] > 0
    released = as_json(server_uri, "release", books)
    assert released["freedBytes"] == loaded["addedBytes"]


def test_errors_exit_non_zero_with_the_servers_message(server_uri: str, books: str) -> None:
    missing = sheafdb(server_uri, "describe", "no_such_collection")
    assert missing.returncode == 1
    assert "collection not found" in missing.stderr and "(code 100)" in missing.stderr
    refused = sheafdb(server_uri, "load", books, "--fields", "id")
    assert refused.returncode == 1 and "does not contain vector field" in refused.stderr
    wrong = sheafdb(server_uri, "collections", token="root:wrong")
    assert wrong.returncode == 1 and "(code 1800)" in wrong.stderr
    gone = sheafdb("http://127.0.0.1:9", "collections")
    assert gone.returncode == 2 and "cannot reach the server" in gone.stderr
