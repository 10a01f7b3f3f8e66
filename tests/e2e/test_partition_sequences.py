"""Partitions in every combination, as Milvus behaves: one table, each row a sequence of
load / release / drop / create / insert / flush / compact steps on a fresh collection, each step either
succeeding (and then the state and the rows read are checked) or failing with Milvus's code
and text.

Every collection starts with partitions ``_default``, ``p1``, ``p2`` holding ids 0-2, 10-12,
20-22, a FLAT index (unless the row says ``no_index``), and nothing loaded.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymilvus import DataType, MilvusClient, MilvusException
from pymilvus.client.types import LoadState

from tests.e2e.conftest import compact_and_wait

DIM = 4
ROWS = {"_default": [0, 1, 2], "p1": [10, 11, 12], "p2": [20, 21, 22]}


@dataclass(frozen=True)
class Fails:
    """The step fails with this code and a message containing this text."""

    code: int
    text: str


@dataclass(frozen=True)
class Step:
    # load | load_p | release | release_p | drop_p | create_p | insert | flush | compact | search | query
    action: str
    arg: Any = None
    fails: Fails | None = None


@dataclass(frozen=True)
class Expect:
    """After the steps: the collection's (and named partitions') load state, and the ids a
    query of every loaded partition returns (None: the collection is not loaded at all)."""

    state: LoadState
    partitions: dict[str, LoadState]
    ids: list[int] | None


NOT_LOADED_SEARCH = Fails(101, "collection not loaded")


def s(action: str, arg: Any = None, fails: Fails | None = None) -> Step:
    return Step(action, arg, fails)


L, NL = LoadState.Loaded, LoadState.NotLoad
SEQUENCES: list[tuple[str, list[Step], Expect]] = [
    ("load collection", [s("load")], Expect(L, {"p1": L, "p2": L}, [0, 1, 2, 10, 11, 12, 20, 21, 22])),
    ("load one partition", [s("load_p", ["p1"])], Expect(L, {"p1": L, "p2": NL}, [10, 11, 12])),
    (
        "load partitions then the collection",
        [s("load_p", ["p1"]), s("load")],
        Expect(L, {"p1": L, "p2": L}, [0, 1, 2, 10, 11, 12, 20, 21, 22]),
    ),
    (
        "drop a partition of a loaded collection",
        [
            s("load"),
            s(
                "drop_p",
                "p1",
                Fails(65535, "partition cannot be dropped, partition is loaded, please release it first"),
            ),
        ],
        Expect(L, {"p1": L}, [0, 1, 2, 10, 11, 12, 20, 21, 22]),
    ),
    (
        "release one, drop it, release another, load the collection",
        [s("load"), s("release_p", ["p1"]), s("drop_p", "p1"), s("release_p", ["p2"]), s("load")],
        Expect(L, {"p2": L}, [0, 1, 2, 20, 21, 22]),
    ),
    (
        "search a dropped partition",
        [
            s("load"),
            s("release_p", ["p1"]),
            s("drop_p", "p1"),
            s("search", ["p1"], Fails(65535, "partition name p1 not found")),
        ],
        Expect(L, {"p2": L}, [0, 1, 2, 20, 21, 22]),
    ),
    (
        "query a dropped partition",
        [
            s("load_p", ["p2"]),
            s("drop_p", "p1"),
            s("query", ["p1"], Fails(65535, "partition name p1 not found")),
        ],
        Expect(L, {"p2": L}, [20, 21, 22]),
    ),
    (
        "release with an empty list",
        [
            s("load"),
            s(
                "release_p",
                [],
                Fails(1100, "invalid parameter[expected=any partition][actual=empty partition list]"),
            ),
        ],
        Expect(L, {"p1": L}, [0, 1, 2, 10, 11, 12, 20, 21, 22]),
    ),
    (
        "load partitions of a collection without index",
        [s("no_index"), s("load_p", ["p1"], Fails(700, "index not found[collection="))],
        Expect(NL, {"p1": NL}, None),
    ),
    (
        "load a collection without index",
        [s("no_index"), s("load", None, Fails(700, "index not found[collection="))],
        Expect(NL, {}, None),
    ),
    (
        "release the last loaded partition",
        [s("load_p", ["p1"]), s("release_p", ["p1"]), s("search", None, NOT_LOADED_SEARCH)],
        Expect(NL, {"p1": NL}, None),
    ),
    (
        "search a partition not loaded",
        [s("load_p", ["p1"]), s("search", ["p2"], Fails(201, "partition not loaded"))],
        Expect(L, {"p1": L, "p2": NL}, [10, 11, 12]),
    ),
    (
        "partition created while the collection is loaded is loaded",
        [s("load"), s("create_p", "p3"), s("insert", "p3")],
        Expect(L, {"p3": L}, [0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32]),
    ),
    (
        "partition created while only partitions are loaded is not",
        [s("load_p", ["p1"]), s("create_p", "p3"), s("insert", "p3")],
        Expect(L, {"p1": L, "p3": NL}, [10, 11, 12]),
    ),
    (
        "release the collection, load one partition",
        [s("load"), s("release"), s("load_p", ["p2"])],
        Expect(L, {"p1": NL, "p2": L}, [20, 21, 22]),
    ),
    (
        "sealed segments between steps",
        [s("flush"), s("load_p", ["p1"]), s("insert", "p1"), s("flush"), s("load")],
        Expect(L, {"p1": L, "p2": L}, [0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32]),
    ),
    (
        "compaction between steps",
        [
            s("flush"),
            s("insert", "p1"),
            s("flush"),
            s("compact"),
            s("load_p", ["p1"]),
            s("compact"),
            s("release_p", ["p1"]),
            s("load"),
        ],
        Expect(L, {"p1": L, "p2": L}, [0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32]),
    ),
    (
        "compaction after a partition was dropped",
        [
            s("flush"),
            s("load"),
            s("release_p", ["p1"]),
            s("drop_p", "p1"),
            s("compact"),
            s("release"),
            s("load"),
            s("query", ["p1"], Fails(65535, "partition name p1 not found")),
        ],
        Expect(L, {"p2": L}, [0, 1, 2, 20, 21, 22]),
    ),
    (
        "unknown partitions",
        [
            s("load_p", ["nope"], Fails(200, "partition not found")),
            s("release_p", ["nope"], Fails(200, "partition not found")),
            s("drop_p", "nope"),  # dropping a partition that does not exist succeeds
        ],
        Expect(NL, {"p1": NL}, None),
    ),
    (
        "drop the default partition",
        [s("drop_p", "_default", Fails(1100, "default partition cannot be deleted"))],
        Expect(NL, {}, None),
    ),
]


@pytest.fixture
def fresh(client: MilvusClient) -> Iterator[Callable[[bool], str]]:
    made: list[str] = []

    def make(indexed: bool) -> str:
        name = f"seq_{uuid.uuid4().hex[:8]}"
        schema = MilvusClient.create_schema()
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
        params = None
        if indexed:
            params = client.prepare_index_params()
            params.add_index("vector", index_type="FLAT", metric_type="L2")
        client.create_collection(name, schema=schema, index_params=params)
        client.release_collection(name)
        for partition, ids in ROWS.items():
            if partition != "_default":
                client.create_partition(name, partition)
            client.insert(
                name, [{"id": i, "vector": [float(i)] * DIM} for i in ids], partition_name=partition
            )
        made.append(name)
        return name

    yield make
    for name in made:
        client.drop_collection(name)


def _run(client: MilvusClient, name: str, step: Step) -> None:
    vec = [[0.0] * DIM]
    actions: dict[str, Callable[[], Any]] = {
        "load": lambda: client.load_collection(name),
        "load_p": lambda: client.load_partitions(name, step.arg),
        "release": lambda: client.release_collection(name),
        "release_p": lambda: client.release_partitions(name, step.arg),
        "drop_p": lambda: client.drop_partition(name, step.arg),
        "create_p": lambda: client.create_partition(name, step.arg),
        "insert": lambda: client.insert(
            name, [{"id": i, "vector": [float(i)] * DIM} for i in (30, 31, 32)], partition_name=step.arg
        ),
        "flush": lambda: client.flush(name),
        "compact": lambda: compact_and_wait(client, name),
        "search": lambda: client.search(name, vec, limit=3, partition_names=step.arg),
        "query": lambda: client.query(name, filter="id >= 0", partition_names=step.arg),
    }
    if step.fails is None:
        actions[step.action]()
        return
    with pytest.raises(MilvusException) as raised:
        actions[step.action]()
    assert raised.value.code == step.fails.code, raised.value
    assert step.fails.text in raised.value.message


@pytest.mark.parametrize(
    ("steps", "expect"), [(steps, e) for _, steps, e in SEQUENCES], ids=[n for n, _, _ in SEQUENCES]
)
def test_partition_sequence(
    client: MilvusClient, fresh: Callable[[bool], str], steps: list[Step], expect: Expect
) -> None:
    name = fresh(not any(step.action == "no_index" for step in steps))
    for step in steps:
        if step.action != "no_index":
            _run(client, name, step)
    assert client.get_load_state(name)["state"] == expect.state
    for partition, state in expect.partitions.items():
        assert client.get_load_state(name, partition)["state"] == state, partition
    if expect.ids is None:
        with pytest.raises(MilvusException) as raised:
            client.query(name, filter="id >= 0")
        assert raised.value.code == 101
    else:
        assert sorted(r["id"] for r in client.query(name, filter="id >= 0", limit=100)) == expect.ids
