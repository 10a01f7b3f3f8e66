"""BackupRBAC and RestoreRBAC: the RBAC state as Milvus's ``RBACMeta`` message, both ways."""

from __future__ import annotations

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from sheafdb.api.grpc.access_rpcs import AccessRpcs, grant_entity
from sheafdb.api.status import success
from sheafdb.engine.access_backup import RbacBackup, UserBackup
from sheafdb.storage.credentials import Grant


def _to_proto(backup: RbacBackup) -> milvus_pb2.RBACMeta:
    return milvus_pb2.RBACMeta(
        users=[
            milvus_pb2.UserInfo(
                user=u.name,
                password=u.password_record,
                roles=[milvus_pb2.RoleEntity(name=r) for r in u.roles],
            )
            for u in backup.users
        ],
        roles=[milvus_pb2.RoleEntity(name=r) for r in backup.roles],
        grants=[grant_entity(g) for g in backup.grants],
        privilege_groups=[
            milvus_pb2.PrivilegeGroupInfo(
                group_name=name, privileges=[milvus_pb2.PrivilegeEntity(name=p) for p in privileges]
            )
            for name, privileges in backup.privilege_groups.items()
        ],
    )


def _from_proto(meta: milvus_pb2.RBACMeta) -> RbacBackup:
    return RbacBackup(
        users=tuple(UserBackup(u.user, u.password, tuple(r.name for r in u.roles)) for u in meta.users),
        roles=tuple(r.name for r in meta.roles),
        grants=tuple(
            Grant(
                g.role.name,
                g.object.name,
                g.object_name,
                g.db_name,
                g.grantor.privilege.name,
                g.grantor.user.name,
            )
            for g in meta.grants
        ),
        privilege_groups={g.group_name: tuple(p.name for p in g.privileges) for g in meta.privilege_groups},
    )


class RbacBackupRpcs(AccessRpcs):
    def BackupRBAC(
        self, request: milvus_pb2.BackupRBACMetaRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.BackupRBACMetaResponse:
        return milvus_pb2.BackupRBACMetaResponse(
            status=success(), RBAC_meta=_to_proto(self._control().backup())
        )

    def RestoreRBAC(
        self, request: milvus_pb2.RestoreRBACMetaRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self._control().restore(_from_proto(request.RBAC_meta))
        return success()
