"""The growing segment: rows and deletes acknowledged but not sealed yet.

Rows are kept per partition as a list of immutable Arrow tables, each tagged with the
write-ahead-log record (lsn) it came from, so a seal can later remove exactly the batches it
wrote (those with lsn <= the seal's lsn) while newer batches stay. Not thread-safe on its own:
the owning Collection's lock guards every call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from sheafdb.engine.write.added_fields import backfill, backfilled_table
from sheafdb.schema import CollectionSchema, FieldSchema


@dataclass(frozen=True)
class GrowingCapture:
    """What a seal takes: every batch and delete up to ``lsn``."""

    lsn: int
    rows: dict[int, pa.Table]  # partition id -> rows (non-empty partitions only)
    deletes: pa.Table | None  # None when there are none
    max_ts: int


@dataclass
class GrowingData:
    row_schema: pa.Schema
    delete_schema: pa.Schema
    # The collection schema: the defaults of fields added after a logged batch was written.
    schema: CollectionSchema | None = None
    _rows: dict[int, list[tuple[int, pa.Table]]] = field(default_factory=dict)
    _deletes: list[tuple[int, pa.Table]] = field(default_factory=list)
    _tables: dict[int, pa.Table] | None = None
    nbytes: int = 0
    last_lsn: int = 0
    max_ts: int = 0

    def add_rows(self, partition_id: int, lsn: int, rows: pa.Table, timestamp: int) -> None:
        if rows.schema.names != self.row_schema.names:
            # Logged before add_collection_field and replayed after it: the new field holds
            # its default (or null).
            if self.schema is not None:
                rows = backfilled_table(self.schema, self.row_schema, rows)
            else:
                rows = pa.Table.from_arrays(
                    [
                        rows.column(f.name)
                        if f.name in rows.schema.names
                        else pa.nulls(rows.num_rows, f.type)
                        for f in self.row_schema
                    ],
                    schema=self.row_schema,
                )
        if rows.num_rows:
            self._rows.setdefault(partition_id, []).append((lsn, rows))
            self.nbytes += rows.nbytes
            self._tables = None
        self._advance(lsn, timestamp)

    def add_deletes(self, lsn: int, deletes: pa.Table, timestamp: int) -> None:
        if deletes.num_rows:
            self._deletes.append((lsn, deletes))
            self.nbytes += deletes.nbytes
        self._advance(lsn, timestamp)

    def note_lsn(self, lsn: int) -> None:
        self.last_lsn = max(self.last_lsn, lsn)

    def _advance(self, lsn: int, timestamp: int) -> None:
        self.last_lsn = max(self.last_lsn, lsn)
        self.max_ts = max(self.max_ts, timestamp)

    def tables(self) -> dict[int, pa.Table]:
        """Partition id -> all its growing rows (cached until the next change; zero-copy concat)."""
        if self._tables is None:
            self._tables = {
                pid: pa.concat_tables([t for _, t in batches]) if len(batches) > 1 else batches[0][1]
                for pid, batches in self._rows.items()
                if batches
            }
        return self._tables

    def deletes(self) -> list[pa.Table]:
        return [t for _, t in self._deletes]

    def row_count(self, partition_id: int | None = None) -> int:
        return sum(
            t.num_rows
            for pid, batches in self._rows.items()
            for _, t in batches
            if partition_id is None or pid == partition_id
        )

    def capture(self) -> GrowingCapture:
        """Everything applied so far (the caller guarantees no write is half-applied)."""
        deletes = self.deletes()
        return GrowingCapture(
            lsn=self.last_lsn,
            rows={pid: t for pid, t in self.tables().items() if t.num_rows},
            deletes=pa.concat_tables(deletes).combine_chunks() if deletes else None,
            max_ts=self.max_ts,
        )

    def remove_up_to(self, lsn: int) -> None:
        """Drop batches and deletes a seal has made durable elsewhere."""
        for pid in list(self._rows):
            kept = [(b_lsn, t) for b_lsn, t in self._rows[pid] if b_lsn > lsn]
            if kept:
                self._rows[pid] = kept
            else:
                del self._rows[pid]
        self._deletes = [(d_lsn, t) for d_lsn, t in self._deletes if d_lsn > lsn]
        self.nbytes = sum(t.nbytes for batches in self._rows.values() for _, t in batches) + sum(
            t.nbytes for _, t in self._deletes
        )
        self._tables = None

    def drop_partition(self, partition_id: int) -> None:
        batches = self._rows.pop(partition_id, [])
        self.nbytes -= sum(t.nbytes for _, t in batches)
        self._tables = None

    def add_null_column(self, new_field: FieldSchema, schema: CollectionSchema) -> None:
        """A field was added to the schema: every batch gets it, holding its default or null."""
        row_schema = schema.arrow_schema()
        position = row_schema.get_field_index(new_field.name)
        column = pa.field(new_field.name, new_field.arrow_type(), nullable=True)
        for batches in self._rows.values():
            batches[:] = [
                (lsn, t.add_column(position, column, backfill(new_field, t.num_rows))) for lsn, t in batches
            ]
        self.row_schema = row_schema
        self.schema = schema
        self._tables = None

    def clear(self) -> None:
        self._rows.clear()
        self._deletes.clear()
        self.nbytes = 0
        self._tables = None
