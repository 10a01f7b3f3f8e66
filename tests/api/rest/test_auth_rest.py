"""Authentication and RBAC over REST: 401, 403, users/*, roles/*, privilege_groups/*."""

from __future__ import annotations

import base64

from .test_collections import create_seed


def test_credentials_are_required_when_auth_is_on(secured):
    assert secured("collections/list")["data"] == []
    for token in ("root:wrong-password", "no-colon"):
        response = secured.raw("collections/list", {}, token=token)
        assert response.status_code == 401
        assert response.json() == {"code": 1800, "message": "user hasn't authenticated"}
    anonymous = secured.client.post("/v2/vectordb/collections/list", json={})
    assert anonymous.status_code == 401
    basic = base64.b64encode(b"root:Milvus").decode()
    ok = secured.client.post(
        "/v2/vectordb/collections/list", json={}, headers={"Authorization": f"Basic {basic}"}
    )
    assert ok.status_code == 200 and ok.json()["code"] == 0


def test_auth_off_ignores_the_header(rest):
    assert rest("collections/list", {}, token="root:wrong-password")["code"] == 0


def test_users_roles_and_load_privilege(secured):
    create_seed(secured, "books", rows=3)
    assert secured("users/create", {"userName": "alice", "password": "secret-1"})["code"] == 0
    assert sorted(secured("users/list")["data"]) == ["alice", "root"]
    assert secured("roles/create", {"roleName": "reader"})["code"] == 0
    assert secured("users/grant_role", {"userName": "alice", "roleName": "reader"})["code"] == 0
    assert secured("users/describe", {"userName": "alice"})["data"] == ["reader"]
    grant = {
        "roleName": "reader",
        "objectType": "Collection",
        "objectName": "books",
        "privilege": "CollectionReadOnly",
    }
    assert secured("roles/grant_privilege", grant)["code"] == 0
    described = secured("roles/describe", {"roleName": "reader"})["data"]
    assert described == [
        {
            "objectType": "Collection",
            "objectName": "books",
            "privilege": "CollectionReadOnly",
            "dbName": "default",
            "grantor": "root",
        }
    ]

    state = secured.raw("collections/get_load_state", {"collectionName": "books"}, token="alice:secret-1")
    assert state.status_code == 200 and state.json()["data"]["loadState"] == "LoadStateLoaded"
    denied = secured.raw("collections/release", {"collectionName": "books"}, token="alice:secret-1")
    assert denied.status_code == 403
    assert denied.json()["message"] == "Release: permission deny to alice in the `default` database"
    denied = secured.raw("collections/load", {"collectionName": "books"}, token="alice:secret-1")
    assert denied.status_code == 403

    assert (
        secured(
            "roles/grant_privilege_v2",
            {"roleName": "reader", "privilege": "CollectionReadWrite", "collectionName": "books"},
        )["code"]
        == 0
    )
    released = secured.raw("collections/release", {"collectionName": "books"}, token="alice:secret-1")
    assert released.status_code == 200 and released.json() == {"code": 0, "data": {}}
    other = secured.raw("collections/create", {"collectionName": "x", "dimension": 4}, token="alice:secret-1")
    assert other.status_code == 403

    assert (
        secured(
            "roles/revoke_privilege_v2",
            {"roleName": "reader", "privilege": "CollectionReadWrite", "collectionName": "books"},
        )["code"]
        == 0
    )
    assert (
        secured.raw("collections/load", {"collectionName": "books"}, token="alice:secret-1").status_code
        == 403
    )


def test_password_change_and_drop(secured):
    assert secured("users/create", {"userName": "bob", "password": "secret-1"})["code"] == 0
    assert secured.raw("collections/list", {}, token="bob:secret-1").status_code == 200
    change = {"userName": "bob", "password": "secret-1", "newPassword": "secret-2"}
    assert secured("users/update_password", change)["code"] == 0
    assert secured.raw("collections/list", {}, token="bob:secret-1").status_code == 401
    assert secured.raw("collections/list", {}, token="bob:secret-2").status_code == 200
    assert secured("users/create", {"userName": "bob2", "password": "123"})["code"] == 1100
    assert secured("users/drop", {"userName": "bob"})["code"] == 0
    assert secured.raw("collections/list", {}, token="bob:secret-2").status_code == 401


def test_privilege_groups(secured):
    assert secured("privilege_groups/create", {"privilegeGroupName": "loaders"})["code"] == 0
    added = {"privilegeGroupName": "loaders", "privileges": ["Load", "Release"]}
    assert secured("privilege_groups/add_privileges_to_group", added)["code"] == 0
    groups = {
        g["privilegeGroupName"]: g["privileges"]
        for g in secured("privilege_groups/list")["data"]["privilegeGroups"]
    }
    assert groups["loaders"] == "Load,Release"
    assert "Load" not in groups["CollectionReadOnly"].split(",")
    assert secured("privilege_groups/drop", {"privilegeGroupName": "loaders"})["code"] == 0
    assert {"admin", "public"} <= set(secured("roles/list")["data"])
