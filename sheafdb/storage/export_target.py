"""Where a snapshot export writes: ``ExportSnapshot``'s ``target_s3_path``, confined as imports are.

Milvus exports a snapshot to a path in object storage. SheafDB takes, as import_files.py
reads from:

- embedded (no ``--objects``): a directory on this machine inside the import root
  (``--import-root``, by default the data dir); a relative path is taken from the root, an
  absolute one (or ``file://``) must lie in it, and not in the server's own directories there;
- with ``--objects s3://bucket/prefix``: a key prefix of that bucket (``s3://bucket/key`` or
  ``key``, from the bucket's top), outside the deployment's own prefix.

Anything else (another bucket, ``s3://`` with no object storage, another scheme, ``..``) is an
``ExportTargetError``. Files are written through ``pyarrow.fs``; stateless apart from the
filesystem handle: thread-safe.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

# What the server keeps in its data dir (and in its bucket prefix): never an export target.
SERVER_ENTRIES = frozenset(
    {
        "collections",
        "snapshots",
        "wal",
        "object-cache",
        "catalog.db",
        "credentials.db",
        "sheafdb.lock",
        "change-counters",
    }
)
_CHUNK = 8 << 20


class ExportTargetError(Exception):
    """A target an export may not write to; the text says why."""


class ExportTarget:
    """A directory (local or a key prefix) that receives one export."""

    def __init__(self, filesystem: pafs.FileSystem, base: str, uri: str) -> None:
        self._fs = filesystem
        self._base = base.rstrip("/")
        self.uri = uri.rstrip("/")

    def _location(self, relative: str) -> str:
        return f"{self._base}/{relative}"

    def uri_of(self, relative: str) -> str:
        return f"{self.uri}/{relative}"

    def exists(self, relative: str) -> bool:
        return bool(self._fs.get_file_info(self._location(relative)).type == pafs.FileType.File)

    def size(self, relative: str) -> int:
        info = self._fs.get_file_info(self._location(relative))
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(self.uri_of(relative))
        return int(info.size or 0)

    def copy_from(self, relative: str, source: pa.NativeFile) -> int:
        """Write ``source`` (read to its end) as ``relative``; returns the bytes written."""
        location = self._location(relative)
        self._fs.create_dir(location.rsplit("/", 1)[0], recursive=True)
        written = 0
        with self._fs.open_output_stream(location) as out:
            while chunk := source.read(_CHUNK):
                out.write(chunk)
                written += len(chunk)
        return written

    def write_bytes(self, relative: str, data: bytes) -> None:
        self.copy_from(relative, pa.BufferReader(data))


def _local_target(target: str, import_root: Path, data_dir: Path) -> ExportTarget:
    path = target.removeprefix("file://")
    if not path or "\x00" in path:
        raise ExportTargetError(f"invalid export path {target!r}")
    root = import_root.resolve()
    given = Path(path)
    resolved = (given if given.is_absolute() else root / given).resolve()
    if root not in resolved.parents:
        raise ExportTargetError(f"export path {target} is outside the import root {root}")
    data = data_dir.resolve()
    if resolved == data or (
        data in resolved.parents and resolved.relative_to(data).parts[0] in SERVER_ENTRIES
    ):
        raise ExportTargetError(f"export path {target} is inside the server's own files in {data}")
    if resolved.is_file():
        raise ExportTargetError(f"export path {target} is a file, not a directory")
    return ExportTarget(pafs.LocalFileSystem(), str(resolved), str(resolved))


def _bucket_target(target: str, objects_url: str) -> ExportTarget:
    filesystem, root = pafs.FileSystem.from_uri(objects_url)
    bucket, _, own_prefix = root.strip("/").partition("/")
    if "://" in target:
        parts = urlsplit(target)
        if parts.scheme != "s3":
            raise ExportTargetError(
                f"export path {target} is not in the server's object storage s3://{bucket}"
            )
        if parts.netloc != bucket:
            raise ExportTargetError(
                f"export path {target} is in bucket {parts.netloc!r}; "
                f"this server writes only to bucket {bucket}"
            )
        key = parts.path
    else:
        key = target
    key_path = PurePosixPath(key.strip("/"))
    if not key_path.parts or ".." in key_path.parts or "." in key_path.parts:
        raise ExportTargetError(f"invalid export path {target!r}: it needs a key prefix in bucket {bucket}")
    key_text = key_path.as_posix()
    own = own_prefix.strip("/")
    inside_own = (
        key_text == own or key_text.startswith(f"{own}/") if own else key_path.parts[0] in SERVER_ENTRIES
    )
    if inside_own:
        raise ExportTargetError(f"export path {target} is inside the server's own objects in s3://{root}")
    return ExportTarget(filesystem, f"{bucket}/{key_text}", f"s3://{bucket}/{key_text}")


def open_export_target(
    target: str, objects_url: str | None, import_root: Path, data_dir: Path
) -> ExportTarget:
    """The export target ``target`` names on this deployment, or ExportTargetError."""
    target = target.strip()
    if not target:
        raise ExportTargetError("target_s3_path is empty")
    if objects_url is None:
        if "://" in target and not target.startswith("file://"):
            raise ExportTargetError(
                f"export path {target} needs object storage: this server runs without --objects, "
                f"it exports to directories under the import root {import_root.resolve()}"
            )
        return _local_target(target, import_root, data_dir)
    if target.startswith("file://") or target.startswith("/"):
        raise ExportTargetError(
            f"export path {target} is a local path; this server exports to its object storage"
        )
    return _bucket_target(target, objects_url)
