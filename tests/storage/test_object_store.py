from __future__ import annotations

from pathlib import Path

import pytest

from sheafdb.storage.object_store import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "root")


def test_write_read_replace(store: LocalStore) -> None:
    store.write_bytes("a/b/c.bin", b"one")
    store.write_bytes("a/b/c.bin", b"second")
    assert store.read_bytes("a/b/c.bin") == b"second"
    assert store.size("a/b/c.bin") == 6 and store.exists("a/b/c.bin")
    # Temp files of the atomic write never remain.
    assert store.list("") == ["a/b/c.bin"]
    with store.open_mapped("a/b/c.bin") as mapped:
        assert mapped.read() == b"second"
    assert store.local_path("a/b/c.bin") == store.root / "a" / "b" / "c.bin"


def test_list_delete_and_rename(store: LocalStore) -> None:
    for path in ("c/1/x", "c/1/y", "c/2/x", "d"):
        store.write_bytes(path, b"")
    assert store.list("c/1") == ["c/1/x", "c/1/y"]
    assert store.list("missing") == []
    store.rename_prefix("c/1", "e/1")
    assert store.list("e") == ["e/1/x", "e/1/y"] and not store.exists("c/1/x")
    with pytest.raises(FileExistsError):
        store.rename_prefix("c/2", "e/1")
    store.delete("d")
    store.delete("d")  # deleting what is gone is fine
    store.delete_prefix("e")
    assert store.list("") == ["c/2/x"]


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside", "a/../../x"])
def test_paths_cannot_leave_the_root(store: LocalStore, bad: str) -> None:
    with pytest.raises(ValueError):
        store.write_bytes(bad, b"x")


def test_refuses_to_delete_everything(store: LocalStore) -> None:
    store.write_bytes("keep", b"x")
    with pytest.raises(ValueError):
        store.delete_prefix("")
    assert store.exists("keep")
