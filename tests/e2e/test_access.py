"""Users, roles and privileges over gRPC through the real pymilvus MilvusClient, against the
session server (which runs with --auth)."""

from __future__ import annotations

import uuid

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException

PASSWORD = "secret-1"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def login(server_uri: str, user: str, password: str) -> MilvusClient:
    return MilvusClient(uri=server_uri, token=f"{user}:{password}")


def unauthenticated(call: object) -> None:
    """A call with credentials that are no longer valid: a raw UNAUTHENTICATED (no retries)."""
    with pytest.raises(grpc.RpcError) as raised:
        call()  # type: ignore[operator]
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_user_lifecycle(client: MilvusClient, server_uri: str) -> None:
    user = unique("u")
    client.create_user(user, PASSWORD)
    assert user in client.list_users() and "root" in client.list_users()
    assert client.describe_user(user) == {"user_name": user, "roles": (), "description": ""}
    # pymilvus shares one connection per address and token: each login below is a new token.
    old = login(server_uri, user, PASSWORD)
    old.list_collections()
    client.update_password(user, PASSWORD, "secret-2")
    unauthenticated(old.list_collections)
    new = login(server_uri, user, "secret-2")
    new.list_collections()
    client.drop_user(user)
    assert user not in client.list_users()
    assert client.describe_user(user) == {}
    unauthenticated(new.list_collections)


def test_wrong_password_fails_the_constructor(server_uri: str) -> None:
    with pytest.raises(MilvusException) as raised:
        MilvusClient(uri=server_uri, token="root:not-the-password")
    assert raised.value.code == 2


def test_user_rules(client: MilvusClient) -> None:
    user = unique("u")
    with pytest.raises(MilvusException) as raised:
        client.create_user(user, "short")
    assert raised.value.code == 1100 and "invalid password length" in raised.value.message
    client.create_user(user, PASSWORD)
    with pytest.raises(MilvusException):
        client.create_user(user, PASSWORD)
    with pytest.raises(MilvusException) as raised:
        client.update_password(user, "wrong-old", "secret-3")
    assert "old password not correct" in raised.value.message
    with pytest.raises(MilvusException) as raised:
        client.drop_user("root")
    assert raised.value.code == 1100
    client.drop_user(user)


def test_roles_and_grants(client: MilvusClient) -> None:
    user, role = unique("u"), unique("r")
    client.create_user(user, PASSWORD)
    client.create_role(role)
    assert {"admin", "public", role} <= set(client.list_roles())
    with pytest.raises(MilvusException) as raised:
        client.grant_privilege(role, "Bogus", "Search", "books")
    assert raised.value.code == 1100 and "not found the object type" in raised.value.message
    with pytest.raises(MilvusException) as raised:
        client.grant_privilege(role, "Collection", "NoSuchPrivilege", "books")
    assert raised.value.code == 1100 and "NoSuchPrivilege" in raised.value.message
    client.grant_role(user, role)
    assert client.describe_user(user)["roles"] == (role,)
    client.grant_privilege(role, "Collection", "Search", "books")
    client.grant_privilege_v2(role, "ClusterReadOnly", "*")
    privileges = {(p["object_type"], p["object_name"], p["privilege"], p["db_name"], p["grantor_name"])
                  for p in client.describe_role(role)["privileges"]}  # fmt: skip
    assert privileges == {
        ("Collection", "books", "Search", "default", "root"),
        ("Global", "*", "ClusterReadOnly", "*", "root"),
    }
    with pytest.raises(MilvusException) as raised:
        client.drop_role(role)  # it still holds privileges
    assert "revoke" in raised.value.message.lower()
    client.revoke_privilege(role, "Collection", "Search", "books")
    client.revoke_privilege_v2(role, "ClusterReadOnly", "*")
    assert client.describe_role(role)["privileges"] == []
    client.revoke_role(user, role)
    assert client.describe_user(user)["roles"] == ()
    client.drop_role(role)
    assert role not in client.list_roles()
    with pytest.raises(MilvusException):
        client.drop_role("admin")
    with pytest.raises(MilvusException):
        client.grant_role(user, unique("missing"))
    client.drop_user(user)


def test_force_drop_role_with_privileges(client: MilvusClient) -> None:
    role = unique("r")
    client.create_role(role)
    client.grant_privilege(role, "Collection", "Query", "*")
    client.drop_role(role, force_drop=True)
    assert role not in client.list_roles()


def test_privilege_groups(client: MilvusClient) -> None:
    group = unique("g")
    client.create_privilege_group(group)
    client.add_privileges_to_group(group, ["Query", "Search"])
    groups = {g["privilege_group"]: set(g["privileges"]) for g in client.list_privilege_groups()}
    assert groups[group] == {"Query", "Search"}
    assert "Load" in groups["CollectionReadWrite"]
    client.remove_privileges_from_group(group, ["Search"])
    groups = {g["privilege_group"]: set(g["privileges"]) for g in client.list_privilege_groups()}
    assert groups[group] == {"Query"}
    client.drop_privilege_group(group)
    assert group not in {g["privilege_group"] for g in client.list_privilege_groups()}


def test_load_needs_the_load_privilege(client: MilvusClient, server_uri: str) -> None:
    user, role, name = unique("u"), unique("r"), unique("guarded")
    client.create_collection(name, dimension=4)
    client.release_collection(name)
    client.create_user(user, PASSWORD)
    client.create_role(role)
    client.grant_role(user, role)
    client.grant_privilege_v2(role, "CollectionReadOnly", name)
    limited = login(server_uri, user, PASSWORD)
    with pytest.raises(grpc.RpcError) as raised:
        limited.load_collection(name)
    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert raised.value.details() == f"Load: permission deny to {user} in the `default` database"
    client.grant_privilege_v2(role, "CollectionReadWrite", name)
    limited.load_collection(name)
    assert limited.get_load_state(name)["state"].name == "Loaded"
    client.drop_collection(name)
    client.revoke_privilege_v2(role, "CollectionReadOnly", name)
    client.revoke_privilege_v2(role, "CollectionReadWrite", name)
    client.drop_role(role)
    client.drop_user(user)


def test_a_user_changes_their_own_password(client: MilvusClient, server_uri: str) -> None:
    user = unique("u")
    client.create_user(user, PASSWORD)
    own = login(server_uri, user, PASSWORD)
    own.update_password(user, PASSWORD, "secret-9")
    unauthenticated(own.list_collections)
    renewed = login(server_uri, user, "secret-9")
    assert renewed.describe_user(user)["user_name"] == user
    with pytest.raises(grpc.RpcError) as raised:
        renewed.create_user(unique("u"), PASSWORD)
    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
    client.drop_user(user)
