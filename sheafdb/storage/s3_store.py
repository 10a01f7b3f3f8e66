"""S3Store: the ObjectStore on S3-compatible object storage (AWS S3, MinIO, SeaweedFS, ...).

Objects go through ``pyarrow.fs.S3FileSystem``, one object per file under ``bucket/prefix``
(a segment is one object per field, as on disk). S3 cannot be memory-mapped, so every read
goes through a local cache: an object is fetched whole, once, into ``cache_dir`` (one GET)
and then read or mapped from there like a local file. A partial load therefore fetches only
the objects of the fields it loads, and a release drops the mapping while the cache stays
warm. Writes go to S3 first and then into the cache (write-through), so what this process
wrote it never fetches back. Segment files are immutable once written.

The cache may be bounded (``cache_limit_bytes``, ``serve --object-cache-size``; unbounded by
default, as it holds at most what the bucket holds): past the bound, the least recently used
files nobody holds are deleted and fetched again on their next read. A file is pinned while a
reader holds it: ``open_mapped`` hands out a buffer whose base carries the pin, so the pin lasts
as long as any Arrow array of a loaded segment points into the mapping, and ends with the last.

S3 has no rename: ``rename_prefix`` copies object by object on the server and then deletes
the source, so it is not atomic; a crash in between leaves an unregistered directory, which
is what startup's orphan removal is for (nothing is registered in the catalog before it).
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.fs as pafs

# Fetches copy in pieces of this size (an object is streamed, never held whole in memory).
FETCH_CHUNK_BYTES = 8 * 1024 * 1024
# Two threads fetching the same object wait for one GET; striped locks keep that cheap.
FETCH_LOCK_STRIPES = 64


class _Pin:
    """The base of a mapped buffer: unpins its cache file when the last array lets go of it."""

    def __init__(self, store: S3Store, local: Path, mapped: pa.Buffer) -> None:
        self.mapped = mapped  # keeps the mapping itself alive as long as the pin
        weakref.finalize(self, store._unpin, local)


class S3Store:
    """An ObjectStore on ``filesystem`` under ``root`` ("bucket/prefix"). Thread-safe."""

    def __init__(
        self, filesystem: pafs.FileSystem, root: str, cache_dir: Path, cache_limit_bytes: int | None = None
    ) -> None:
        self._fs = filesystem
        self.root = root.strip("/")
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.cache_limit_bytes = cache_limit_bytes
        # Lock order: a fetch stripe, then _cache_lock (held only for bookkeeping and unlinks).
        self._fetch_locks = [threading.Lock() for _ in range(FETCH_LOCK_STRIPES)]
        self._cache_lock = threading.Lock()
        # Cached file -> its size, least recently used first; and the readers holding each.
        self._cached: OrderedDict[Path, int] = OrderedDict()
        self._pins: dict[Path, int] = {}
        leftovers = [p for p in self.cache_dir.rglob("*") if p.is_file()]
        for local in sorted(leftovers, key=lambda p: p.stat().st_mtime):
            if local.name.endswith(".tmp"):
                local.unlink(missing_ok=True)  # a fetch cut short by a crash
            else:
                self._cached[local] = local.stat().st_size
        bucket = self.root.split("/", 1)[0]
        if self._fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            # Refused unless the URL allows it (allow_bucket_creation=true).
            self._fs.create_dir(bucket)

    @classmethod
    def from_url(cls, url: str, cache_dir: Path, cache_limit_bytes: int | None = None) -> S3Store:
        """``s3://bucket/prefix?endpoint_override=host:port&scheme=http&region=...``; the
        credentials come from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or
        any source of the AWS SDK's default chain), never from the URL."""
        filesystem, root = pafs.FileSystem.from_uri(url)
        if not isinstance(filesystem, pafs.S3FileSystem) or not root:
            raise ValueError(f"not an S3 location with a bucket: {url!r}")
        return cls(filesystem, root, cache_dir, cache_limit_bytes)

    # -- paths ------------------------------------------------------------------------------
    @staticmethod
    def _check(path: str) -> PurePosixPath:
        rel = PurePosixPath(path)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"object path must be relative and stay inside the store: {path!r}")
        return rel

    def _key(self, path: str) -> str:
        rel = self._check(path)
        return f"{self.root}/{rel.as_posix()}" if rel.parts else self.root

    def _cache_path(self, path: str) -> Path:
        return self.cache_dir.joinpath(*self._check(path).parts)

    # -- the cache --------------------------------------------------------------------------
    def _put_in_cache(self, path: str, write: Callable[[Path], object]) -> Path:
        """Fill the cache file of ``path`` atomically (a reader never sees half of it)."""
        local = self._cache_path(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.tmp")
        try:
            write(tmp)
            os.replace(tmp, local)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return local

    def _pinned_if_cached(self, local: Path) -> bool:
        with self._cache_lock:
            if local not in self._cached:
                return False
            self._cached.move_to_end(local)
            self._pins[local] = self._pins.get(local, 0) + 1
            return True

    def _pinned(self, path: str) -> Path:
        """The cache file of ``path``, fetched with one GET if it is not there yet, and pinned
        (never evicted) until ``_unpin``."""
        local = self._cache_path(path)
        if self._pinned_if_cached(local):
            return local
        with self._fetch_locks[zlib.crc32(path.encode()) % FETCH_LOCK_STRIPES]:
            if self._pinned_if_cached(local):
                return local
            self._put_in_cache(path, lambda tmp: self._download(self._key(path), tmp))
            with self._cache_lock:
                self._pins[local] = self._pins.get(local, 0) + 1
                self._track(local)
            return local

    def _unpin(self, local: Path) -> None:
        with self._cache_lock:
            left = self._pins.get(local, 0) - 1
            if left > 0:
                self._pins[local] = left
            else:
                self._pins.pop(local, None)
            self._evict()

    def _track(self, local: Path) -> None:
        """Count a file just put in the cache and evict past the bound; under _cache_lock."""
        self._cached[local] = local.stat().st_size
        self._cached.move_to_end(local)
        self._evict()

    def _evict(self) -> None:
        """Delete least recently used, unpinned files until the cache fits; under _cache_lock."""
        if self.cache_limit_bytes is None:
            return
        total = sum(self._cached.values())
        for local in list(self._cached):
            if total <= self.cache_limit_bytes:
                break
            if self._pins.get(local, 0) == 0:
                local.unlink(missing_ok=True)
                total -= self._cached.pop(local)

    def cached_bytes(self) -> int:
        """What the local cache holds now."""
        with self._cache_lock:
            return sum(self._cached.values())

    def _fetched(self, path: str) -> Path:
        """The cache file of ``path`` (fetched if need be), not pinned: for a caller that reads
        it at once and holds nothing of it after."""
        local = self._pinned(path)
        self._unpin(local)
        return local

    def _download(self, key: str, target: Path) -> None:
        with self._fs.open_input_stream(key) as source, open(target, "wb") as sink:
            while chunk := source.read(FETCH_CHUNK_BYTES):
                sink.write(chunk)

    def _drop_from_cache(self, path: str) -> None:
        local = self._cache_path(path)
        with self._cache_lock:
            for cached in [c for c in self._cached if c == local or local in c.parents]:
                del self._cached[cached]
        if local.is_dir():
            shutil.rmtree(local, ignore_errors=True)
        else:
            local.unlink(missing_ok=True)

    # -- the ObjectStore --------------------------------------------------------------------
    def write_bytes(self, path: str, data: bytes) -> None:
        # One PUT (a multipart upload when large): the object appears whole or not at all.
        with self._fs.open_output_stream(self._key(path)) as out:
            out.write(data)
        local = self._put_in_cache(path, lambda tmp: tmp.write_bytes(data))
        with self._cache_lock:
            self._track(local)

    def read_bytes(self, path: str) -> bytes:
        local = self._pinned(path)
        try:
            return local.read_bytes()
        finally:
            self._unpin(local)

    def open_mapped(self, path: str) -> pa.NativeFile:
        local = self._pinned(path)
        try:
            with pa.memory_map(str(local), "r") as mapping:
                mapped = mapping.read_buffer()
        except BaseException:
            self._unpin(local)
            raise
        # Zero-copy: every array read from this buffer keeps the pin (its base) alive.
        pin = _Pin(self, local, mapped)
        return pa.BufferReader(pa.foreign_buffer(mapped.address, mapped.size, base=pin))

    def exists(self, path: str) -> bool:
        if self._cache_path(path).is_file():
            return True
        return bool(self._fs.get_file_info(self._key(path)).type == pafs.FileType.File)

    def size(self, path: str) -> int:
        local = self._cache_path(path)
        try:
            if local.is_file():
                return local.stat().st_size
        except FileNotFoundError:
            pass  # evicted between the two calls: S3 answers
        info = self._fs.get_file_info(self._key(path))
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(f"no such object: {path!r}")
        return int(info.size)

    def list(self, prefix: str) -> list[str]:
        """Every object whose path starts with the directory ``prefix``, sorted."""
        key = self._key(prefix)
        if prefix and self._fs.get_file_info(key).type == pafs.FileType.File:
            return [prefix]
        selector = pafs.FileSelector(key, recursive=True, allow_not_found=True)
        start = len(self.root) + 1
        return sorted(
            info.path[start:] for info in self._fs.get_file_info(selector) if info.type == pafs.FileType.File
        )

    def delete(self, path: str) -> None:
        try:
            self._fs.delete_file(self._key(path))
        except FileNotFoundError:
            pass  # deleting what is gone is fine
        self._drop_from_cache(path)

    def delete_prefix(self, prefix: str) -> None:
        if not PurePosixPath(prefix).parts:
            raise ValueError("refusing to delete the whole store")
        key = self._key(prefix)
        kind = self._fs.get_file_info(key).type
        if kind == pafs.FileType.File:
            self._fs.delete_file(key)
        elif kind == pafs.FileType.Directory:
            self._fs.delete_dir(key)
        self._drop_from_cache(prefix)

    def rename_prefix(self, src: str, dst: str) -> None:
        """Move a file or directory: copied on the server object by object, then deleted."""
        if self.list(dst):
            raise FileExistsError(f"object path already exists: {dst!r}")
        sources = self.list(src)
        for path in sources:
            self._fs.copy_file(self._key(path), self._key(dst + path[len(src) :]))
        for path in sources:
            self._fs.delete_file(self._key(path))
        cached_src, cached_dst = self._cache_path(src), self._cache_path(dst)
        if cached_src.exists():
            self._drop_from_cache(dst)
            cached_dst.parent.mkdir(parents=True, exist_ok=True)
            with self._cache_lock:
                os.rename(cached_src, cached_dst)
                for cached in [c for c in self._cached if c == cached_src or cached_src in c.parents]:
                    moved = cached_dst / cached.relative_to(cached_src)
                    self._cached[moved] = self._cached.pop(cached)

    def link(self, src: str, dst: str) -> None:
        """A server-side copy (S3 CopyObject): the bytes never travel through this process."""
        if self._fs.get_file_info(self._key(src)).type != pafs.FileType.File:
            raise FileNotFoundError(f"no object at {src!r}")
        self._fs.copy_file(self._key(src), self._key(dst))

    def local_path(self, path: str) -> Path | None:
        """The cache file of an object (fetched now if need be); None for what is no object."""
        try:
            return self._fetched(path)
        except (FileNotFoundError, IsADirectoryError):
            return None
