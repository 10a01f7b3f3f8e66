"""Building a sealed segment's scalar and JSON path indexes (the index builder's worker runs it).

The field's column is read from the segment (a field added after the seal reads as its
default or null), a JSON path index reads the path's typed projection of the JSON text (the
same projection filters scan), and the structure scalar_index_rules.py picks is built and
saved as ``index_<id>.arrow`` beside the segment's column files.
"""

from __future__ import annotations

import pyarrow as pa

from sheafdb.engine.scalar_index_rules import json_view, scalar_structure
from sheafdb.engine.snapshot import SealedSegment, SegmentIndexFile
from sheafdb.engine.write.added_fields import backfill
from sheafdb.expr import JsonColumn
from sheafdb.index.scalar import build_scalar_index, save_scalar_index
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.records import IndexRecord
from sheafdb.storage.segment_files import read_column


def builds_files(field: FieldSchema | None, index: IndexRecord) -> bool:
    """Whether the index is built per sealed segment (vector indexes, most scalar ones)."""
    if field is None:
        return False
    return field.is_vector or scalar_structure(field, index.params) is not None


def has_file(segment: SealedSegment, field: FieldSchema, index: IndexRecord) -> bool:
    if field.is_vector:
        return index.field_name in segment.index_files
    return index.index_name in segment.scalar_index_files


def needs_build(schema: CollectionSchema, segment: SealedSegment, index: IndexRecord) -> bool:
    """Whether ``segment`` still lacks a file ``index`` builds."""
    field = schema.field(index.field_name)
    if field is None:
        return False
    if field.is_vector:
        return index.field_name not in segment.index_files
    return (
        scalar_structure(field, index.params) is not None
        and index.index_name not in segment.scalar_index_files
    )


def build_scalar_file(
    store: ObjectStore, schema: CollectionSchema, segment: SealedSegment, index: IndexRecord
) -> SegmentIndexFile | None:
    """Build and save one scalar index of ``segment``; None when the index builds nothing."""
    field = schema.field(index.field_name)
    spec = None if field is None else scalar_structure(field, index.params)
    if field is None or spec is None:
        return None
    column_file = segment.columns.get(field.name)
    if column_file is None:
        column: pa.Array | pa.ChunkedArray = backfill(field, segment.num_rows)
    else:
        column = read_column(store, column_file.path)
    if field.dtype is DataType.JSON:
        located = json_view(field, index.params)
        if located is None:
            return None
        _, path, view = located
        column = JsonColumn(column).views([(path, view)])[(path, view)]
    built = build_scalar_index(spec, column)
    path_in_store = f"{segment.directory}/index_{index.index_id}.arrow"
    nbytes = save_scalar_index(built, store, path_in_store)
    return SegmentIndexFile(
        index.field_name, index.index_name, path_in_store, nbytes, dict(index.params), scalar=True
    )
