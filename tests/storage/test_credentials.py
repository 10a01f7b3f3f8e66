"""The credential store on both backends (credentials.py, pg_credentials.py): users with salted
hashes, roles, grants and privilege groups with the same semantics, and change-following
between processes' connections: a reader sees the writer's changes and learns of them by its
change counter. PostgreSQL readers are read-only; a deposed writer's changes are fenced."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sheafdb.engine.access import AccessControl
from sheafdb.errors import CredentialInvalid, WriterFenced
from sheafdb.storage.catalog import open_catalog
from sheafdb.storage.credentials import CredentialStore, Grant, SqliteCredentialStore, open_credentials
from sheafdb.storage.lease_rows import WRITER_LEASE

Opener = Callable[..., CredentialStore]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.cluster)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a store (another connection each call, as another process would): the SQLite
    file in one data dir, or the session's PostgreSQL in a database of its own."""
    url = request.getfixturevalue("postgres_database") if request.param == "postgres" else None
    opened: list[CredentialStore] = []

    def _open(*, read_only: bool = False) -> CredentialStore:
        store = open_credentials(url, tmp_path, read_only=read_only)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


def test_users_are_salted_hashes_that_check_and_change(opener: Opener) -> None:
    store = opener()
    assert store.add_user("alice", "secret-1")
    assert not store.add_user("alice", "other-pw")  # exists: unchanged
    assert store.check_password("alice", "secret-1")
    assert not store.check_password("alice", "other-pw")
    assert not store.check_password("nobody", "secret-1")
    assert store.set_password("alice", "secret-2")
    assert not store.set_password("nobody", "secret-2")
    assert store.check_password("alice", "secret-2") and not store.check_password("alice", "secret-1")
    record = store.password_record("alice")
    assert record is not None and record.startswith("scrypt:") and "secret" not in record
    assert store.add_user_record("bob", record)
    assert store.check_password("bob", "secret-2")
    assert not store.add_user_record("bob", record)
    assert store.users() == ["alice", "bob"] and store.has_user("bob")
    assert store.remove_user("bob") and not store.remove_user("bob")
    assert store.users() == ["alice"] and store.password_record("bob") is None


def test_roles_memberships_and_grants_cascade_with_their_role(opener: Opener) -> None:
    store = opener()
    store.add_user("alice", "secret-1")
    store.add_user("bob", "secret-1")
    assert store.add_role("reader", "reads") and not store.add_role("reader")
    assert store.role_description("reader") == "reads"
    assert store.set_role_description("reader", "reads things")
    assert store.role_description("reader") == "reads things" and store.role_description("none") == ""
    store.add_role("writer")
    for user in ("bob", "alice"):
        store.add_user_role(user, "reader")
    store.add_user_role("alice", "reader")  # twice: once
    store.add_user_role("alice", "writer")
    assert store.roles_of("alice") == ["reader", "writer"]
    assert store.users_in("reader") == ["alice", "bob"]
    store.remove_user_role("bob", "reader")
    assert store.users_in("reader") == ["alice"]
    search = Grant("reader", "Collection", "c", "default", "Search", "root")
    query = Grant("reader", "Collection", "c", "default", "Query", "root")
    for grant in (search, query, search):
        store.add_grant(grant)
    assert store.grants_of("reader") == [query, search]
    store.remove_grant(query)
    assert store.grants_of("reader") == [search]
    assert store.remove_role("reader") and not store.remove_role("reader")
    assert store.roles() == ["writer"] and not store.has_role("reader")
    assert store.grants_of("reader") == [] and store.roles_of("alice") == ["writer"]
    store.remove_user("alice")
    assert store.users_in("writer") == []


def test_privilege_groups(opener: Opener) -> None:
    store = opener()
    assert store.add_group("g") and not store.add_group("g")
    store.add_group("empty")
    store.add_group_privileges("g", ["Search", "Query", "Search"])
    assert store.groups() == {"empty": [], "g": ["Query", "Search"]}
    store.remove_group_privileges("g", ["Query", "Insert"])
    assert store.groups()["g"] == ["Search"]
    assert store.remove_group("g") and not store.remove_group("g")
    assert store.groups() == {"empty": []}


def test_a_reader_sees_the_writers_changes_and_its_counter_moves(opener: Opener) -> None:
    writer = opener()
    writer.add_role("public")
    reader = opener(read_only=True)
    before = reader.change_counter()
    writer.add_user("alice", "secret-1")
    after = reader.change_counter()
    assert after != before
    assert reader.check_password("alice", "secret-1")
    assert reader.change_counter() == after  # reading changes nothing
    writer.add_user_role("alice", "public")
    assert reader.change_counter() != after and reader.roles_of("alice") == ["public"]


@pytest.mark.cluster
def test_a_postgres_reader_cannot_write(postgres_database: str, tmp_path: Path) -> None:
    import psycopg

    open_credentials(postgres_database, tmp_path).close()  # the writer made the tables
    reader = open_credentials(postgres_database, tmp_path, read_only=True)
    try:
        assert reader.read_only
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            reader.add_user("mallory", "secret-1")
        assert reader.users() == []
    finally:
        reader.close()


def test_an_embedded_store_opens_the_data_dirs_file(tmp_path: Path) -> None:
    store = open_credentials(None, tmp_path)
    try:
        assert isinstance(store, SqliteCredentialStore) and not store.read_only
        store.add_user("alice", "secret-1")
    finally:
        store.close()
    assert (tmp_path / "credentials.db").is_file()


def test_access_control_on_a_reader_follows_the_writers_users(opener: Opener) -> None:
    """What a query worker does: a read-only AccessControl (which seeds nothing) on the store
    the writer's AccessControl changes, forgetting cached logins once the counter moves."""
    writer = AccessControl(opener(), enabled=True)
    reader = AccessControl(opener(read_only=True), enabled=True)
    reader.follow_store()
    reader.authenticate("root", "Milvus")  # the writer seeded root
    with pytest.raises(CredentialInvalid):
        reader.authenticate("alice", "secret-1")
    writer.create_user("alice", "secret-1")
    reader.follow_store()
    reader.authenticate("alice", "secret-1")
    writer.update_password("alice", "secret-1", "secret-2")
    reader.follow_store()
    with pytest.raises(CredentialInvalid):
        reader.authenticate("alice", "secret-1")  # the cached login was forgotten
    reader.authenticate("alice", "secret-2")


@pytest.mark.cluster
def test_a_deposed_writers_changes_are_fenced(postgres_database: str, tmp_path: Path) -> None:
    """The writer's store checks its lease in every change, as its catalog does: once a standby
    took the lease, the old writer can change no user."""
    catalog = open_catalog(postgres_database, tmp_path)
    try:
        old = catalog.try_acquire_lease(WRITER_LEASE, "old:1", ttl_s=0)  # expires at once
        assert old is not None
        store = open_credentials(postgres_database, tmp_path, fence=old)
        try:
            assert store.add_user("alice", "secret-1")  # the lease is still its
            new = catalog.try_acquire_lease(WRITER_LEASE, "new:1", ttl_s=60)
            assert new is not None and new.token > old.token
            with pytest.raises(WriterFenced, match="lost its lease"):
                store.add_user("mallory", "secret-1")
            with pytest.raises(WriterFenced):
                store.set_password("alice", "secret-2")
            assert store.users() == ["alice"] and store.check_password("alice", "secret-1")
        finally:
            store.close()
    finally:
        catalog.close()
