"""AccessControl and its credential store: logins, roles, grants, groups, persistence."""

from __future__ import annotations

import sqlite3

import pytest

from sheafdb.engine.access import AccessControl
from sheafdb.errors import CredentialInvalid, ParameterInvalid, PermissionDenied


@pytest.fixture
def access(tmp_path):
    control = AccessControl(tmp_path / "credentials.db", enabled=True)
    yield control
    control.close()


def test_root_logs_in_with_the_default_password(access):
    assert access.authenticate_token("root:Milvus") == "root"
    with pytest.raises(CredentialInvalid, match="username and password"):
        access.authenticate_token("root:wrong")
    with pytest.raises(CredentialInvalid, match="api key"):
        access.authenticate_token("no-colon-token")


def test_passwords_are_salted_hashes(access, tmp_path):
    access.create_user("alice", "secret-1")
    access.create_user("bob", "secret-1")
    rows = (
        sqlite3.connect(tmp_path / "credentials.db").execute("SELECT name, salt, hash FROM users").fetchall()
    )
    hashes = {name: digest for name, _salt, digest in rows}
    assert b"secret-1" not in hashes["alice"] and b"Milvus" not in hashes["root"]
    assert hashes["alice"] != hashes["bob"]  # different salts


def test_changed_password_invalidates_the_cached_login(access):
    access.create_user("alice", "secret-1")
    access.authenticate("alice", "secret-1")  # now cached
    access.update_password("alice", "secret-1", "secret-2")
    with pytest.raises(CredentialInvalid):
        access.authenticate("alice", "secret-1")
    access.authenticate("alice", "secret-2")
    with pytest.raises(CredentialInvalid):
        access.update_password("alice", "wrong-old", "secret-3")


def test_dropped_user_cannot_log_in(access):
    access.create_user("alice", "secret-1")
    access.authenticate("alice", "secret-1")
    access.drop_user("alice")
    with pytest.raises(CredentialInvalid):
        access.authenticate("alice", "secret-1")


def test_password_length_and_names_are_checked(access):
    with pytest.raises(ParameterInvalid, match="invalid password length"):
        access.create_user("alice", "123")
    with pytest.raises(ParameterInvalid):
        access.create_user("1bad name", "secret-1")


def test_load_needs_read_write_not_read_only(access):
    access.create_user("alice", "secret-1")
    access.create_role("reader")
    access.grant_role("alice", "reader")
    access.grant("reader", "Collection", "books", "CollectionReadOnly", "default", "root")
    access.authorize("alice", "GetLoadState", "default", "books")
    access.authorize("alice", "Search", "default", "books")
    with pytest.raises(PermissionDenied, match=r"Load: permission deny to alice in the `default` database"):
        access.authorize("alice", "LoadCollection", "default", "books")
    access.grant("reader", "Collection", "books", "CollectionReadWrite", "default", "root")
    access.authorize("alice", "LoadCollection", "default", "books")
    access.authorize("alice", "ReleaseCollection", "default", "books")
    # the grant names one collection in one database
    with pytest.raises(PermissionDenied):
        access.authorize("alice", "LoadCollection", "default", "films")
    with pytest.raises(PermissionDenied):
        access.authorize("alice", "LoadCollection", "other_db", "books")


def test_revoking_takes_effect_at_once(access):
    access.create_user("alice", "secret-1")
    access.create_role("loader")
    access.grant_role("alice", "loader")
    access.grant("loader", "Collection", "*", "Load", "*", "root")
    access.authorize("alice", "LoadCollection", "any_db", "anything")
    access.revoke("loader", "Collection", "*", "Load", "*")
    with pytest.raises(PermissionDenied):
        access.authorize("alice", "LoadCollection", "any_db", "anything")


def test_global_privileges_ignore_collection_grants(access):
    access.create_user("alice", "secret-1")
    access.create_role("r")
    access.grant_role("alice", "r")
    access.grant("r", "Collection", "books", "CollectionAdmin", "default", "root")
    with pytest.raises(PermissionDenied, match="CreateCollection"):
        access.authorize("alice", "CreateCollection", "default", "books")
    access.grant("r", "Global", "*", "DatabaseAdmin", "default", "root")
    access.authorize("alice", "CreateCollection", "default", "books")


def test_admin_role_and_root_may_do_everything(access):
    access.create_user("boss", "secret-1")
    with pytest.raises(PermissionDenied):
        access.authorize("boss", "DropDatabase", "default")
    access.grant_role("boss", "admin")
    access.authorize("boss", "DropDatabase", "default")
    access.authorize("root", "DropDatabase", "default")


def test_public_privileges_and_own_account(access):
    access.create_user("alice", "secret-1")
    access.authorize("alice", "DescribeCollection", "default", "books")
    access.authorize("alice", "ShowCollections", "default")
    access.authorize("alice", "UpdateCredential", "default", "alice")
    with pytest.raises(PermissionDenied):
        access.authorize("alice", "UpdateCredential", "default", "root")


def test_custom_privilege_groups(access):
    access.create_user("alice", "secret-1")
    access.create_role("r")
    access.grant_role("alice", "r")
    access.create_privilege_group("loaders")
    access.add_privileges_to_group("loaders", ["Load", "Release"])
    access.grant("r", "Collection", "*", "loaders", "default", "root")
    access.authorize("alice", "LoadCollection", "default", "c")
    access.remove_privileges_from_group("loaders", ["Load"])
    with pytest.raises(PermissionDenied):
        access.authorize("alice", "LoadCollection", "default", "c")
    assert access.list_privilege_groups()["loaders"] == ["Release"]
    assert "Load" in access.list_privilege_groups()["CollectionReadWrite"]
    assert "Load" not in access.list_privilege_groups()["CollectionReadOnly"]


def test_unknown_privilege_and_default_roles(access):
    with pytest.raises(ParameterInvalid):
        access.grant("admin", "Collection", "*", "NoSuchPrivilege", "default", "root")
    with pytest.raises(ParameterInvalid):
        access.drop_role("admin")
    with pytest.raises(ParameterInvalid):
        access.drop_user("root")
    assert {"admin", "public"} <= set(access.list_roles())


def test_disabled_access_allows_everything(tmp_path):
    control = AccessControl(tmp_path / "c.db", enabled=False)
    control.create_user("alice", "secret-1")
    control.authorize("alice", "DropDatabase", "default")
    control.close()


def test_state_survives_reopening(tmp_path):
    first = AccessControl(tmp_path / "c.db", enabled=True)
    first.update_password("root", "Milvus", "new-root-pw")
    first.create_user("alice", "secret-1")
    first.create_role("r")
    first.grant_role("alice", "r")
    first.grant("r", "Collection", "books", "Load", "default", "root")
    first.close()
    second = AccessControl(tmp_path / "c.db", enabled=True)
    with pytest.raises(CredentialInvalid):
        second.authenticate("root", "Milvus")  # the changed password is kept, not reset
    second.authenticate("root", "new-root-pw")
    second.authorize("alice", "LoadCollection", "default", "books")
    assert second.roles_of("alice") == ["r"]
    second.close()
