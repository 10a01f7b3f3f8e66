"""What the read plane sees of a collection's data: an immutable view at one moment.

A ``DataSnapshot`` is taken under the collection's lock and never changes afterwards, so a
search can run on it while writes, seals and compactions go on. Every acknowledged row is in
exactly one place: a sealed segment or a growing table, never both (the seal swaps them in one
step under the lock).

Deletes are kept per collection, not per segment: ``DataSnapshot.deletes`` holds every delete
that may still hide a row, sealed or growing, each with its partition scope (visibility.py). A
row is visible unless some delete reaching its partition has its primary key and a timestamp
greater than the row's ``__ts``. (An upsert is a delete and an insert at the same timestamp, so
its new row survives.)

A segment sealed or merged while the collection is loaded is *handed off*: its rows stay
served from memory (``Handoff``) until the loader has installed it.

Segment files stay on disk while a snapshot that lists them is alive: compaction only deletes
the files of a replaced segment once the last ``SealedSegment`` object naming them has been
garbage collected (see ``compaction.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import pyarrow as pa

from sheafdb.storage.segment_files import ColumnFile


class SegmentColumns(dict[str, ColumnFile]):
    """Column name -> file. A dict subclass so it can be weakly referenced: every version of a
    SealedSegment shares one, which is what pins the segment's files (see sealing.py)."""


@dataclass(frozen=True)
class SegmentIndexFile:
    """A built index of one sealed segment, saved beside its column files: a vector index, or
    (``scalar``) a scalar / JSON path index (sheafdb.index.scalar)."""

    field_name: str
    index_name: str
    path: str
    nbytes: int
    params: Mapping[str, str]
    scalar: bool = False


@dataclass(frozen=True, eq=False)
class SealedSegment:
    """An immutable segment on disk. Compared by identity: its lifetime pins its files."""

    segment_id: int
    partition_id: int
    num_rows: int
    # Every field, "$meta" if the collection is dynamic, and "__ts".
    columns: Mapping[str, ColumnFile]
    # Vector field name -> its built index (absent until the background build finishes).
    index_files: Mapping[str, SegmentIndexFile] = field(default_factory=dict)
    # Scalar index name -> its built file (a JSON field may hold several path indexes).
    scalar_index_files: Mapping[str, SegmentIndexFile] = field(default_factory=dict)
    # Directory of the column files inside the object store.
    directory: str = ""
    # The deletes file this segment carried when it was sealed (already part of
    # ``DataSnapshot.deletes``; listed here for compaction and accounting only).
    deletes_path: str | None = None

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.columns.values())

    def with_index_files(self, files: Iterable[SegmentIndexFile]) -> SealedSegment:
        """This segment also listing ``files`` (each under its kind's key)."""
        vectors, scalars = dict(self.index_files), dict(self.scalar_index_files)
        for built in files:
            if built.scalar:
                scalars[built.index_name] = built
            else:
                vectors[built.field_name] = built
        return replace(self, index_files=vectors, scalar_index_files=scalars)

    def without_index(self, field_name: str, index_name: str) -> SealedSegment:
        """This segment no longer listing the dropped index ``index_name`` of ``field_name``."""
        vectors = {k: v for k, v in self.index_files.items() if k != field_name or v.index_name != index_name}
        scalars = {k: v for k, v in self.scalar_index_files.items() if k != index_name}
        return replace(self, index_files=vectors, scalar_index_files=scalars)


@dataclass(frozen=True)
class DeleteFile:
    """Deletes a seal made durable: a row-less catalog segment whose only file is its deletes.

    Deletes hide rows in every partition, so they never ride on a partition's row segment
    (dropping that partition would lose them): they live in the collection's anchor partition
    (``_default``, or the first one), which can never be dropped. Data plane only.
    """

    segment_id: int
    directory: str
    path: str
    num_deletes: int


@dataclass(frozen=True)
class Handoff:
    """Rows of a sealed segment the loader has not installed yet, served from memory meanwhile.

    A seal moves rows from the growing tables into a segment file in one step, but loading
    that file takes a while: until the loader installs the segment, reads serve it from the
    captured growing tables (``rows``, searched exactly like growing rows). A compaction's
    merged segment is served from the installed segments it replaced (``predecessors``) until
    it is installed itself. Either way a read never opens a file and never reserves memory.
    """

    rows: tuple[pa.Table, ...] = ()
    predecessors: tuple[SealedSegment, ...] = ()


@dataclass(frozen=True)
class DataSnapshot:
    sealed: tuple[SealedSegment, ...]
    # Partition id -> rows not sealed yet, laid out as ``schema.arrow_schema()``.
    growing: Mapping[int, pa.Table]
    # Columns "pk" (int64 or string, as the primary key), "__ts" (uint64), "__scope" (int64).
    deletes: pa.Table
    # Every write acknowledged before the snapshot was taken is in it.
    timestamp: int
    # Sealed segment id -> how to serve it until the loader installs it (absent: installed,
    # or nothing of the collection is loaded).
    handoff: Mapping[int, Handoff] = field(default_factory=dict)


@dataclass(frozen=True)
class DataEvent:
    """What a collection tells its listeners: "sealed", "index_built" or "compacted"."""

    kind: str
    collection_id: int
    # Segments that appeared / were replaced; empty when not relevant.
    added: tuple[SealedSegment, ...] = ()
    removed: tuple[SealedSegment, ...] = ()
