"""Time to live, exact: a row is hidden from every read from the instant it expires.

Milvus 2.6 has two modes, never both on one collection: ``collection.ttl.seconds`` (a row
expires that long after it was written: its ``__ts``), and ``ttl_field`` naming a TIMESTAMPTZ
field that holds each row's own expiry time (null: never). Milvus hides expired rows only once
compaction has run; here every read (search, query, get, count, delete by filter, statistics)
applies the rule at the read's instant, and compaction reclaims the rows' space later.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.errors import invalid
from sheafdb.schema import TIMESTAMP_COLUMN, CollectionSchema, DataType
from sheafdb.storage.timestamps import LOGICAL_BITS

COLLECTION_TTL_PROPERTY = "collection.ttl.seconds"
TTL_FIELD_PROPERTY = "ttl_field"
# Milvus's common.MaxTTLSeconds: a hundred years.
MAX_TTL_SECONDS = 3155760000


@dataclass(frozen=True)
class Expiry:
    """The rule of one collection at one instant (``now_ms``, wall-clock milliseconds)."""

    now_ms: int
    ttl_ms: int | None = None  # collection.ttl.seconds, in milliseconds
    field: str | None = None  # ttl_field: a TIMESTAMPTZ column of UTC microseconds

    def expired(self, table: pa.Table) -> np.ndarray | None:
        """Mask of the rows of ``table`` expired at ``now_ms`` (None: none is)."""
        if table.num_rows == 0:
            return None
        if self.ttl_ms is not None:
            written_ms = pc.shift_right(table.column(TIMESTAMP_COLUMN), LOGICAL_BITS)
            # Only rows written before the cut-off: a uint64 comparison, no overflow.
            cutoff = max(self.now_ms - self.ttl_ms, 0)
            mask = pc.less_equal(written_ms, pa.scalar(cutoff, pa.uint64()))
        elif self.field is not None and self.field in table.column_names:
            mask = pc.fill_null(pc.less_equal(table.column(self.field), self.now_ms * 1000), False)
        else:
            return None
        expired = np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)
        return expired if expired.any() else None


def expiry_of(properties: Mapping[str, str], now_ms: int | None = None) -> Expiry | None:
    """The collection's TTL rule now, or None when it has none."""
    seconds = properties.get(COLLECTION_TTL_PROPERTY)
    field = properties.get(TTL_FIELD_PROPERTY)
    if not seconds and not field:
        return None
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if seconds:
        try:
            ttl = int(seconds)
        except ValueError:
            return None
        return Expiry(now, ttl_ms=ttl * 1000) if ttl > 0 else None
    return Expiry(now, field=field)


def check_ttl_properties(schema: CollectionSchema, properties: Mapping[str, str]) -> None:
    """Milvus's rules (and texts: proxy ``validateCollectionTTL`` / ``validateTTLField``) for the
    two TTL properties a collection is about to have; -1 (like 0) means no TTL."""
    seconds = properties.get(COLLECTION_TTL_PROPERTY)
    field = properties.get(TTL_FIELD_PROPERTY)
    if seconds is not None:
        try:
            value = int(str(seconds).strip())
        except ValueError:
            raise invalid("collection TTL is not a valid positive integer") from None
        if not -1 <= value <= MAX_TTL_SECONDS:
            raise invalid(f"collection TTL is out of range, expect [-1, {MAX_TTL_SECONDS}], got {value}")
    if field is not None:
        target = schema.field(field)
        if target is None:
            raise invalid(f"ttl field name {field} not found in schema")
        if target.dtype is not DataType.TIMESTAMPTZ:
            raise invalid(f"ttl field must be timestamptz, field name = {field}")
    if seconds is not None and field is not None:
        raise invalid("collection TTL and ttl field cannot be set at the same time")
