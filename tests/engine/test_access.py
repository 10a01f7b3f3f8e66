"""The pure rules of access control (engine/access.py); the RPCs run in tests/e2e/test_access.py."""

from __future__ import annotations

import pytest

from sheafdb.engine.access import grant_target_v2


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
