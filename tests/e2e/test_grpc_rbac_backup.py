"""BackupRBAC / RestoreRBAC against the real server (pymilvus has no helper: the raw stub, as
milvus-backup calls them), and CalcDistance answering as Milvus 2.6 does."""

from __future__ import annotations

import uuid

import pytest
from pymilvus import MilvusClient, MilvusException
from pymilvus.grpc_gen import milvus_pb2


def test_backup_drop_restore_round_trip(server_uri: str, client: MilvusClient) -> None:
    tag = uuid.uuid4().hex[:6]
    user, role, group = f"u_{tag}", f"r_{tag}", f"g_{tag}"
    client.create_user(user, "secret-pass")
    client.create_role(role)
    client.grant_role(user, role)
    client.create_privilege_group(group)
    client.add_privileges_to_group(group, ["Query", "Search"])
    client.grant_privilege_v2(role, group, "*", db_name="default")
    stub = client._get_connection()._stub

    backup = stub.BackupRBAC(milvus_pb2.BackupRBACMetaRequest())
    assert backup.status.code == 0
    meta = backup.RBAC_meta
    assert "root" not in [u.user for u in meta.users]
    assert {"admin", "public"}.isdisjoint(r.name for r in meta.roles)
    mine = [u for u in meta.users if u.user == user]
    assert len(mine) == 1 and [r.name for r in mine[0].roles] == [role]
    assert "secret-pass" not in mine[0].password
    assert [g.grantor.privilege.name for g in meta.grants if g.role.name == role] == [group]

    # Restoring over what exists is refused before anything is written.
    again = stub.RestoreRBAC(milvus_pb2.RestoreRBACMetaRequest(RBAC_meta=meta))
    assert again.code == 65535 and "already exists" in again.reason

    client.revoke_privilege_v2(role, group, "*", db_name="default")
    client.drop_privilege_group(group)
    client.drop_user(user)
    client.drop_role(role)
    keep = milvus_pb2.RBACMeta()
    keep.CopyFrom(meta)
    del keep.users[:]
    del keep.roles[:]
    del keep.grants[:]
    del keep.privilege_groups[:]
    keep.users.extend(u for u in meta.users if u.user == user)
    keep.roles.extend(r for r in meta.roles if r.name == role)
    keep.grants.extend(g for g in meta.grants if g.role.name == role)
    keep.privilege_groups.extend(g for g in meta.privilege_groups if g.group_name == group)
    restored = stub.RestoreRBAC(milvus_pb2.RestoreRBACMetaRequest(RBAC_meta=keep))
    assert restored.code == 0, restored.reason

    assert client.describe_user(user)["roles"] == (role,)
    grants = client.describe_role(role)["privileges"]
    assert [g["privilege"] for g in grants] == [group]
    # The user logs in with the password it had: the hash travelled, not the password.
    MilvusClient(uri=server_uri, token=f"{user}:secret-pass").list_collections()
    with pytest.raises(MilvusException):
        MilvusClient(uri=server_uri, token=f"{user}:wrong-pass").list_collections()
    client.revoke_privilege_v2(role, group, "*", db_name="default")
    client.drop_privilege_group(group)
    client.drop_user(user)
    client.drop_role(role)


def test_calc_distance_is_deprecated_as_in_milvus(client: MilvusClient) -> None:
    reply = client._get_connection()._stub.CalcDistance(milvus_pb2.CalcDistanceRequest())
    assert (reply.status.code, reply.status.reason) == (2, "service unavailable: CalcDistance deprecated")


def test_role_description_is_set_at_create_and_by_alter_role(client: MilvusClient) -> None:
    role = f"described_{uuid.uuid4().hex[:6]}"
    client.create_role(role, description="reads things")
    assert client.describe_role(role)["description"] == "reads things"
    client.alter_role(role, "reads and writes")
    assert client.describe_role(role)["description"] == "reads and writes"
    with pytest.raises(MilvusException, match="not found the role"):
        client.alter_role("no_such_role", "x")
    client.drop_role(role)
