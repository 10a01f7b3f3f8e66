"""Users, roles and privileges: who may call what (Milvus's RBAC).

Off by default, like Milvus. When on, the user ``root`` (password ``Milvus`` until changed) and
the roles ``admin`` and ``public`` always exist; ``root`` and members of ``admin`` may do
everything; every user implicitly holds ``public``. A privilege is granted to a role on an
object (``Global`` / ``Collection`` / ``User``, a name or ``*``) in a database (or ``*``); a
granted privilege may be a privilege group (built-in ``CollectionReadOnly`` ... or custom).

The API layers name the operation (the gRPC method name, which REST endpoints map onto) and
the object; ``OPERATIONS`` says which privilege that takes.

Concurrency: ``_cache_lock`` guards the two caches (verified passwords, effective grants per
user); every change to users, roles, grants or groups clears them. The store has its own lock.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sheafdb.engine.access_backup import RbacBackup, backup_rbac, restore_rbac
from sheafdb.errors import CredentialInvalid, ParameterInvalid, PermissionDenied, UnexpectedError, invalid
from sheafdb.storage.credentials import CredentialStore, Grant, SqliteCredentialStore

ROOT_USER = "root"
DEFAULT_ROOT_PASSWORD = "Milvus"
ADMIN_ROLE = "admin"
PUBLIC_ROLE = "public"
MIN_PASSWORD_LENGTH = 6
MAX_PASSWORD_LENGTH = 256
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")

GLOBAL = "Global"
COLLECTION = "Collection"
USER = "User"


@dataclass(frozen=True)
class Privilege:
    object_type: str
    name: str


def _p(object_type: str, name: str) -> Privilege:
    return Privilege(object_type, name)


# Operation (gRPC method name) -> the privilege it needs. Operations not listed need only a
# valid login (Connect, GetVersion, CheckHealth ...).
OPERATIONS: Mapping[str, Privilege] = {
    # collection objects
    "CreateIndex": _p(COLLECTION, "CreateIndex"),
    "AlterIndex": _p(COLLECTION, "CreateIndex"),
    "DropIndex": _p(COLLECTION, "DropIndex"),
    "DescribeIndex": _p(COLLECTION, "IndexDetail"),
    "GetIndexState": _p(COLLECTION, "IndexDetail"),
    "GetIndexStatistics": _p(COLLECTION, "IndexDetail"),
    "GetIndexBuildProgress": _p(COLLECTION, "IndexDetail"),
    "LoadCollection": _p(COLLECTION, "Load"),
    "LoadPartitions": _p(COLLECTION, "Load"),
    "ReleaseCollection": _p(COLLECTION, "Release"),
    "ReleasePartitions": _p(COLLECTION, "Release"),
    "GetLoadState": _p(COLLECTION, "GetLoadState"),
    "GetLoadingProgress": _p(COLLECTION, "GetLoadState"),
    "Insert": _p(COLLECTION, "Insert"),
    "Delete": _p(COLLECTION, "Delete"),
    "Upsert": _p(COLLECTION, "Upsert"),
    "Search": _p(COLLECTION, "Search"),
    "HybridSearch": _p(COLLECTION, "Search"),
    "Query": _p(COLLECTION, "Query"),
    "Flush": _p(COLLECTION, "Flush"),
    "GetFlushState": _p(COLLECTION, "GetFlushState"),
    "GetCollectionStatistics": _p(COLLECTION, "GetStatistics"),
    "GetPartitionStatistics": _p(COLLECTION, "GetStatistics"),
    "ManualCompaction": _p(COLLECTION, "Compaction"),
    "CreateSnapshot": _p(COLLECTION, "CreateSnapshot"),
    "DropSnapshot": _p(COLLECTION, "DropSnapshot"),
    "DescribeSnapshot": _p(COLLECTION, "DescribeSnapshot"),
    "ListSnapshots": _p(COLLECTION, "ListSnapshots"),
    "RestoreSnapshot": _p(COLLECTION, "RestoreSnapshot"),
    "PinSnapshotData": _p(COLLECTION, "PinSnapshotData"),
    "UnpinSnapshotData": _p(GLOBAL, "UnpinSnapshotData"),
    "GetRestoreSnapshotState": _p(GLOBAL, "RestoreSnapshot"),
    "ListRestoreSnapshotJobs": _p(GLOBAL, "RestoreSnapshot"),
    "ExportSnapshot": _p(COLLECTION, "ExportSnapshot"),
    "GetExportSnapshotState": _p(GLOBAL, "ExportSnapshot"),
    "Import": _p(COLLECTION, "Import"),
    "ListImportTasks": _p(COLLECTION, "Import"),
    "CreatePartition": _p(COLLECTION, "CreatePartition"),
    "DropPartition": _p(COLLECTION, "DropPartition"),
    "ShowPartitions": _p(COLLECTION, "ShowPartitions"),
    "HasPartition": _p(COLLECTION, "HasPartition"),
    "DescribeCollection": _p(COLLECTION, "DescribeCollection"),
    "HasCollection": _p(COLLECTION, "DescribeCollection"),
    # database / global objects
    "ShowCollections": _p(GLOBAL, "ShowCollections"),
    "CreateCollection": _p(GLOBAL, "CreateCollection"),
    "DropCollection": _p(GLOBAL, "DropCollection"),
    "AlterCollection": _p(GLOBAL, "CreateCollection"),
    "AlterCollectionField": _p(GLOBAL, "CreateCollection"),
    "AddCollectionField": _p(GLOBAL, "CreateCollection"),
    "TruncateCollection": _p(GLOBAL, "DropCollection"),
    "RenameCollection": _p(GLOBAL, "RenameCollection"),
    "CreateAlias": _p(GLOBAL, "CreateAlias"),
    "AlterAlias": _p(GLOBAL, "CreateAlias"),
    "DropAlias": _p(GLOBAL, "DropAlias"),
    "DescribeAlias": _p(GLOBAL, "DescribeAlias"),
    "ListAliases": _p(GLOBAL, "ListAliases"),
    "CreateDatabase": _p(GLOBAL, "CreateDatabase"),
    "DropDatabase": _p(GLOBAL, "DropDatabase"),
    "AlterDatabase": _p(GLOBAL, "AlterDatabase"),
    "DescribeDatabase": _p(GLOBAL, "DescribeDatabase"),
    # users and roles
    "CreateCredential": _p(GLOBAL, "CreateOwnership"),
    "DeleteCredential": _p(GLOBAL, "DropOwnership"),
    "UpdateCredential": _p(USER, "UpdateUser"),
    "ListCredUsers": _p(GLOBAL, "SelectOwnership"),
    "SelectUser": _p(USER, "SelectUser"),
    "CreateRole": _p(GLOBAL, "CreateOwnership"),
    "AlterRole": _p(GLOBAL, "CreateOwnership"),
    "DropRole": _p(GLOBAL, "DropOwnership"),
    "OperateUserRole": _p(GLOBAL, "ManageOwnership"),
    "OperatePrivilege": _p(GLOBAL, "ManageOwnership"),
    "OperatePrivilegeV2": _p(GLOBAL, "ManageOwnership"),
    "SelectRole": _p(GLOBAL, "SelectOwnership"),
    "SelectGrant": _p(GLOBAL, "SelectOwnership"),
    "CreatePrivilegeGroup": _p(GLOBAL, "CreatePrivilegeGroup"),
    "DropPrivilegeGroup": _p(GLOBAL, "DropPrivilegeGroup"),
    "ListPrivilegeGroups": _p(GLOBAL, "ListPrivilegeGroups"),
    "OperatePrivilegeGroup": _p(GLOBAL, "OperatePrivilegeGroup"),
    # resource groups and cluster-wide maintenance
    "CreateResourceGroup": _p(GLOBAL, "CreateResourceGroup"),
    "DropResourceGroup": _p(GLOBAL, "DropResourceGroup"),
    "DescribeResourceGroup": _p(GLOBAL, "DescribeResourceGroup"),
    "ListResourceGroups": _p(GLOBAL, "ListResourceGroups"),
    "UpdateResourceGroups": _p(GLOBAL, "UpdateResourceGroups"),
    "TransferNode": _p(GLOBAL, "TransferNode"),
    "TransferReplica": _p(GLOBAL, "TransferReplica"),
    "FlushAll": _p(GLOBAL, "FlushAll"),
    "BackupRBAC": _p(GLOBAL, "BackupRBAC"),
    "RestoreRBAC": _p(GLOBAL, "RestoreRBAC"),
}

_COLLECTION_READ_ONLY = (
    "Query", "Search", "IndexDetail", "GetFlushState", "GetLoadState", "GetLoadingProgress",
    "HasPartition", "ShowPartitions", "ListAliases", "DescribeCollection", "DescribeAlias", "GetStatistics",
)  # fmt: skip
_COLLECTION_READ_WRITE = (
    *_COLLECTION_READ_ONLY, "Load", "Release", "Insert", "Delete", "Upsert", "Import", "Flush", "Compaction",
    "LoadBalance", "CreateIndex", "DropIndex", "CreatePartition", "DropPartition",
)  # fmt: skip
_DATABASE_READ_ONLY = ("ShowCollections", "DescribeDatabase")
_CLUSTER_READ_ONLY = (
    "ListDatabases", "SelectOwnership", "SelectUser", "DescribeResourceGroup", "ListResourceGroups",
    "ListPrivilegeGroups",
)  # fmt: skip
_CLUSTER_READ_WRITE = (
    *_CLUSTER_READ_ONLY,
    "FlushAll",
    "TransferNode",
    "TransferReplica",
    "UpdateResourceGroups",
)

# Milvus's built-in privilege groups (docs: privilege_group).
BUILTIN_GROUPS: Mapping[str, frozenset[str]] = {
    "CollectionReadOnly": frozenset(_COLLECTION_READ_ONLY),
    "CollectionReadWrite": frozenset(_COLLECTION_READ_WRITE),
    "CollectionAdmin": frozenset((*_COLLECTION_READ_WRITE, "CreateAlias", "DropAlias")),
    "DatabaseReadOnly": frozenset(_DATABASE_READ_ONLY),
    "DatabaseReadWrite": frozenset((*_DATABASE_READ_ONLY, "AlterDatabase")),
    "DatabaseAdmin": frozenset((*_DATABASE_READ_ONLY, "AlterDatabase", "CreateCollection", "DropCollection")),
    "ClusterReadOnly": frozenset(_CLUSTER_READ_ONLY),
    "ClusterReadWrite": frozenset(_CLUSTER_READ_WRITE),
    "ClusterAdmin": frozenset(
        (
            *_CLUSTER_READ_WRITE, "BackupRBAC", "RestoreRBAC", "CreateDatabase", "DropDatabase",
            "CreateOwnership", "DropOwnership", "ManageOwnership", "CreateResourceGroup", "DropResourceGroup",
            "UpdateUser",
            "RenameCollection", "CreatePrivilegeGroup", "DropPrivilegeGroup", "OperatePrivilegeGroup",
        )
    ),
}  # fmt: skip


def _level(tier: str) -> frozenset[str]:
    """The privileges and built-in groups of one level: ``Collection``, ``Database``, ``Cluster``."""
    groups = [name for name in BUILTIN_GROUPS if name.startswith(tier)]
    return frozenset(groups).union(*(BUILTIN_GROUPS[name] for name in groups))


_COLLECTION_LEVEL = _level("Collection")
_DATABASE_LEVEL = _level("Database")
_CLUSTER_LEVEL = _level("Cluster")


def grant_target_v2(privilege: str, db: str, collection: str) -> tuple[str, str, str]:
    """(object type, database, object name) of a ``grant_privilege_v2``, which names no object
    type: the privilege's level decides it (Milvus's rule). Custom groups and ``*`` apply per
    collection."""
    if privilege in _DATABASE_LEVEL:
        return GLOBAL, db, "*"
    if privilege in _CLUSTER_LEVEL:
        return GLOBAL, "*", "*"
    return COLLECTION, db, collection or "*"


# What every user may do through the implicit ``public`` role (as Milvus's default).
_PUBLIC_PRIVILEGES = frozenset({"DescribeCollection", "ShowCollections", "IndexDetail"})
_ALL = frozenset({"*", "All", "PrivilegeAll"})
# Database-level groups that list collections (DatabaseReadOnly ...): granted, a listing shows
# every collection of their database.
_LISTS_EVERY_COLLECTION = frozenset(
    name for name, held in BUILTIN_GROUPS.items() if "ShowCollections" in held
)


class _SeenVersion(threading.local):
    """The store's change counter as this thread last saw it in a running call (or None)."""

    version: int | None = None


class AccessControl:
    """Authentication and authorization over a ``CredentialStore``."""

    def __init__(self, store: CredentialStore | Path | str, *, enabled: bool) -> None:
        """``store``: an opened store (storage.credentials.open_credentials), or the path of
        an embedded SQLite one. This object closes it."""
        self.enabled = enabled
        self._store = store if isinstance(store, CredentialStore) else SqliteCredentialStore(store)
        self._cache_lock = threading.Lock()
        # user -> HMAC of the last verified password under a per-process key: a cache hit
        # costs one HMAC instead of one scrypt, and the cache never holds a password.
        self._cache_key = os.urandom(32)
        self._verified: dict[str, bytes] = {}
        self._grants: dict[str, tuple[Grant, ...]] = {}
        # A reader's cached roles per user and privilege groups (the writer asks its store).
        self._roles: dict[str, tuple[str, ...]] = {}
        self._groups: dict[str, list[str]] | None = None
        # Moves at each forget: a fill that read the store before it is not cached after it.
        self._generation = 0
        self._store_version: int | None = None
        self._seen = _SeenVersion()
        if self._store.read_only:
            return  # a reader: the writer made the built-in roles and root
        for role in (ADMIN_ROLE, PUBLIC_ROLE):
            self._store.add_role(role)
        if not self._store.has_user(ROOT_USER):
            self._store.add_user(ROOT_USER, DEFAULT_ROOT_PASSWORD)

    def close(self) -> None:
        self._store.close()

    def follow_store(self) -> bool:
        """A reader's copy (a ``--workers`` follower, a query worker): the writer changes users,
        roles and grants; forget what was cached once the store changed under this process
        (True: it did). The store's counter is the one this thread saw in the running call
        (``saw_store_version``), else asked of the store."""
        version = self._seen.version
        self._seen.version = None
        if version is None:
            version = self._store.change_counter()
        if version == self._store_version:
            return False
        self._forget()  # first: a thread that finds the new version finds the caches emptied
        self._store_version = version
        return True

    def saw_store_version(self, version: int | None) -> None:
        """The store's change counter as a statement of this thread read it after the running
        call came in (a cluster worker's log tail carries it: storage/pg_log.py), for this
        thread's next ``follow_store``; None at a call's start forgets an earlier call's."""
        self._seen.version = version

    def _forget(self, user: str | None = None) -> None:
        with self._cache_lock:
            if user is None:
                self._verified.clear()
            else:
                self._verified.pop(user, None)
            self._grants.clear()
            self._roles.clear()
            self._groups = None
            self._generation += 1

    # -- authentication ------------------------------------------------------------------------
    def authenticate(self, user: str, password: str) -> None:
        """CredentialInvalid unless ``password`` is ``user``'s."""
        tag = hmac.new(self._cache_key, password.encode(), hashlib.sha256).digest()
        with self._cache_lock:
            cached, generation = self._verified.get(user), self._generation
        if cached is not None and hmac.compare_digest(cached, tag):
            return
        if not self._store.check_password(user, password):
            raise CredentialInvalid()
        with self._cache_lock:
            if generation == self._generation:
                self._verified[user] = tag

    def authenticate_token(self, token: str) -> str:
        """``user:password`` -> the user; anything else is an API key, which we do not issue."""
        user, sep, password = token.partition(":")
        if not sep:
            raise CredentialInvalid("auth check failure, please check api key is correct")
        self.authenticate(user, password)
        return user

    # -- authorization -------------------------------------------------------------------------
    def is_superuser(self, user: str) -> bool:
        return user == ROOT_USER or ADMIN_ROLE in self._roles_of(user)

    def _roles_of(self, user: str) -> tuple[str, ...]:
        """``user``'s roles; a reader keeps them until the store changes (``follow_store``)."""
        if not self._store.read_only:
            return tuple(self._store.roles_of(user))
        with self._cache_lock:
            cached, generation = self._roles.get(user), self._generation
        if cached is None:
            cached = tuple(self._store.roles_of(user))
            with self._cache_lock:
                if generation == self._generation:
                    self._roles[user] = cached
        return cached

    def _custom_groups(self) -> dict[str, list[str]]:
        """The privilege groups; a reader keeps them until the store changes."""
        if not self._store.read_only:
            return self._store.groups()
        with self._cache_lock:
            cached, generation = self._groups, self._generation
        if cached is None:
            cached = self._store.groups()
            with self._cache_lock:
                if generation == self._generation:
                    self._groups = cached
        return cached

    def authorize(self, user: str, operation: str, db: str, object_name: str = "*") -> None:
        """PermissionDenied unless ``user`` may run ``operation`` on ``object_name`` in ``db``."""
        if not self.enabled:
            return
        privilege = OPERATIONS.get(operation)
        if privilege is None or privilege.name in _PUBLIC_PRIVILEGES:
            return
        if privilege.object_type == USER and object_name == user:
            return  # a user may read and change their own account
        if privilege.object_type == GLOBAL:
            object_name = "*"
        if self.is_superuser(user) or self._granted(user, privilege.name, db, object_name):
            return
        raise PermissionDenied(f"{privilege.name}: permission deny to {user} in the `{db}` database")

    # -- what a listing shows (Milvus's rootcoord show_collection_task / list_db_task) --------
    def visible_collections(self, user: str | None, db: str, names: list[str]) -> list[str]:
        """The collections of ``db`` that ``user`` holds a privilege on: all of them for root,
        admin, a global ``*`` grant or database group that holds ShowCollections on ``db``, or a
        collection grant on ``*``; else those named by a collection grant."""
        if not self.enabled or user is None or self.is_superuser(user):
            return names
        named: set[str] = set()
        for grant in self._effective_grants(user):
            if grant.db_name not in ("*", db):
                continue
            if grant.object_type == GLOBAL:
                if grant.privilege in _ALL or grant.privilege in _LISTS_EVERY_COLLECTION:
                    return names
            elif grant.object_type == COLLECTION:
                if grant.object_name == "*":
                    return names
                named.add(grant.object_name)
        return [name for name in names if name in named]

    def visible_databases(self, user: str | None, names: list[str]) -> list[str]:
        """The databases ``user`` holds any grant in (all for root, admin, a grant in ``*``)."""
        if not self.enabled or user is None or self.is_superuser(user):
            return names
        granted = {grant.db_name for grant in self._effective_grants(user)}
        return names if "*" in granted else [name for name in names if name in granted]

    def _granted(self, user: str, privilege: str, db: str, object_name: str) -> bool:
        custom = self._custom_groups()
        for grant in self._effective_grants(user):
            if grant.db_name not in ("*", db) or grant.object_name not in ("*", object_name):
                continue
            held = grant.privilege
            if held == privilege or held in _ALL:
                return True
            if privilege in BUILTIN_GROUPS.get(held, ()) or privilege in custom.get(held, ()):
                return True
        return False

    def _effective_grants(self, user: str) -> tuple[Grant, ...]:
        with self._cache_lock:
            cached, generation = self._grants.get(user), self._generation
        if cached is not None:
            return cached
        roles = {PUBLIC_ROLE, *self._roles_of(user)}
        grants = tuple(g for role in sorted(roles) for g in self._store.grants_of(role))
        with self._cache_lock:
            if generation == self._generation:
                self._grants[user] = grants
        return grants

    # -- users ---------------------------------------------------------------------------------
    def create_user(self, user: str, password: str) -> None:
        _check_name("user", user)
        _check_password(password)
        if not self._store.add_user(user, password):
            raise UnexpectedError(f"user already exists: {user}")

    def update_password(self, user: str, old_password: str, new_password: str) -> None:
        _check_password(new_password)
        if not self._store.check_password(user, old_password):
            raise CredentialInvalid("old password not correct for " + user)
        self._store.set_password(user, new_password)
        self._forget(user)

    def reset_password(self, user: str, new_password: str) -> None:
        """A superuser setting someone's password without the old one."""
        _check_password(new_password)
        if not self._store.set_password(user, new_password):
            raise ParameterInvalid(f"user {user} not found")
        self._forget(user)

    def drop_user(self, user: str) -> None:
        if user == ROOT_USER:
            raise invalid("root user cannot be deleted")
        self._store.remove_user(user)
        self._forget(user)

    def list_users(self) -> list[str]:
        return self._store.users()

    def has_user(self, user: str) -> bool:
        return self._store.has_user(user)

    def roles_of(self, user: str) -> list[str]:
        return self._store.roles_of(user)

    # -- roles ---------------------------------------------------------------------------------
    def create_role(self, role: str, description: str = "") -> None:
        _check_name("role", role)
        if not self._store.add_role(role, description):
            raise UnexpectedError(f'role [name:"{role}"] already exists')

    def alter_role(self, role: str, description: str) -> None:
        """AlterRole: only the description changes."""
        if not self._store.set_role_description(role, description):
            raise ParameterInvalid(
                f"not found the role, maybe the role isn't existed or internal system error: {role}"
            )

    def role_description(self, role: str) -> str:
        return self._store.role_description(role)

    def drop_role(self, role: str) -> None:
        if role in (ADMIN_ROLE, PUBLIC_ROLE):
            raise invalid(f"the role[{role}] is a default role, which can't be dropped")
        self._store.remove_role(role)
        self._forget()

    def list_roles(self) -> list[str]:
        return self._store.roles()

    def users_in_role(self, role: str) -> list[str]:
        return self._store.users_in(role)

    def grant_role(self, user: str, role: str) -> None:
        if not self._store.has_user(user):
            raise ParameterInvalid(f"not found the user, username: {user}")
        if not self._store.has_role(role):
            raise ParameterInvalid(
                f"not found the role, maybe the role isn't existed or internal system error: {role}"
            )
        self._store.add_user_role(user, role)
        self._forget()

    def revoke_role(self, user: str, role: str) -> None:
        self._store.remove_user_role(user, role)
        self._forget()

    # -- privileges ----------------------------------------------------------------------------
    def grant(
        self, role: str, object_type: str, object_name: str, privilege: str, db: str, grantor: str
    ) -> None:
        if not self._store.has_role(role):
            raise ParameterInvalid(
                f"not found the role, maybe the role isn't existed or internal system error: {role}"
            )
        if not self._is_known_privilege(privilege):
            raise invalid(f"not found the privilege name[{privilege}]")
        self._store.add_grant(Grant(role, object_type, object_name, db, privilege, grantor))
        self._forget()

    def revoke(self, role: str, object_type: str, object_name: str, privilege: str, db: str) -> None:
        self._store.remove_grant(Grant(role, object_type, object_name, db, privilege, ""))
        self._forget()

    def grants_of(self, role: str, db: str | None = None) -> list[Grant]:
        return [g for g in self._store.grants_of(role) if db is None or g.db_name in (db, "*")]

    # -- backup and restore (access_backup.py) -----------------------------------------------
    def backup(self) -> RbacBackup:
        return backup_rbac(self._store)

    def restore(self, backup: RbacBackup) -> None:
        known = {p.name for p in OPERATIONS.values()} | _ALL | set(BUILTIN_GROUPS)
        known |= {p for group in BUILTIN_GROUPS.values() for p in group}
        restore_rbac(self._store, backup, frozenset(known))
        self._forget()

    def _is_known_privilege(self, privilege: str) -> bool:
        known = {p.name for p in OPERATIONS.values()} | _ALL | set(BUILTIN_GROUPS)
        known |= {p for group in BUILTIN_GROUPS.values() for p in group}
        return privilege in known or privilege in self._store.groups()

    # -- privilege groups ----------------------------------------------------------------------
    def create_privilege_group(self, name: str) -> None:
        _check_name("privilege group", name)
        if name in BUILTIN_GROUPS or not self._store.add_group(name):
            raise invalid(f"privilege group [{name}] already exists")

    def drop_privilege_group(self, name: str) -> None:
        self._store.remove_group(name)
        self._forget()

    def list_privilege_groups(self) -> dict[str, list[str]]:
        groups = {name: sorted(privileges) for name, privileges in BUILTIN_GROUPS.items()}
        groups.update(self._store.groups())
        return groups

    def add_privileges_to_group(self, name: str, privileges: list[str]) -> None:
        if name not in self._store.groups():
            raise invalid(f"there is no privilege group name [{name}]")
        self._store.add_group_privileges(name, privileges)
        self._forget()

    def remove_privileges_from_group(self, name: str, privileges: list[str]) -> None:
        self._store.remove_group_privileges(name, privileges)
        self._forget()


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise invalid(f"invalid {kind} name {name!r}")


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ParameterInvalid(
            f"invalid password length: invalid parameter[{len(password)} out of range "
            f"{MIN_PASSWORD_LENGTH} <= value <= {MAX_PASSWORD_LENGTH}]"
        )
