"""``/v2/vectordb/users/*`` and ``/v2/vectordb/roles/*``: access control over REST."""

from __future__ import annotations

from typing import Any

from sheafdb.api.rest.envelope import Call, Endpoint
from sheafdb.engine.access import AccessControl, grant_target_v2
from sheafdb.errors import Unsupported


def _access(call: Call) -> AccessControl:
    if call.access is None:
        raise Unsupported.feature("user management without a credential store")
    return call.access


def list_users(call: Call) -> list[str]:
    return _access(call).list_users()


def describe_user(call: Call) -> list[str]:
    return _access(call).roles_of(call.text("userName"))


def create_user(call: Call) -> dict[str, Any]:
    _access(call).create_user(call.text("userName"), call.text("password"))
    return {}


def update_password(call: Call) -> dict[str, Any]:
    _access(call).update_password(call.text("userName"), call.text("password"), call.text("newPassword"))
    return {}


def drop_user(call: Call) -> dict[str, Any]:
    _access(call).drop_user(call.text("userName"))
    return {}


def grant_role(call: Call) -> dict[str, Any]:
    _access(call).grant_role(call.text("userName"), call.text("roleName"))
    return {}


def revoke_role(call: Call) -> dict[str, Any]:
    _access(call).revoke_role(call.text("userName"), call.text("roleName"))
    return {}


def list_roles(call: Call) -> list[str]:
    return _access(call).list_roles()


def describe_role(call: Call) -> list[dict[str, str]]:
    db = call.body.get("dbName") or None
    return [
        {
            "objectType": g.object_type,
            "objectName": g.object_name,
            "privilege": g.privilege,
            "dbName": g.db_name,
            "grantor": g.grantor,
        }
        for g in _access(call).grants_of(call.text("roleName"), db)
    ]


def create_role(call: Call) -> dict[str, Any]:
    _access(call).create_role(call.text("roleName"))
    return {}


def drop_role(call: Call) -> dict[str, Any]:
    _access(call).drop_role(call.text("roleName"))
    return {}


def grant_privilege(call: Call) -> dict[str, Any]:
    _access(call).grant(
        call.text("roleName"),
        call.text("objectType"),
        call.text("objectName"),
        call.text("privilege"),
        call.db,
        call.user or "",
    )
    return {}


def revoke_privilege(call: Call) -> dict[str, Any]:
    _access(call).revoke(
        call.text("roleName"),
        call.text("objectType"),
        call.text("objectName"),
        call.text("privilege"),
        call.db,
    )
    return {}


def grant_privilege_v2(call: Call) -> dict[str, Any]:
    privilege = call.text("privilege")
    object_type, db, object_name = grant_target_v2(privilege, call.db, str(call.get("collectionName", "*")))
    _access(call).grant(call.text("roleName"), object_type, object_name, privilege, db, call.user or "")
    return {}


def revoke_privilege_v2(call: Call) -> dict[str, Any]:
    privilege = call.text("privilege")
    object_type, db, object_name = grant_target_v2(privilege, call.db, str(call.get("collectionName", "*")))
    _access(call).revoke(call.text("roleName"), object_type, object_name, privilege, db)
    return {}


def create_privilege_group(call: Call) -> dict[str, Any]:
    _access(call).create_privilege_group(call.text("privilegeGroupName"))
    return {}


def drop_privilege_group(call: Call) -> dict[str, Any]:
    _access(call).drop_privilege_group(call.text("privilegeGroupName"))
    return {}


def list_privilege_groups(call: Call) -> dict[str, Any]:
    groups = _access(call).list_privilege_groups()
    return {
        "privilegeGroups": [
            {"privilegeGroupName": name, "privileges": ",".join(privileges)}
            for name, privileges in groups.items()
        ]
    }


def add_privileges_to_group(call: Call) -> dict[str, Any]:
    privileges = [str(p) for p in call.required("privileges")]
    _access(call).add_privileges_to_group(call.text("privilegeGroupName"), privileges)
    return {}


def remove_privileges_from_group(call: Call) -> dict[str, Any]:
    privileges = [str(p) for p in call.required("privileges")]
    _access(call).remove_privileges_from_group(call.text("privilegeGroupName"), privileges)
    return {}


ENDPOINTS = (
    Endpoint("users/list", list_users, "ListCredUsers"),
    Endpoint("users/describe", describe_user, "SelectUser", object_key="userName"),
    Endpoint("users/create", create_user, "CreateCredential"),
    Endpoint("users/update_password", update_password, "UpdateCredential", object_key="userName"),
    Endpoint("users/drop", drop_user, "DeleteCredential"),
    Endpoint("users/grant_role", grant_role, "OperateUserRole"),
    Endpoint("users/revoke_role", revoke_role, "OperateUserRole"),
    Endpoint("roles/list", list_roles, "SelectRole"),
    Endpoint("roles/describe", describe_role, "SelectGrant"),
    Endpoint("roles/create", create_role, "CreateRole"),
    Endpoint("roles/drop", drop_role, "DropRole"),
    Endpoint("roles/grant_privilege", grant_privilege, "OperatePrivilege"),
    Endpoint("roles/revoke_privilege", revoke_privilege, "OperatePrivilege"),
    Endpoint("roles/grant_privilege_v2", grant_privilege_v2, "OperatePrivilegeV2"),
    Endpoint("roles/revoke_privilege_v2", revoke_privilege_v2, "OperatePrivilegeV2"),
    Endpoint("privilege_groups/create", create_privilege_group, "CreatePrivilegeGroup"),
    Endpoint("privilege_groups/drop", drop_privilege_group, "DropPrivilegeGroup"),
    Endpoint("privilege_groups/list", list_privilege_groups, "ListPrivilegeGroups"),
    Endpoint("privilege_groups/add_privileges_to_group", add_privileges_to_group, "OperatePrivilegeGroup"),
    Endpoint(
        "privilege_groups/remove_privileges_from_group", remove_privileges_from_group, "OperatePrivilegeGroup"
    ),
)
