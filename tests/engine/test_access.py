"""The pure rules of access control (engine/access.py); the RPCs run in tests/e2e/test_access.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sheafdb.engine.access import AccessControl, grant_target_v2


@pytest.mark.parametrize(
    ("privilege", "expected"),
    [
        ("Load", ("Collection", "db1", "books")),
        ("CollectionReadWrite", ("Collection", "db1", "books")),
        ("ShowCollections", ("Global", "db1", "*")),
        ("DatabaseAdmin", ("Global", "db1", "*")),
        ("CreateDatabase", ("Global", "*", "*")),
        ("ClusterReadOnly", ("Global", "*", "*")),
        ("my_custom_group", ("Collection", "db1", "books")),
    ],
)
def test_v2_grants_take_their_object_from_the_privilege_level(
    privilege: str, expected: tuple[str, ...]
) -> None:
    assert grant_target_v2(privilege, "db1", "books") == expected


def test_v2_collection_grant_without_a_collection_covers_all() -> None:
    assert grant_target_v2("Search", "default", "") == ("Collection", "default", "*")


# -- what listings show (issue 14) -----------------------------------------------------------------


@pytest.fixture
def control(tmp_path: Path) -> Iterator[AccessControl]:
    access = AccessControl(tmp_path / "credentials.db", enabled=True)
    access.create_user("ann", "secret-1")
    access.create_role("reader")
    access.grant_role("ann", "reader")
    yield access
    access.close()


NAMES = ["a", "b", "c"]


def test_listings_show_nothing_without_grants_and_everything_to_root(control: AccessControl) -> None:
    assert control.visible_collections("ann", "default", NAMES) == []
    assert control.visible_databases("ann", ["default", "x"]) == []
    assert control.visible_collections("root", "default", NAMES) == NAMES
    assert control.visible_databases("root", ["default", "x"]) == ["default", "x"]


def test_collection_grants_show_their_collections_in_their_database(control: AccessControl) -> None:
    control.grant("reader", "Collection", "b", "Search", "default", "root")
    assert control.visible_collections("ann", "default", NAMES) == ["b"]
    assert control.visible_collections("ann", "other", NAMES) == []
    assert control.visible_databases("ann", ["default", "other"]) == ["default"]


@pytest.mark.parametrize(
    ("object_type", "object_name", "privilege"),
    [("Collection", "*", "Query"), ("Global", "*", "*"), ("Global", "*", "DatabaseReadOnly")],
)
def test_wide_grants_show_every_collection(
    control, object_type: str, object_name: str, privilege: str
) -> None:  # type: ignore[no-untyped-def]
    control.grant("reader", object_type, object_name, privilege, "default", "root")
    assert control.visible_collections("ann", "default", NAMES) == NAMES


def test_a_global_grant_of_one_privilege_does_not_list_collections(control: AccessControl) -> None:
    control.grant("reader", "Global", "*", "CreateCollection", "default", "root")
    assert control.visible_collections("ann", "default", NAMES) == []
