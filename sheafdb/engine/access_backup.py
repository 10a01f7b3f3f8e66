"""RBAC backup and restore (Milvus's BackupRBAC / RestoreRBAC): users with their password
records and roles, custom roles, their grants, and custom privilege groups.

As Milvus, the backup leaves out what every server has (the ``root`` user, the ``admin`` and
``public`` roles, the built-in privilege groups); a restore first checks that nothing it would
create exists already and that everything it names will exist, then writes it all. Passwords
travel as the stored salt and hash, never in clear (Milvus's "encrypted password").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sheafdb.errors import UnexpectedError
from sheafdb.storage.credentials import CredentialStore, Grant

ROOT_USER = "root"
DEFAULT_ROLES = frozenset({"admin", "public"})


@dataclass(frozen=True)
class UserBackup:
    name: str
    password_record: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class RbacBackup:
    users: tuple[UserBackup, ...]
    roles: tuple[str, ...]
    grants: tuple[Grant, ...]
    privilege_groups: Mapping[str, tuple[str, ...]]


def backup_rbac(store: CredentialStore) -> RbacBackup:
    users = []
    for name in store.users():
        record = store.password_record(name)
        if name != ROOT_USER and record is not None:
            users.append(UserBackup(name, record, tuple(store.roles_of(name))))
    roles = tuple(r for r in store.roles() if r not in DEFAULT_ROLES)
    grants = tuple(g for role in roles for g in store.grants_of(role))
    groups = {name: tuple(privileges) for name, privileges in store.groups().items()}
    return RbacBackup(tuple(users), roles, grants, groups)


def restore_rbac(store: CredentialStore, backup: RbacBackup, known_privileges: frozenset[str]) -> None:
    """Check everything, then write (Milvus's order); plain errors as Milvus gives them."""
    roles_now = set(store.roles())
    groups_now = set(store.groups())
    for role in backup.roles:
        if role in roles_now:
            raise UnexpectedError(f"role [{role}] already exists")
    for group in backup.privilege_groups:
        if group in groups_now:
            raise UnexpectedError(f"privilege group [{group}] already exists")
    roles_after = roles_now | set(backup.roles)
    groups_after = groups_now | set(backup.privilege_groups)
    for grant in backup.grants:
        if grant.role not in roles_after:
            raise UnexpectedError(f"role [{grant.role}] does not exist")
        if grant.privilege not in known_privileges and grant.privilege not in groups_after:
            raise UnexpectedError(f"privilege [{grant.privilege}] does not exist")
    users_now = set(store.users())
    for user in backup.users:
        if user.name in users_now:
            raise UnexpectedError(f"user [{user.name}] already exists")
        for role in user.roles:
            if role not in roles_after:
                raise UnexpectedError(f"role [{role}] does not exist")
    for role in backup.roles:
        store.add_role(role)
    for group, privileges in backup.privilege_groups.items():
        store.add_group(group)
        store.add_group_privileges(group, list(privileges))
    for grant in backup.grants:
        store.add_grant(grant)
    for user in backup.users:
        store.add_user_record(user.name, user.password_record)
        for role in user.roles:
            store.add_user_role(user.name, role)
