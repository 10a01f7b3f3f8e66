"""Sealed segment files: one Arrow IPC file per column, and the delete-record files.

One file per column lets a partial load (``load_fields``) open only the columns it needs,
and an uncompressed IPC *file* read from a memory map is zero-copy: the loaded column is
backed by the page cache, not by a heap copy. A segment is written into a temporary
directory and renamed into place, so a crash never leaves a half-written segment under its
final name; the catalog entry written afterwards is what makes it visible.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.ipc as ipc

from sheafdb.schema import TIMESTAMP_COLUMN
from sheafdb.storage.object_store import ObjectStore

COLUMN_SUFFIX = ".arrow"
DELETE_PK_COLUMN = "pk"
_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@dataclass(frozen=True)
class ColumnFile:
    column: str
    path: str
    nbytes: int


def column_file_name(column: str) -> str:
    """A file name for any column name: '$meta' -> '%24meta.arrow' (reversible, no '/' or '.')."""
    encoded = "".join(
        ch if ch in _SAFE_CHARS else "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in column
    )
    return encoded + COLUMN_SUFFIX


def _ipc_file_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def write_segment(store: ObjectStore, segment_dir: str, table: pa.Table) -> dict[str, ColumnFile]:
    """Write every column of ``table`` as its own file under ``segment_dir`` (which must not exist)."""
    names = table.column_names
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate column names in segment: {names}")
    segment_dir = segment_dir.rstrip("/")
    tmp_dir = f"{segment_dir}.{uuid.uuid4().hex}.tmp"
    sizes: dict[str, tuple[str, int]] = {}
    try:
        for name in names:
            file_name = column_file_name(name)
            data = _ipc_file_bytes(table.select([name]))
            store.write_bytes(f"{tmp_dir}/{file_name}", data)
            sizes[name] = (file_name, len(data))
        store.rename_prefix(tmp_dir, segment_dir)
    except BaseException:
        store.delete_prefix(tmp_dir)
        raise
    return {
        name: ColumnFile(column=name, path=f"{segment_dir}/{file_name}", nbytes=nbytes)
        for name, (file_name, nbytes) in sizes.items()
    }


def _read_ipc_table(store: ObjectStore, path: str, *, mmap: bool) -> pa.Table:
    # mmap: buffers point into the mapping (zero-copy); otherwise one heap copy of the file.
    source = store.open_mapped(path) if mmap else pa.BufferReader(store.read_bytes(path))
    return ipc.open_file(source).read_all()


def read_column(store: ObjectStore, path: str, *, mmap: bool = True) -> pa.ChunkedArray:
    table = _read_ipc_table(store, path, mmap=mmap)
    if table.num_columns != 1:
        raise ValueError(f"{path} is not a column file ({table.num_columns} columns)")
    return table.column(0)


def write_deletes(
    store: ObjectStore, path: str, pks: pa.Array | pa.ChunkedArray, timestamps: pa.Array | pa.ChunkedArray
) -> int:
    """Persist delete records (primary key, delete timestamp); returns the file size."""
    table = pa.table({DELETE_PK_COLUMN: pks, TIMESTAMP_COLUMN: timestamps.cast(pa.uint64())})
    data = _ipc_file_bytes(table)
    store.write_bytes(path, data)
    return len(data)


def read_deletes(store: ObjectStore, path: str) -> pa.Table:
    """The delete records of ``path``: columns "pk" and "__ts", read into the heap (they are small)."""
    return _read_ipc_table(store, path, mmap=False)
