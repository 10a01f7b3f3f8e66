"""Handlers for users, roles, privileges and privilege groups (Milvus's RBAC RPCs).

Translation only: the rules live in ``engine.access.AccessControl``. Who may call which of
these is checked before the handler runs, by the authentication interceptor (``api.auth``).
Passwords arrive base64-encoded (pymilvus and the other SDKs encode them); an empty
``db_name`` means the database the client is using.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import TYPE_CHECKING

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from sheafdb.api.auth import current_user
from sheafdb.api.grpc.context import RpcBase, database_of
from sheafdb.api.status import success
from sheafdb.engine.access import BUILTIN_GROUPS, COLLECTION, GLOBAL, USER, AccessControl, grant_target_v2
from sheafdb.errors import ParameterInvalid, UnexpectedError, Unsupported, invalid

if TYPE_CHECKING:
    from sheafdb.storage.credentials import Grant

OBJECT_TYPES = (COLLECTION, GLOBAL, USER)
ROLE_NOT_FOUND = "not found the role, maybe the role isn't existed or internal system error"
ROLE_HAS_PRIVILEGES = "fail to drop the role that it has privileges. Use REVOKE API to revoke privileges"


def decode_password(encoded: str) -> str:
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, ValueError) as exc:  # ValueError: not ASCII, or not UTF-8 once decoded
        raise invalid("decode password fail") from exc


def _grant_entity(grant: Grant) -> milvus_pb2.GrantEntity:
    return milvus_pb2.GrantEntity(
        role=milvus_pb2.RoleEntity(name=grant.role),
        object=milvus_pb2.ObjectEntity(name=grant.object_type),
        object_name=grant.object_name,
        db_name=grant.db_name,
        grantor=milvus_pb2.GrantorEntity(
            user=milvus_pb2.UserEntity(name=grant.grantor),
            privilege=milvus_pb2.PrivilegeEntity(name=grant.privilege),
        ),
    )


def _roles(names: Iterable[str]) -> list[milvus_pb2.RoleEntity]:
    return [milvus_pb2.RoleEntity(name=name) for name in names]


class AccessRpcs(RpcBase):
    def _control(self) -> AccessControl:
        if self.access is None:
            raise Unsupported.feature("user management without a credential store")
        return self.access

    def _require_role(self, role: str) -> None:
        if not role:
            raise invalid("the role name is empty")
        if role not in self._control().list_roles():
            raise ParameterInvalid(f"{ROLE_NOT_FOUND}: {role}")

    # -- users ---------------------------------------------------------------------------------
    def CreateCredential(
        self, request: milvus_pb2.CreateCredentialRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self._control().create_user(request.username, decode_password(request.password))
        return success()

    def UpdateCredential(
        self, request: milvus_pb2.UpdateCredentialRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self._control().update_password(
            request.username, decode_password(request.oldPassword), decode_password(request.newPassword)
        )
        return success()

    def DeleteCredential(
        self, request: milvus_pb2.DeleteCredentialRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self._control().drop_user(request.username)
        return success()

    def ListCredUsers(
        self, request: milvus_pb2.ListCredUsersRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ListCredUsersResponse:
        return milvus_pb2.ListCredUsersResponse(status=success(), usernames=self._control().list_users())

    def SelectUser(
        self, request: milvus_pb2.SelectUserRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.SelectUserResponse:
        access = self._control()
        name = request.user.name if request.HasField("user") else ""
        # A named user that does not exist is an empty answer, not an error (Milvus).
        users = ([name] if access.has_user(name) else []) if name else access.list_users()
        results = [
            milvus_pb2.UserResult(
                user=milvus_pb2.UserEntity(name=user),
                roles=_roles(access.roles_of(user)) if request.include_role_info else [],
            )
            for user in users
        ]
        return milvus_pb2.SelectUserResponse(status=success(), results=results)

    # -- roles ---------------------------------------------------------------------------------
    def CreateRole(
        self, request: milvus_pb2.CreateRoleRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self._control().create_role(request.entity.name)
        return success()

    def DropRole(
        self, request: milvus_pb2.DropRoleRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        access = self._control()
        self._require_role(request.role_name)
        if not request.force_drop and access.grants_of(request.role_name):
            raise UnexpectedError(ROLE_HAS_PRIVILEGES)
        access.drop_role(request.role_name)
        return success()

    def OperateUserRole(
        self, request: milvus_pb2.OperateUserRoleRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        access = self._control()
        if request.type == milvus_pb2.AddUserToRole:
            access.grant_role(request.username, request.role_name)
        elif request.type == milvus_pb2.RemoveUserFromRole:
            if not access.has_user(request.username):
                raise ParameterInvalid(f"not found the user, username: {request.username}")
            self._require_role(request.role_name)
            access.revoke_role(request.username, request.role_name)
        else:
            raise invalid(f"invalid operate user role type: {request.type}")
        return success()

    def SelectRole(
        self, request: milvus_pb2.SelectRoleRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.SelectRoleResponse:
        access = self._control()
        name = request.role.name if request.HasField("role") else ""
        known = access.list_roles()
        roles = ([name] if name in known else []) if name else known
        results = [
            milvus_pb2.RoleResult(
                role=milvus_pb2.RoleEntity(name=role),
                users=[milvus_pb2.UserEntity(name=u) for u in access.users_in_role(role)]
                if request.include_user_info
                else [],
            )
            for role in roles
        ]
        return milvus_pb2.SelectRoleResponse(status=success(), results=results)

    # -- privileges ----------------------------------------------------------------------------
    def SelectGrant(
        self, request: milvus_pb2.SelectGrantRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.SelectGrantResponse:
        entity = request.entity
        self._require_role(entity.role.name)
        object_type = entity.object.name if entity.HasField("object") else ""
        grants = [
            grant
            for grant in self._control().grants_of(entity.role.name, database_of(context, entity.db_name))
            if object_type in ("", grant.object_type) and entity.object_name in ("", grant.object_name)
        ]
        return milvus_pb2.SelectGrantResponse(status=success(), entities=[_grant_entity(g) for g in grants])

    def OperatePrivilege(
        self, request: milvus_pb2.OperatePrivilegeRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        entity = request.entity
        object_type = entity.object.name
        if object_type not in OBJECT_TYPES:
            raise invalid(
                f"not found the object type[name: {object_type}], "
                f"supported the object types: {list(OBJECT_TYPES)}"
            )
        if not entity.object_name:
            raise invalid("the object name in the grant entity is empty")
        self._operate(
            request.type,
            entity.role.name,
            object_type,
            entity.object_name,
            entity.grantor.privilege.name,
            database_of(context, entity.db_name),
        )
        return success()

    def OperatePrivilegeV2(
        self, request: milvus_pb2.OperatePrivilegeV2Request, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        privilege = request.grantor.privilege.name
        object_type, db, object_name = grant_target_v2(
            privilege, database_of(context, request.db_name), request.collection_name
        )
        self._operate(request.type, request.role.name, object_type, object_name, privilege, db)
        return success()

    def _operate(
        self, operation: int, role: str, object_type: str, object_name: str, privilege: str, db: str
    ) -> None:
        access = self._control()
        if not privilege:
            raise invalid("the privilege name in the grant entity is empty")
        self._require_role(role)
        if operation == milvus_pb2.Grant:
            access.grant(role, object_type, object_name, privilege, db, current_user() or "")
        elif operation == milvus_pb2.Revoke:
            access.revoke(role, object_type, object_name, privilege, db)
        else:
            raise invalid(f"invalid operate privilege type: {operation}")

    # -- privilege groups ----------------------------------------------------------------------
    def CreatePrivilegeGroup(
        self, request: milvus_pb2.CreatePrivilegeGroupRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self._control().create_privilege_group(request.group_name)
        return success()

    def DropPrivilegeGroup(
        self, request: milvus_pb2.DropPrivilegeGroupRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        access = self._control()
        name = request.group_name
        if name in BUILTIN_GROUPS:
            raise invalid(f"the privilege group name [{name}] is defined by built in privilege groups")
        for role in access.list_roles():
            if any(grant.privilege == name for grant in access.grants_of(role)):
                raise invalid(f"privilege group [{name}] is being used by role [{role}]")
        access.drop_privilege_group(name)
        return success()

    def ListPrivilegeGroups(
        self, request: milvus_pb2.ListPrivilegeGroupsRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ListPrivilegeGroupsResponse:
        groups = [
            milvus_pb2.PrivilegeGroupInfo(
                group_name=name, privileges=[milvus_pb2.PrivilegeEntity(name=p) for p in privileges]
            )
            for name, privileges in self._control().list_privilege_groups().items()
        ]
        return milvus_pb2.ListPrivilegeGroupsResponse(status=success(), privilege_groups=groups)

    def OperatePrivilegeGroup(
        self, request: milvus_pb2.OperatePrivilegeGroupRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        access = self._control()
        privileges = [p.name for p in request.privileges]
        if not privileges:
            raise invalid("the privileges of the privilege group are empty")
        if request.type == milvus_pb2.AddPrivilegesToGroup:
            access.add_privileges_to_group(request.group_name, privileges)
        elif request.type == milvus_pb2.RemovePrivilegesFromGroup:
            access.remove_privileges_from_group(request.group_name, privileges)
        else:
            raise invalid(f"invalid operate privilege group type: {request.type}")
        return success()
