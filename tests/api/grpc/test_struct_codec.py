"""Struct array fields on the wire: pymilvus's own describe reading, insert building and result
reading around our schema codec and our ``list<struct>`` column codec."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pymilvus.client.prepare import Prepare
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from sheafdb.api.grpc.field_codec import fields_to_table, fill_field_data
from sheafdb.api.grpc.results import query_results
from sheafdb.api.grpc.schema_codec import schema_from_proto, schema_to_proto
from sheafdb.engine.models import QueryResult
from sheafdb.engine.read.output import cut_struct
from sheafdb.errors import ParameterInvalid
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

from .codec_helpers import describe_dict, read_query_results

CHUNKS = FieldSchema(
    "chunks",
    DataType.ARRAY_OF_STRUCT,
    field_id=102,
    max_capacity=3,
    struct_fields=(
        FieldSchema("text", DataType.VARCHAR, field_id=103, max_length=8),
        FieldSchema("n", DataType.INT16, field_id=104),
        FieldSchema("emb", DataType.FLOAT_VECTOR, field_id=105, dim=2),
    ),
)
SCHEMA = CollectionSchema(
    fields=(
        FieldSchema("pk", DataType.INT64, field_id=100, is_primary=True),
        FieldSchema("v", DataType.FLOAT_VECTOR, field_id=101, dim=2),
        CHUNKS,
    )
)
ROWS: list[dict[str, Any]] = [
    {"pk": 1, "v": [0.0, 1.0], "chunks": [{"text": "a", "n": 1, "emb": [0.5, 0.25]}]},
    {"pk": 2, "v": [1.0, 0.0], "chunks": []},
    {
        "pk": 3,
        "v": [1.0, 1.0],
        "chunks": [{"text": "b", "n": -2, "emb": [1.0, 2.0]}, {"text": "c", "n": 3, "emb": [3.0, 4.0]}],
    },
]


def _insert(rows: list[dict[str, Any]]) -> milvus_pb2.InsertRequest:
    described = describe_dict("c", SCHEMA)
    return Prepare.row_insert_param("c", rows, "", described["fields"], described["struct_array_fields"])


def test_schema_round_trips_through_the_proto_and_pymilvus() -> None:
    proto = schema_to_proto("c", SCHEMA)
    (struct,) = proto.struct_array_fields
    assert [f.name for f in struct.fields] == ["chunks[text]", "chunks[n]", "chunks[emb]"]
    assert [f.data_type for f in struct.fields] == [
        schema_pb2.Array,
        schema_pb2.Array,
        schema_pb2.ArrayOfVector,
    ]
    assert schema_from_proto(proto) == SCHEMA
    described = describe_dict("c", SCHEMA)
    (struct_info,) = described["struct_array_fields"]  # what pymilvus's insert path reads
    assert struct_info["name"] == "chunks"
    assert [f["element_type"] for f in struct_info["fields"]] == [
        DataType.VARCHAR,
        DataType.INT16,
        DataType.FLOAT_VECTOR,
    ]


def test_insert_columns_become_one_list_of_struct_column_and_read_back() -> None:
    request = _insert(ROWS)
    table = fields_to_table(request.fields_data, request.num_rows, SCHEMA)
    column = table.column("chunks").combine_chunks()
    assert column.type == pa.list_(
        pa.struct([("text", pa.string()), ("n", pa.int16()), ("emb", pa.list_(pa.float32(), 2))])
    )
    assert [len(r) for r in column.to_pylist()] == [1, 0, 2]
    response = query_results(SCHEMA, QueryResult(table=table, output_fields=("pk", "chunks")), "c", 1)
    read = read_query_results(response)
    assert [r["chunks"] for r in read] == [r["chunks"] for r in ROWS]
    only_text = cut_struct(column, ["text"])
    response = query_results(
        SCHEMA,
        QueryResult(table=table.set_column(2, "chunks", only_text), output_fields=("pk", "chunks")),
        "c",
        1,
    )
    assert read_query_results(response)[2]["chunks"] == [{"text": "b"}, {"text": "c"}]


def test_sub_fields_that_disagree_on_row_lengths_are_refused() -> None:
    request = _insert(ROWS)
    struct_fd = next(fd for fd in request.fields_data if fd.field_name == "chunks")
    del struct_fd.struct_arrays.fields[0].scalars.array_data.data[2].string_data.data[1]
    with pytest.raises(ParameterInvalid, match="different numbers of elements"):
        fields_to_table(request.fields_data, request.num_rows, SCHEMA)


def test_fill_field_data_writes_each_sub_field_column_wise() -> None:
    request = _insert(ROWS)
    column = fields_to_table(request.fields_data, request.num_rows, SCHEMA).column("chunks")
    fd = schema_pb2.FieldData()
    fill_field_data(fd, CHUNKS, column)
    assert fd.type == schema_pb2.ArrayOfStruct
    text, n, emb = fd.struct_arrays.fields
    assert [list(r.string_data.data) for r in text.scalars.array_data.data] == [["a"], [], ["b", "c"]]
    assert [list(r.int_data.data) for r in n.scalars.array_data.data] == [[1], [], [-2, 3]]
    flat = [np.asarray(r.float_vector.data).tolist() for r in emb.vectors.vector_array.data]
    assert flat == [[0.5, 0.25], [], [1.0, 2.0, 3.0, 4.0]]
