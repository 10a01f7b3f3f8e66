"""Names are checked before any lookup, on gRPC and REST alike, with Milvus's texts and codes.

A malformed collection name is a 1100 "Invalid collection name: ..." from every call that
takes one (never 100 "collection not found"); partitions, aliases, indexes, databases and
fields have their own texts (databases 802, fields 1701, as Milvus answers).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from tests.e2e.conftest import ROOT_TOKEN

DIM = 4
FIRST = (
    "Invalid collection name: {n}. the first character of a collection name must be an underscore "
    "or letter: invalid parameter"
)
CHARS = "Invalid collection name: {n}. collection name can only contain numbers, letters and underscores"
LENGTH = "the length of a collection name must be less than 255 characters: invalid parameter"


def refusal(fn: Callable[[], Any]) -> MilvusException:
    with pytest.raises(MilvusException) as raised:
        fn()
    return raised.value


@pytest.fixture(scope="module")
def coll(client: MilvusClient) -> Iterator[str]:
    name = f"names_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dimension=DIM)
    client.insert(name, [{"id": i, "vector": [float(i)] * DIM} for i in range(5)])
    yield name
    client.drop_collection(name)


def _calls(client: Any, name: str) -> dict[str, Callable[[], Any]]:
    vec = [[0.1] * DIM]
    return {
        "load_collection": lambda: client.load_collection(name),
        "release_collection": lambda: client.release_collection(name),
        "load_partitions": lambda: client.load_partitions(name, ["p"]),
        "release_partitions": lambda: client.release_partitions(name, ["p"]),
        "get": lambda: client.get(name, ids=[1]),
        "query": lambda: client.query(name, filter="id > 0"),
        "search": lambda: client.search(name, vec),
        "has_collection": lambda: client.has_collection(name),
        "describe_collection": lambda: client.describe_collection(name),
        "drop_collection": lambda: client.drop_collection(name),
        "get_load_state": lambda: client.get_load_state(name),
        "insert": lambda: client.insert(name, [{"id": 1, "vector": [0.1] * DIM}]),
        "upsert": lambda: client.upsert(name, [{"id": 1, "vector": [0.1] * DIM}]),
        "delete": lambda: client.delete(name, ids=[1]),
        "get_collection_stats": lambda: client.get_collection_stats(name),
        "list_partitions": lambda: client.list_partitions(name),
        "create_partition": lambda: client.create_partition(name, "p"),
        "has_partition": lambda: client.has_partition(name, "p"),
        "drop_partition": lambda: client.drop_partition(name, "p"),
        "create_alias": lambda: client.create_alias(name, "an_alias"),
        "list_indexes": lambda: client.list_indexes(name),
        "describe_index": lambda: client.describe_index(name, "vector"),
        "drop_index": lambda: client.drop_index(name, "vector"),
        "flush": lambda: client.flush(name),
        "rename_collection": lambda: client.rename_collection(name, "fresh_name"),
    }


CALLS = sorted(_calls(None, "x"))  # the names only: no call runs here


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(("bad", "text"), [("12-s", FIRST), ("a-b", CHARS), ("a" * 256, LENGTH)])
def test_every_call_checks_the_collection_name_first(
    client: MilvusClient, call: str, bad: str, text: str
) -> None:
    error = refusal(_calls(client, bad)[call])
    assert error.code == 1100
    assert text.format(n=bad) in error.message


def test_partition_alias_index_database_and_field_names(client: MilvusClient, coll: str) -> None:
    bad_partition = refusal(lambda: client.create_partition(coll, "p$x"))
    assert bad_partition.code == 1100
    assert bad_partition.message == (
        "Invalid partition name: p$x. Partition name can only contain numbers, letters and "
        "underscores.: invalid parameter"
    )
    first = refusal(lambda: client.load_partitions(coll, ["$p"]))
    assert "The first character of a partition name must be an underscore or letter." in first.message
    row = [{"id": 1, "vector": [0.0] * DIM}]
    assert refusal(lambda: client.insert(coll, row, partition_name="a b")).code == 1100
    # Milvus takes a digit first and "-" inside a partition name: then it is only missing.
    assert refusal(lambda: client.load_partitions(coll, ["1-x"])).code == 200

    alias = refusal(lambda: client.create_alias(coll, "1alias"))
    assert alias.code == 1100
    assert alias.message == (
        "Invalid collection alias: 1alias. the first character of a collection alias must be an "
        "underscore or letter: invalid parameter"
    )
    assert refusal(lambda: client.drop_alias("a-b")).code == 1100
    assert refusal(lambda: client.describe_alias("a-b")).code == 1100

    params = client.prepare_index_params()
    params.add_index("vector", index_name="1idx", index_type="FLAT", metric_type="L2")
    client.release_collection(coll)
    client.drop_index(coll, "vector")
    index = refusal(lambda: client.create_index(coll, params))
    assert index.code == 1100
    assert index.message.startswith(
        "Invalid index name: 1idx. The first character of a index name must be an underscore or letter."
    )

    database = refusal(lambda: client.create_database("1db"))
    assert (database.code, database.message) == (
        802,
        "the first character of a database name must be an underscore or letter: "
        "invalid database name[database=1db]",
    )
    assert refusal(lambda: client.drop_database("a-b")).code == 802

    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("1vec", DataType.FLOAT_VECTOR, dim=DIM)
    field = refusal(lambda: client.create_collection(f"f_{uuid.uuid4().hex[:6]}", schema=schema))
    assert (field.code, field.message) == (
        1701,
        "Invalid field name: 1vec. The first character of a field name must be an underscore or letter.: "
        "field name invalid[field=1vec]",
    )


def test_drop_alias_that_does_not_exist_succeeds(client: MilvusClient) -> None:
    client.drop_alias(f"never_{uuid.uuid4().hex[:8]}")


REST_ROUTES = [
    ("collections/describe", {}),
    ("collections/has", {}),
    ("collections/load", {}),
    ("collections/release", {}),
    ("collections/get_load_state", {}),
    ("collections/get_stats", {}),
    ("collections/drop", {}),
    ("partitions/list", {}),
    ("partitions/load", {"partitionNames": ["p"]}),
    ("partitions/release", {"partitionNames": ["p"]}),
    ("entities/query", {"filter": "id > 0"}),
    ("entities/get", {"id": [1]}),
    ("entities/search", {"data": [[0.1] * DIM]}),
    ("entities/insert", {"data": [{"id": 1, "vector": [0.1] * DIM}]}),
    ("indexes/list", {}),
]


@pytest.mark.parametrize(("route", "body"), REST_ROUTES)
def test_rest_checks_the_collection_name_first(server_uri: str, route: str, body: dict[str, Any]) -> None:
    reply = httpx.post(
        f"{server_uri}/v2/vectordb/{route}",
        json={"collectionName": "12-s", **body},
        headers={"Authorization": f"Bearer {ROOT_TOKEN}"},
    ).json()
    assert reply["code"] == 1100
    assert FIRST.format(n="12-s") in reply["message"]
