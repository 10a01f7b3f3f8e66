from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from sheafdb.storage.object_store import LocalStore, ObjectStore, open_object_store
from sheafdb.storage.s3_store import S3Store
from sheafdb.storage.segment_files import read_column, write_segment
from tests.services import S3Server

BUCKET = "sheafdb-store-tests"
# Opens a store over the test's objects with the given local dir (a fresh dir: another machine).
OpenStore = Callable[[Path], ObjectStore]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.cluster)])
def reopen(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OpenStore:
    """Every test runs on both stores; S3 under its own prefix of one bucket."""
    if request.param == "local":
        return lambda _local_dir: LocalStore(tmp_path / "root")
    server: S3Server = request.getfixturevalue("s3_server")
    for name, value in server.credentials_env().items():
        monkeypatch.setenv(name, value)
    url = server.url(BUCKET, f"t-{uuid.uuid4().hex}") + "&allow_bucket_creation=true"
    return lambda local_dir: open_object_store(url, local_dir)


@pytest.fixture
def store(reopen: OpenStore, tmp_path: Path) -> ObjectStore:
    return reopen(tmp_path / "data")


def test_write_read_replace(store: ObjectStore) -> None:
    store.write_bytes("a/b/c.bin", b"one")
    store.write_bytes("a/b/c.bin", b"second")
    assert store.read_bytes("a/b/c.bin") == b"second"
    assert store.size("a/b/c.bin") == 6 and store.exists("a/b/c.bin")
    # Temp files of the atomic write never remain.
    assert store.list("") == ["a/b/c.bin"]
    with store.open_mapped("a/b/c.bin") as mapped:
        assert mapped.read() == b"second"
    local = store.local_path("a/b/c.bin")
    assert local is not None and local.read_bytes() == b"second"
    assert not store.exists("a/b/missing")
    with pytest.raises(FileNotFoundError):
        store.read_bytes("a/b/missing")
    with pytest.raises(FileNotFoundError):
        store.size("a/b/missing")


def test_list_delete_and_rename(store: ObjectStore) -> None:
    for path in ("c/1/x", "c/1/y", "c/2/x", "d"):
        store.write_bytes(path, b"")
    assert store.list("c/1") == ["c/1/x", "c/1/y"]
    assert store.list("missing") == []
    assert store.list("d") == ["d"]
    store.rename_prefix("c/1", "e/1")
    assert store.list("e") == ["e/1/x", "e/1/y"] and not store.exists("c/1/x")
    with pytest.raises(FileExistsError):
        store.rename_prefix("c/2", "e/1")
    store.delete("d")
    store.delete("d")  # deleting what is gone is fine
    store.delete_prefix("e")
    assert store.list("") == ["c/2/x"]


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside", "a/../../x"])
def test_paths_cannot_leave_the_root(store: ObjectStore, bad: str) -> None:
    with pytest.raises(ValueError):
        store.write_bytes(bad, b"x")


def test_refuses_to_delete_everything(store: ObjectStore) -> None:
    store.write_bytes("keep", b"x")
    with pytest.raises(ValueError):
        store.delete_prefix("")
    assert store.exists("keep")


def test_another_machine_reads_what_one_wrote(reopen: OpenStore, tmp_path: Path) -> None:
    table = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "text": ["a", "b", "c"]})
    columns = write_segment(reopen(tmp_path / "one"), "collections/1/segments/9", table)
    other = reopen(tmp_path / "two")
    assert other.list("collections/1") == sorted(c.path for c in columns.values())
    assert read_column(other, columns["text"].path).to_pylist() == ["a", "b", "c"]
    other.delete_prefix("collections/1/segments/9")
    assert reopen(tmp_path / "three").list("collections") == []


@pytest.mark.cluster
def test_s3_reads_fetch_each_object_once_and_only_what_is_read(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_server.credentials_env().items():
        monkeypatch.setenv(name, value)
    bucket = f"sheafdb-gets-{uuid.uuid4().hex[:8]}"
    url = s3_server.url(bucket, "data") + "&allow_bucket_creation=true"
    writer = S3Store.from_url(url, tmp_path / "writer")
    table = pa.table({name: pa.array(range(1000), pa.int64()) for name in ("a", "b", "c", "d")})
    columns = write_segment(writer, "seg", table)
    # A fresh cache (another machine): reading a column is one fetch of its one object.
    reader = S3Store.from_url(url, tmp_path / "reader")
    before = s3_server.get_requests(bucket)
    assert read_column(reader, columns["a"].path).to_pylist() == list(range(1000))
    per_fetch = s3_server.get_requests(bucket) - before
    assert per_fetch >= 1
    for _ in range(3):  # the cache answers again: no request at all
        read_column(reader, columns["a"].path)
        assert reader.read_bytes(columns["a"].path)
    read_column(reader, columns["c"].path)
    assert s3_server.get_requests(bucket) - before == 2 * per_fetch
    cached = sorted(p.name for p in (tmp_path / "reader").rglob("*") if p.is_file())
    assert cached == ["a.arrow", "c.arrow"]
    # What a store wrote it never fetches back.
    before = s3_server.get_requests(bucket)
    read_column(writer, columns["b"].path)
    assert s3_server.get_requests(bucket) == before


def test_link_gives_a_file_a_second_name_that_outlives_the_first(store: ObjectStore) -> None:
    store.write_bytes("segments/1/col.arrow", b"immutable bytes")
    store.link("segments/1/col.arrow", "snapshots/7/1/col.arrow")
    store.delete_prefix("segments/1")
    assert store.read_bytes("snapshots/7/1/col.arrow") == b"immutable bytes"
    assert store.list("") == ["snapshots/7/1/col.arrow"]
    with pytest.raises(FileNotFoundError):
        store.link("segments/1/col.arrow", "snapshots/8/col.arrow")


def test_a_local_link_copies_no_bytes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes("a/data.arrow", b"x" * 4096)
    store.link("a/data.arrow", "b/data.arrow")
    first, second = (tmp_path / "a" / "data.arrow").stat(), (tmp_path / "b" / "data.arrow").stat()
    assert first.st_ino == second.st_ino and first.st_nlink == 2


@pytest.mark.cluster
def test_s3_cache_bound_evicts_unmapped_files_and_refetches_them(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_server.credentials_env().items():
        monkeypatch.setenv(name, value)
    # The shared bucket (each new bucket costs the server volumes), under a prefix of its own.
    url = s3_server.url(BUCKET, f"bound-{uuid.uuid4().hex}") + "&allow_bucket_creation=true"
    writer = S3Store.from_url(url, tmp_path / "writer")
    # Two "collections" of four column files each, 8000 rows of int64 per file.
    table = pa.table({name: pa.array(range(8000), pa.int64()) for name in ("a", "b", "c", "d")})
    first, second = write_segment(writer, "c1/seg", table), write_segment(writer, "c2/seg", table)
    file_bytes = first["a"].nbytes
    bound = 3 * file_bytes
    reader = S3Store.from_url(url, tmp_path / "reader", cache_limit_bytes=bound)
    # Load "collection 1" column a (held: mapped), then read every other file once.
    held = read_column(reader, first["a"].path)
    held_file = tmp_path / "reader" / first["a"].path
    held_inode = held_file.stat().st_ino
    for columns in (first, second):
        for column in columns.values():
            if column.path != first["a"].path:
                assert read_column(reader, column.path).to_pylist() == list(range(8000))
                assert reader.cached_bytes() <= bound
    on_disk = sum(p.stat().st_size for p in (tmp_path / "reader").rglob("*") if p.is_file())
    assert on_disk == reader.cached_bytes() <= bound
    # The mapped file stayed (the same file: never fetched again), the held array intact.
    assert read_column(reader, first["a"].path).to_pylist() == list(range(8000))
    assert held_file.stat().st_ino == held_inode
    assert held.to_pylist() == list(range(8000))
    # An evicted file is fetched again when next read.
    evicted = tmp_path / "reader" / first["b"].path
    assert not evicted.is_file()
    assert read_column(reader, first["b"].path).to_pylist() == list(range(8000))
    assert evicted.is_file()
    # Once the last array of a mapped file goes, the file may be evicted like any other.
    del held
    for column in second.values():
        read_column(reader, column.path)
    assert not held_file.is_file()
    assert reader.cached_bytes() <= bound
