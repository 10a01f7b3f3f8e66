"""Replicas and resource groups against the real server, through pymilvus as Milvus users call them
(MilvusClient; ``utility`` where MilvusClient has no call). Texts are Milvus's."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from pymilvus import DataType, MilvusClient, MilvusException, connections, utility
from pymilvus.client.types import ResourceGroupConfig

DEFAULT_RG = "__default_resource_group"


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def groups(client: MilvusClient) -> Iterator[list[str]]:
    """Names created by the test; afterwards every group is emptied and dropped, and the node is
    back home, as Milvus's test harness leaves a server."""
    created: list[str] = []
    yield created
    for name in client.list_resource_groups():
        client.update_resource_groups(
            {name: ResourceGroupConfig(requests={"node_num": 0}, limits={"node_num": 0})}
        )
    for name in client.list_resource_groups():
        if name != DEFAULT_RG:
            client.drop_resource_group(name)
    client.update_resource_groups(
        {DEFAULT_RG: ResourceGroupConfig(requests={"node_num": 0}, limits={"node_num": 1_000_000})}
    )


@pytest.fixture
def loaded(client: MilvusClient) -> Iterator[str]:
    name = _name("replicas")
    client.create_collection(name, dimension=4)
    client.insert(name, [{"id": i, "vector": [float(i)] * 4} for i in range(10)])
    yield name
    client.drop_collection(name)


def test_default_group_holds_the_node(client: MilvusClient) -> None:
    assert DEFAULT_RG in client.list_resource_groups()
    info = client.describe_resource_group(DEFAULT_RG)
    assert info.name == DEFAULT_RG
    assert info.capacity == 1_000_000
    assert info.num_available_node == 1
    assert len(info.nodes) == 1


def test_get_replicas_of_a_loaded_collection(client: MilvusClient, loaded: str) -> None:
    replicas = client.describe_replica(loaded)
    assert len(replicas) == 1
    replica = replicas[0]
    assert replica.resource_group == DEFAULT_RG
    assert len(replica.group_nodes) == 1
    assert len(replica.shards) == 1
    shard = replica.shards[0]
    assert shard.shard_leader == replica.group_nodes[0]
    assert shard.shard_nodes == {replica.group_nodes[0]}
    assert shard.channel_name.startswith("by-dev-rootcoord-dml_0_")
    info = client.describe_resource_group(DEFAULT_RG)
    assert info.num_loaded_replica[loaded] == 1
    client.release_collection(loaded)
    assert client.describe_replica(loaded) == []


def test_replica_number_zero_or_negative_means_one(client: MilvusClient, loaded: str) -> None:
    client.release_collection(loaded)
    for replicas in (0, -1):
        client.load_collection(loaded, replica_number=replicas)
        assert len(client.describe_replica(loaded)) == 1
        client.release_collection(loaded)


def test_more_replicas_than_nodes_is_refused(client: MilvusClient, loaded: str) -> None:
    client.release_collection(loaded)
    with pytest.raises(MilvusException) as err:
        client.load_collection(loaded, replica_number=2)
    assert (
        "resource group node not enough[rg=__default_resource_group][currentNodeNum=1][expectedNodeNum=2]"
        in err.value.message
    )
    assert client.get_load_state(loaded)["state"].name == "NotLoad"


def test_create_describe_transfer_and_drop(client: MilvusClient, groups: list[str], loaded: str) -> None:
    name = _name("rg")
    groups.append(name)
    client.create_resource_group(name)
    client.create_resource_group(name)  # same config again: success
    assert name in client.list_resource_groups()
    info = client.describe_resource_group(name)
    assert (info.capacity, info.num_available_node) == (0, 0)

    with pytest.raises(
        MilvusException, match="resource group already exist, but create with different config"
    ):
        client.create_resource_group(
            name, config=ResourceGroupConfig(requests={"node_num": 1}, limits={"node_num": 1})
        )

    # Asking for a node takes the node from the default group.
    client.update_resource_groups(
        {name: ResourceGroupConfig(requests={"node_num": 1}, limits={"node_num": 1})}
    )
    assert client.describe_resource_group(name).num_available_node == 1
    assert client.describe_resource_group(DEFAULT_RG).num_available_node == 0

    # A collection loaded in the default group is now refused: no node there.
    client.release_collection(loaded)
    with pytest.raises(
        MilvusException, match=r"resource group node not enough\[rg=__default_resource_group\]"
    ):
        client.load_collection(loaded)
    client.load_collection(loaded, _resource_groups=[name])
    assert client.describe_replica(loaded)[0].resource_group == name
    client.refresh_load(loaded)  # a refresh leaves the replica where it is
    assert client.describe_replica(loaded)[0].resource_group == name

    with pytest.raises(MilvusException, match=rf"some replicas still loaded in resource group\[{name}\]"):
        client.drop_resource_group(name)
    client.transfer_replica(name, DEFAULT_RG, loaded, 1)
    assert client.describe_replica(loaded)[0].resource_group == DEFAULT_RG
    with pytest.raises(MilvusException, match="resource group's limits node num is not 0"):
        client.drop_resource_group(name)


def test_resource_group_errors(client: MilvusClient, groups: list[str], loaded: str) -> None:
    with pytest.raises(MilvusException, match=r"resource group not found\[rg=nope\]"):
        client.describe_resource_group("nope")
    # Milvus looks for loaded replicas first, then refuses the default group itself.
    with pytest.raises(
        MilvusException, match=r"some replicas still loaded in resource group\[__default_resource_group\]"
    ):
        client.drop_resource_group(DEFAULT_RG)
    client.release_collection(loaded)
    client.drop_resource_group("never_created")  # Milvus: dropping a missing group succeeds
    with pytest.raises(
        MilvusException, match="the first character of a resource group name must be an underscore or letter"
    ):
        client.create_resource_group("12-s")
    with pytest.raises(MilvusException, match="limits node num should not less than requests node num"):
        client.create_resource_group(
            _name("rg"), config=ResourceGroupConfig(requests={"node_num": 2}, limits={"node_num": 1})
        )
    with pytest.raises(MilvusException, match=r"the target resource group\[nope\] doesn't exist"):
        client.transfer_replica(DEFAULT_RG, "nope", loaded, 1)
    name = _name("rg")
    groups.append(name)
    client.create_resource_group(name)
    with pytest.raises(
        MilvusException, match=r"invalid parameter\[expected=NumReplica > 0\]\[actual=invalid NumReplica 0\]"
    ):
        client.transfer_replica(DEFAULT_RG, name, loaded, 0)
    with pytest.raises(
        MilvusException, match=r"only found \[0\] replicas of collection \[\d+\] in source resource group"
    ):
        client.transfer_replica(DEFAULT_RG, name, loaded, 1)
    with pytest.raises(MilvusException, match=r"resource group not found\[rg=nope\]"):
        client.load_collection(loaded, _resource_groups=["nope"])


def test_transfer_node_with_utility(server_uri: str, client: MilvusClient, groups: list[str]) -> None:
    alias = _name("conn")
    connections.connect(alias=alias, uri=server_uri, token="root:Milvus")
    try:
        name = _name("rg")
        groups.append(name)
        utility.create_resource_group(name, using=alias)
        with pytest.raises(
            MilvusException, match=r"invalid parameter\[expected=NumNode > 0\]\[actual=invalid NumNode 0\]"
        ):
            utility.transfer_node(DEFAULT_RG, name, 0, using=alias)
        with pytest.raises(MilvusException, match="resource group node not enough"):
            utility.transfer_node(DEFAULT_RG, name, 2, using=alias)
        utility.transfer_node(DEFAULT_RG, name, 1, using=alias)
        moved = utility.describe_resource_group(name, using=alias)
        assert (moved.capacity, moved.num_available_node) == (1, 1)
        assert utility.describe_resource_group(DEFAULT_RG, using=alias).num_available_node == 0
    finally:
        connections.disconnect(alias)


def test_resource_groups_survive_a_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.e2e.conftest import free_port, start_server, stop_server, wait_ready

    root = tmp_path_factory.mktemp("rg-restart")
    port = free_port()
    log = root / "server.log"
    for attempt in range(2):
        process = start_server(root / "data", port, log, auth=False)
        try:
            wait_ready(process, log)
            client = MilvusClient(uri=f"http://127.0.0.1:{port}")
            if attempt == 0:
                schema = client.create_schema()
                schema.add_field("id", DataType.INT64, is_primary=True)
                schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
                index = client.prepare_index_params()
                index.add_index("v", index_type="FLAT", metric_type="L2")
                client.create_collection("c", schema=schema, index_params=index)  # loads it
                client.release_collection("c")
                kept = ResourceGroupConfig(requests={"node_num": 1}, limits={"node_num": 1})
                client.create_resource_group("kept", config=kept)
                client.load_collection("c", _resource_groups=["kept"])
            else:
                # The load comes back in the background after a restart.
                deadline = time.monotonic() + 30
                while client.get_load_state("c")["state"].name != "Loaded" and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert sorted(client.list_resource_groups()) == sorted([DEFAULT_RG, "kept"])
                assert client.describe_resource_group("kept").num_available_node == 1
                assert client.describe_replica("c")[0].resource_group == "kept"
            client.close()
        finally:
            stop_server(process)


def test_load_balance_on_one_node(server_uri: str, client: MilvusClient, loaded: str) -> None:
    """Milvus's checks; a valid request has nowhere to move segments and succeeds."""
    alias = _name("conn")
    connections.connect(alias=alias, uri=server_uri, token="root:Milvus")
    try:
        node = client.describe_replica(loaded)[0].group_nodes[0]
        utility.load_balance(loaded, node, [], [], using=alias)
        with pytest.raises(MilvusException, match=r"source node not found in any replica of collection \d+"):
            utility.load_balance(loaded, node + 7, [], [], using=alias)
        with pytest.raises(MilvusException, match=r"segment not found\[segment=42\]"):
            utility.load_balance(loaded, node, [node], [42], using=alias)
        client.release_collection(loaded)
        with pytest.raises(MilvusException, match="collection not fully loaded"):
            utility.load_balance(loaded, node, [], [], using=alias)
    finally:
        connections.disconnect(alias)
