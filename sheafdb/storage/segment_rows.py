"""The catalog rows of sealed segments and of their built index files.

A mixin of ``SqlCatalog`` (its connection and transactions, in the SQL SQLite and PostgreSQL
share), kept apart from the collection rows it hangs off: a segment belongs to a partition of
its collection (checked on insert), compaction replaces segments atomically, and an index
file is recorded only while its segment and index both exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sheafdb.errors import IndexNotFound, ParameterInvalid
from sheafdb.storage.catalog_tables import SEGMENT_COLUMNS, segment_from_row
from sheafdb.storage.records import DroppedData, SegmentIndexRecord, SegmentRecord


class _Catalog(Protocol):
    @property
    def integrity_error(self) -> type[Exception]: ...

    def _tx(self) -> AbstractContextManager[Any]: ...
    def _read(self) -> AbstractContextManager[Any]: ...
    def _dropped(self, cur: Any, segment_filter: str, value: int) -> DroppedData: ...
    def _insert_segment(self, cur: Any, segment: SegmentRecord) -> None: ...


class SegmentRows:
    def add_segment(self: _Catalog, segment: SegmentRecord) -> None:
        """Register a sealed segment whose files are already written (id from allocate_id)."""
        with self._tx() as cur:
            self._insert_segment(cur, segment)

    def replace_segments(self: _Catalog, old_ids: Sequence[int], new: SegmentRecord | None) -> DroppedData:
        """Compaction: remove ``old_ids`` and add ``new`` atomically; returns what was removed."""
        with self._tx() as cur:
            removed = []
            if old_ids:  # PostgreSQL has no empty IN list
                placeholders = ", ".join("?" * len(old_ids))
                found = cur.execute(
                    f"SELECT COUNT(*) FROM segments WHERE segment_id IN ({placeholders})", tuple(old_ids)
                ).fetchone()[0]
                if found != len(set(old_ids)):
                    raise ParameterInvalid(f"segments to replace are not all in the catalog: {list(old_ids)}")
                removed = [self._dropped(cur, "s.segment_id = ?", sid) for sid in old_ids]
                cur.execute(f"DELETE FROM segments WHERE segment_id IN ({placeholders})", tuple(old_ids))
            if new is not None:
                self._insert_segment(cur, new)
            return DroppedData(
                segments=tuple(s for d in removed for s in d.segments),
                segment_indexes=tuple(i for d in removed for i in d.segment_indexes),
            )

    def set_segment_deletes(self: _Catalog, segment_id: int, deletes_path: str | None) -> SegmentRecord:
        with self._tx() as cur:
            updated = cur.execute(
                "UPDATE segments SET deletes_path = ? WHERE segment_id = ?", (deletes_path, segment_id)
            ).rowcount
            if updated == 0:
                raise ParameterInvalid(f"segment {segment_id} is not in the catalog")
            row = cur.execute(f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE segment_id = ?", (segment_id,))
            return segment_from_row(row.fetchone())

    def list_segments(
        self: _Catalog, collection_id: int, partition_id: int | None = None
    ) -> list[SegmentRecord]:
        with self._read() as cur:
            if partition_id is None:
                rows = cur.execute(
                    f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE collection_id = ? ORDER BY segment_id",
                    (collection_id,),
                )
            else:
                rows = cur.execute(
                    f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE collection_id = ? AND partition_id = ? "
                    "ORDER BY segment_id",
                    (collection_id, partition_id),
                )
            return [segment_from_row(r) for r in rows]

    def add_segment_index(self: _Catalog, record: SegmentIndexRecord) -> None:
        """Record a built index file; fails (nothing written) if its segment or index is gone."""
        with self._tx() as cur:
            try:
                cur.execute(
                    "INSERT INTO segment_indexes VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (segment_id, index_id) DO UPDATE SET field_name = excluded.field_name, "
                    "path = excluded.path, nbytes = excluded.nbytes",
                    (record.segment_id, record.index_id, record.field_name, record.path, record.nbytes),
                )
            except self.integrity_error as exc:
                raise IndexNotFound(
                    f"segment {record.segment_id} or index {record.index_id} no longer exists"
                ) from exc

    def list_segment_indexes(self: _Catalog, collection_id: int) -> list[SegmentIndexRecord]:
        with self._read() as cur:
            rows = cur.execute(
                "SELECT i.segment_id, i.index_id, i.field_name, i.path, i.nbytes FROM segment_indexes i "
                "JOIN segments s ON s.segment_id = i.segment_id WHERE s.collection_id = ? "
                "ORDER BY i.segment_id, i.index_id",
                (collection_id,),
            )
            return [SegmentIndexRecord(*r) for r in rows]
