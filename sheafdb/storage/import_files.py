"""Where bulk-import files are read from: the files a user names in an import request.

As in Milvus, an import names files the *server* reads, not bytes the client sends:

- embedded (no ``--objects``): paths on this machine inside the import root (``--import-root``,
  by default the data dir); a relative path is taken from the root, an absolute one must lie in
  it (so an import can never read, say, ``/etc/shadow``);
- with ``--objects s3://bucket/prefix``: object keys in that bucket, as Milvus reads import
  files from its MinIO bucket (the key is from the bucket's top, not under the prefix).

Both are opened through ``pyarrow.fs`` (random access, so Parquet reads only its footer and
row groups). Stateless apart from the filesystem handle: thread-safe.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Protocol

import pyarrow as pa
import pyarrow.fs as pafs


class ImportFileError(Exception):
    """A named file that cannot be read (missing, outside the root, a directory)."""


class ImportFiles(Protocol):
    def describe(self) -> str: ...
    def size(self, path: str) -> int: ...
    def open(self, path: str) -> pa.NativeFile: ...


class _FileSystemFiles:
    def __init__(self, filesystem: pafs.FileSystem) -> None:
        self._fs = filesystem

    def _location(self, path: str) -> str:
        raise NotImplementedError

    def size(self, path: str) -> int:
        location = self._location(path)
        info = self._fs.get_file_info(location)
        if info.type == pafs.FileType.NotFound:
            raise ImportFileError(f"failed to stat file {path}: the file does not exist")
        if info.type != pafs.FileType.File:
            raise ImportFileError(f"failed to stat file {path}: not a file")
        return int(info.size or 0)

    def open(self, path: str) -> pa.NativeFile:
        self.size(path)
        return self._fs.open_input_file(self._location(path))


class LocalImportFiles(_FileSystemFiles):
    def __init__(self, root: Path) -> None:
        super().__init__(pafs.LocalFileSystem())
        self.root = Path(root).resolve()

    def describe(self) -> str:
        return f"local files under {self.root}"

    def _location(self, path: str) -> str:
        if not path or "\x00" in path:
            raise ImportFileError(f"invalid import file path {path!r}")
        given = Path(path)
        target = (given if given.is_absolute() else self.root / given).resolve()
        if target != self.root and self.root not in target.parents:
            raise ImportFileError(f"import file {path} is outside the import root {self.root}")
        return str(target)


class BucketImportFiles(_FileSystemFiles):
    def __init__(self, filesystem: pafs.FileSystem, bucket: str) -> None:
        super().__init__(filesystem)
        self.bucket = bucket

    def describe(self) -> str:
        return f"objects in bucket {self.bucket}"

    def _location(self, path: str) -> str:
        key = PurePosixPath(path.lstrip("/"))
        if not key.parts or ".." in key.parts:
            raise ImportFileError(f"invalid import object key {path!r}")
        return f"{self.bucket}/{key.as_posix()}"


def open_import_files(objects_url: str | None, import_root: Path) -> ImportFiles:
    """The import source of a deployment: the object store's bucket, else the import root."""
    if objects_url is None:
        return LocalImportFiles(import_root)
    filesystem, root = pafs.FileSystem.from_uri(objects_url)
    return BucketImportFiles(filesystem, root.strip("/").split("/", 1)[0])
