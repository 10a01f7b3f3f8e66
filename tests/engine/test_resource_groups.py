"""Resource group rules for one node, on the real catalog: where the node goes, what is refused
(Milvus's texts), and that groups survive reopening the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheafdb.engine.resource_groups import (
    DEFAULT_RESOURCE_GROUP,
    NODE_ID,
    ResourceGroupConfig,
    ResourceGroups,
)
from sheafdb.errors import (
    ParameterInvalid,
    ResourceGroupAlreadyExists,
    ResourceGroupIllegalConfig,
    ResourceGroupNodeNotEnough,
    ResourceGroupNotFound,
)
from sheafdb.storage.catalog import SqliteCatalog


@pytest.fixture
def catalog(tmp_path: Path):
    cat = SqliteCatalog(tmp_path / "catalog.db")
    yield cat
    cat.close()


def test_the_node_starts_in_the_default_group(catalog: SqliteCatalog) -> None:
    groups = ResourceGroups(catalog)
    assert groups.names() == [DEFAULT_RESOURCE_GROUP]
    default = groups.get(DEFAULT_RESOURCE_GROUP)
    assert default.nodes == (NODE_ID,)
    assert default.capacity == 1_000_000


def test_a_group_requesting_a_node_takes_it_and_gives_it_back(catalog: SqliteCatalog) -> None:
    groups = ResourceGroups(catalog)
    groups.create("rg1", ResourceGroupConfig(requests=0, limits=0))
    assert groups.node_group() == DEFAULT_RESOURCE_GROUP
    groups.update({"rg1": ResourceGroupConfig(requests=1, limits=1)})
    assert groups.node_group() == "rg1"
    assert groups.get("rg1").capacity == 1
    # Over its limits the group gives the node to a group with room: the default one.
    groups.update({"rg1": ResourceGroupConfig(requests=0, limits=0)})
    assert groups.node_group() == DEFAULT_RESOURCE_GROUP
    # With no room anywhere the node stays home.
    groups.update({DEFAULT_RESOURCE_GROUP: ResourceGroupConfig(requests=0, limits=0)})
    assert groups.node_group() == DEFAULT_RESOURCE_GROUP


def test_transfer_node_rewrites_both_configs(catalog: SqliteCatalog) -> None:
    groups = ResourceGroups(catalog)
    groups.create("rg1", None)
    groups.transfer_node(DEFAULT_RESOURCE_GROUP, "rg1", 1)
    assert groups.get("rg1").config == ResourceGroupConfig(requests=1, limits=1)
    assert groups.node_group() == "rg1"
    with pytest.raises(
        ResourceGroupNodeNotEnough, match=r"\[rg=__default_resource_group\]\[currentNodeNum=0\]"
    ):
        groups.transfer_node(DEFAULT_RESOURCE_GROUP, "rg1", 1)
    with pytest.raises(ParameterInvalid, match=r"\[actual=invalid NumNode -1\]"):
        groups.transfer_node("rg1", DEFAULT_RESOURCE_GROUP, -1)
    with pytest.raises(ResourceGroupNotFound, match=r"resource group not found\[rg=nope\]"):
        groups.transfer_node("rg1", "nope", 1)


def test_refusals_with_milvus_texts(catalog: SqliteCatalog) -> None:
    groups = ResourceGroups(catalog)
    with pytest.raises(ParameterInvalid, match="resource group name couldn't be empty"):
        groups.create("", None)
    with pytest.raises(ParameterInvalid, match="can only contain numbers, letters and underscores"):
        groups.create("a-b", None)
    with pytest.raises(ResourceGroupIllegalConfig, match="requests or limits is required"):
        groups.create("rg", ResourceGroupConfig(requests=None, limits=1))
    with pytest.raises(ResourceGroupIllegalConfig, match="resource group in `TransferFrom` x not exist"):
        groups.create("rg", ResourceGroupConfig(requests=0, limits=0, transfer_from=("x",)))
    groups.create("rg", ResourceGroupConfig(requests=0, limits=1))
    groups.create("rg", ResourceGroupConfig(requests=0, limits=1))  # the same again: fine
    with pytest.raises(ResourceGroupAlreadyExists):
        groups.create("rg", ResourceGroupConfig(requests=0, limits=2))
    with pytest.raises(ParameterInvalid, match="resource group's limits node num is not 0"):
        groups.drop("rg")
    with pytest.raises(ParameterInvalid, match="default resource group is not deletable"):
        groups.drop(DEFAULT_RESOURCE_GROUP)
    groups.create("user", ResourceGroupConfig(requests=0, limits=0, transfer_to=("rg",)))
    groups.update({"rg": ResourceGroupConfig(requests=0, limits=0)})
    with pytest.raises(ParameterInvalid, match="resource group rg is used by user's `TransferTo`"):
        groups.drop("rg")
    groups.drop("user")
    groups.drop("rg")
    groups.drop("rg")  # already gone: Milvus answers success
    assert groups.names() == [DEFAULT_RESOURCE_GROUP]


def test_groups_and_the_node_survive_reopening(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    groups = ResourceGroups(catalog)
    groups.create("kept", ResourceGroupConfig(requests=1, limits=1))
    catalog.close()
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    reopened = ResourceGroups(catalog)
    assert sorted(reopened.names()) == sorted([DEFAULT_RESOURCE_GROUP, "kept"])
    assert reopened.node_group() == "kept"
    assert reopened.get("kept").config == ResourceGroupConfig(requests=1, limits=1)
    catalog.close()
