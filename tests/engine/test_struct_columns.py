"""A write's struct array column, checked and cast before anything is stored: the shapes REST
(JSON inferred by Arrow) and gRPC send, and every refusal."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sheafdb.engine.write.struct_columns import check_struct_column
from sheafdb.errors import ParameterInvalid
from sheafdb.schema import DataType, FieldSchema

CHUNKS = FieldSchema(
    "chunks",
    DataType.ARRAY_OF_STRUCT,
    max_capacity=2,
    struct_fields=(
        FieldSchema("text", DataType.VARCHAR, max_length=4),
        FieldSchema("n", DataType.INT8),
        FieldSchema("emb", DataType.FLOAT_VECTOR, dim=2),
    ),
)


def test_json_shaped_rows_are_cast_to_the_stored_layout() -> None:
    rows = [[{"text": "ab", "n": 1, "emb": [1, 2]}], [], [{"text": "c", "n": -1, "emb": [0.5, 0.25]}] * 2]
    checked = check_struct_column(CHUNKS, pa.array(rows))
    assert checked.type == CHUNKS.arrow_type()
    assert checked.to_pylist()[0] == [{"text": "ab", "n": 1, "emb": [1.0, 2.0]}]
    assert check_struct_column(CHUNKS, pa.array([[], []])).to_pylist() == [[], []]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[{"text": "a", "n": 1, "emb": [1, 2]}] * 3], "exceeds max capacity"),
        ([[{"text": "abcde", "n": 1, "emb": [1, 2]}]], "exceeds max length"),
        ([[{"text": "a", "n": 1, "emb": [1, 2, 3]}]], r"dim \(3\) of field data\(chunks\[emb\]\)"),
        ([[{"text": "a", "n": 300, "emb": [1, 2]}]], "should be INT8"),
        ([[{"text": "a", "n": "x", "emb": [1, 2]}]], "should be INT8"),
        ([[{"text": "a", "emb": [1, 2]}]], "sub-field n of struct array field chunks is missing"),
        ([[{"text": "a", "n": 1, "emb": [1, 2], "x": 1}]], "sub-field x does not exist"),
        ([[{"text": None, "n": 1, "emb": [1, 2]}]], "contains null values"),
        ([[{"text": "a", "n": 1, "emb": [float("nan"), 2]}]], "not a number or infinity"),
        ([[None]], "an element of struct array field chunks is null"),
        ([[1, 2]], "should be an array of struct"),
    ],
)
def test_refusals(rows: list, message: str) -> None:
    with pytest.raises(ParameterInvalid, match=message):
        check_struct_column(CHUNKS, pa.array(rows))
