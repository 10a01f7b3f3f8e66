"""Upsert with ``partial_update=True``: the given fields replace, the others keep their values.

Milvus reads the current rows of the given keys (so the collection must be loaded), fills every
field the batch leaves out from them, and writes the merged rows as an ordinary upsert at the
new timestamp. Rows whose key does not exist yet are inserts: their missing fields take the
default or null (or are refused when the field has neither). Dynamic keys merge: the batch's
keys replace the stored ones of the same name, the other stored keys stay.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.errors import invalid
from sheafdb.schema import DYNAMIC_FIELD, CollectionSchema


def merge_partial_rows(schema: CollectionSchema, given: pa.Table, current: pa.Table) -> pa.Table:
    """``given`` with the fields it leaves out taken from ``current`` (the stored rows of its
    keys; null where a key is new). Returns every field the collection stores."""
    pk = schema.primary_field.name
    if pk not in given.column_names:
        raise invalid(f"must assign pk when upsert, primary field: {pk}")
    for f in schema.fields:
        # Milvus 2.6: "Structs do not support upsert in merge mode" (replace mode is fine).
        if f.struct_fields and f.name in given.column_names:
            raise invalid(
                f"partial update is not supported for struct array field {f.name}, "
                "upsert the whole row with partial_update=False instead"
            )
    keys = given.column(pk).combine_chunks()
    positions = pc.index_in(keys, value_set=current.column(pk).combine_chunks())
    columns: dict[str, pa.Array] = {}
    for f in schema.fields:
        if f.name in given.column_names:
            columns[f.name] = given.column(f.name).combine_chunks()
        elif f.name in current.column_names:
            columns[f.name] = current.column(f.name).take(positions).combine_chunks()
    if schema.enable_dynamic_field:
        columns[DYNAMIC_FIELD] = _merged_dynamic(given, current, positions)
    return pa.table(columns)


def existing_keys_mask(given: pa.Table, current: pa.Table, pk: str) -> pa.Array:
    """Which rows of ``given`` update a stored row (the others are new)."""
    return pc.is_in(given.column(pk).combine_chunks(), value_set=current.column(pk).combine_chunks())


def _merged_dynamic(given: pa.Table, current: pa.Table, positions: pa.Array) -> pa.Array:
    new = (
        given.column(DYNAMIC_FIELD).to_pylist()
        if DYNAMIC_FIELD in given.column_names
        else [None] * given.num_rows
    )
    old = (
        current.column(DYNAMIC_FIELD).take(positions).to_pylist()
        if DYNAMIC_FIELD in current.column_names
        else [None] * given.num_rows
    )
    merged = []
    for new_text, old_text in zip(new, old, strict=True):
        obj = json.loads(old_text) if old_text else {}
        obj.update(json.loads(new_text) if new_text else {})
        merged.append(json.dumps(obj, separators=(",", ":")))
    return pa.array(merged, pa.string())
