"""What rows written before a field existed hold: its default value, else null.

Milvus's add_collection_field: a field added later reads, for every older row, as the field's
default (or null when it has none) — in outputs and in filters, in growing and sealed data.
Segments sealed before the field keep no file for it; the readers fill it from here.
"""

from __future__ import annotations

import pyarrow as pa

from sheafdb.engine.write.write_validation import default_column
from sheafdb.schema import CollectionSchema, FieldSchema


def backfill(field: FieldSchema, num_rows: int) -> pa.Array:
    if field.default_value is None:
        return pa.nulls(num_rows, field.arrow_type())
    return default_column(field, num_rows)


def backfilled_table(schema: CollectionSchema, layout: pa.Schema, table: pa.Table) -> pa.Table:
    """``table`` in ``layout``: columns it lacks (fields added after it was written) filled."""
    if table.schema.equals(layout):
        return table
    columns = []
    for column in layout:
        if column.name in table.column_names:
            columns.append(table.column(column.name))
            continue
        field = schema.field(column.name)
        columns.append(
            backfill(field, table.num_rows) if field is not None else pa.nulls(table.num_rows, column.type)
        )
    return pa.Table.from_arrays(columns, schema=layout)
