"""Running a collection's functions on a write: the BM25 output field is filled from its text.

Clients never send a function's output field (pymilvus leaves it out of the rows it builds);
one that does is refused, as Milvus does. The filled column is logged with the batch, so
recovery replays the same vectors without analyzing again.
"""

from __future__ import annotations

import pyarrow as pa

from sheafdb.errors import invalid
from sheafdb.schema import CollectionSchema
from sheafdb.schema_functions import FunctionType
from sheafdb.text.analyzer import analyzer_for_field
from sheafdb.text.bm25 import term_frequencies


def fill_function_outputs(schema: CollectionSchema, data: pa.Table) -> pa.Table:
    for function in schema.functions:
        if function.type is not FunctionType.BM25:
            continue
        (output,) = function.output_field_names
        if output in data.column_names:
            raise invalid(f"attempt to insert an unexpected function output field {output} to collection")
        source = schema.field(function.input_field_names[0])
        if source is None or source.name not in data.column_names:
            continue  # the missing input is write validation's error to report
        column = data.column(source.name)
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            continue  # a wrongly typed input is write validation's error as well
        vectors = term_frequencies(analyzer_for_field(source), column.to_pylist())
        data = data.append_column(output, vectors)
    return data
