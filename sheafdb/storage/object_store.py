"""Where segment, delete and index files live: a small Protocol and its local-disk backend.

Callers only use relative '/'-separated paths, so the S3-compatible backend (``S3Store`` in
s3_store.py, through ``pyarrow.fs``) implements the same Protocol; ``open_object_store``
picks the backend. ``local_path`` tells callers such as faiss's reader where a real file of
the object is on this machine (S3Store's local cache), or that there is none.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Protocol

import pyarrow as pa

from sheafdb.storage.s3_store import S3Store

# S3Store's local read cache, in the data dir.
OBJECT_CACHE_DIR = "object-cache"


class ObjectStore(Protocol):
    def write_bytes(self, path: str, data: bytes) -> None: ...
    def read_bytes(self, path: str) -> bytes: ...
    def open_mapped(self, path: str) -> pa.NativeFile: ...
    def exists(self, path: str) -> bool: ...
    def size(self, path: str) -> int: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, path: str) -> None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def rename_prefix(self, src: str, dst: str) -> None: ...
    # A second name for an immutable file, costing no copy where the store allows it.
    def link(self, src: str, dst: str) -> None: ...
    def local_path(self, path: str) -> Path | None: ...


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (POSIX needs the dir fsync'd)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore:
    """An ObjectStore on a local directory. Stateless apart from ``root``: thread-safe."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _resolve(self, path: str) -> Path:
        rel = PurePosixPath(path)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"object path must be relative and stay inside the store: {path!r}")
        return self.root.joinpath(*rel.parts)

    def write_bytes(self, path: str, data: bytes) -> None:
        target = self._resolve(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Unique temp name: two writers of the same path never share a temp file.
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)

    def read_bytes(self, path: str) -> bytes:
        return self._resolve(path).read_bytes()

    def open_mapped(self, path: str) -> pa.NativeFile:
        return pa.memory_map(str(self._resolve(path)), "r")

    def exists(self, path: str) -> bool:
        return self._resolve(path).exists()

    def size(self, path: str) -> int:
        return self._resolve(path).stat().st_size

    def list(self, prefix: str) -> list[str]:
        """Every file whose path starts with the directory ``prefix``, sorted."""
        base = self._resolve(prefix) if prefix else self.root
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def delete(self, path: str) -> None:
        self._resolve(path).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        if not PurePosixPath(prefix).parts:
            raise ValueError("refusing to delete the whole store")
        target = self._resolve(prefix)
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)

    def rename_prefix(self, src: str, dst: str) -> None:
        """Move a file or directory; atomic on local disk (a remote store would copy)."""
        source, target = self._resolve(src), self._resolve(dst)
        if target.exists():
            raise FileExistsError(f"object path already exists: {dst!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
        fsync_dir(target.parent)

    def link(self, src: str, dst: str) -> None:
        """A hard link (the same inode: no bytes copied; the data lives while any name does);
        a copy where the file system refuses links (another device, no link support)."""
        source, target = self._resolve(src), self._resolve(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)
        except OSError as exc:
            if not source.exists():
                raise FileNotFoundError(f"no object at {src!r}") from exc
            shutil.copyfile(source, target)
        fsync_dir(target.parent)

    def local_path(self, path: str) -> Path | None:
        return self._resolve(path)


def open_object_store(url: str | None, data_dir: Path, cache_limit_bytes: int | None = None) -> ObjectStore:
    """The store ``url`` names: None is the data dir itself (embedded);
    ``s3://bucket/prefix?endpoint_override=...`` S3-compatible storage cached in the data dir
    (at most ``cache_limit_bytes`` of it; None: unbounded)."""
    if url is None:
        return LocalStore(data_dir)
    if not url.startswith("s3://"):
        raise ValueError(f"unknown object store URL {url!r}: expected s3://bucket/prefix")
    return S3Store.from_url(url, data_dir / OBJECT_CACHE_DIR, cache_limit_bytes)
