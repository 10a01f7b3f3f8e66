"""Search replies are typed from the collection's schema (``Engine.collection_schema``).

A search with no output fields returns typed primary keys; any other returned column (schema
fields, dynamic keys) is typed by the schema too. Runs the real servicer on a real engine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from sheafdb.api.grpc.servicer import MilvusServicer
from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState
from sheafdb.schema import DYNAMIC_FIELD, CollectionSchema, DataType, FieldSchema

DB = "default"
NAME = "hits"
ROWS = 50


class _Call:
    """The part of ``grpc.ServicerContext`` the data handlers read."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


def _vectors() -> np.ndarray:
    return np.random.default_rng(3).random((ROWS, 4), dtype=np.float32)


@pytest.fixture(scope="module")
def servicer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServicer]:
    engine = Engine(EngineConfig(data_dir=Path(tmp_path_factory.mktemp("hits"))))
    schema = CollectionSchema(
        fields=(
            FieldSchema("pk", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=4),
            FieldSchema("tag", DataType.VARCHAR, max_length=16),
        ),
        enable_dynamic_field=True,
    )
    engine.create_collection(DB, NAME, schema)
    engine.create_index(DB, NAME, "vec", "vec_index", {"index_type": "FLAT", "metric_type": "L2"})
    vectors = _vectors()
    table = pa.table(
        {
            "pk": pa.array(range(ROWS), pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 4).cast(
                schema.field("vec").arrow_type()
            ),
            "tag": pa.array([f"t{i}" for i in range(ROWS)]),
            DYNAMIC_FIELD: pa.array([json.dumps({"color": f"c{i}"}) for i in range(ROWS)]),
        }
    )
    engine.insert(DB, NAME, table)
    engine.load_collection(DB, NAME)
    deadline = time.monotonic() + 30
    while engine.get_load_state(DB, NAME) is not LoadState.LOADED and time.monotonic() < deadline:
        time.sleep(0.05)
    yield MilvusServicer(engine)
    engine.close()


def _search(servicer: MilvusServicer, row: int, output_fields: list[str]) -> schema_pb2.SearchResultData:
    placeholder = common_pb2.PlaceholderGroup(
        placeholders=[
            common_pb2.PlaceholderValue(
                tag="$0", type=common_pb2.PlaceholderType.FloatVector, values=[_vectors()[row].tobytes()]
            )
        ]
    )
    request = milvus_pb2.SearchRequest(
        collection_name=NAME,
        placeholder_group=placeholder.SerializeToString(),
        nq=1,
        output_fields=output_fields,
        search_params=[
            common_pb2.KeyValuePair(key="anns_field", value="vec"),
            common_pb2.KeyValuePair(key="topk", value="5"),
            common_pb2.KeyValuePair(key="metric_type", value="L2"),
        ],
    )
    reply = servicer.Search(request, _Call())  # type: ignore[arg-type]
    assert reply.status.code == 0, reply.status.reason
    return reply.results


@pytest.mark.parametrize("row", [0, 17, ROWS - 1])
def test_search_without_output_fields_returns_typed_primary_keys(servicer: MilvusServicer, row: int) -> None:
    data = _search(servicer, row, [])
    ids = list(data.ids.int_id.data)
    assert ids[0] == row  # the query vector is that row's own vector
    assert list(data.topks) == [5]
    assert data.primary_field_name == "pk"
    assert [f.field_name for f in data.fields_data] == ["pk"]
    key = data.fields_data[0]
    assert key.type == schema_pb2.DataType.Int64
    assert list(key.scalars.long_data.data) == ids


def test_search_with_output_fields_types_them_from_the_schema(servicer: MilvusServicer) -> None:
    data = _search(servicer, 17, ["tag", "color"])
    ids = list(data.ids.int_id.data)
    columns = {f.field_name: f for f in data.fields_data}
    assert columns["tag"].type == schema_pb2.DataType.VarChar
    assert list(columns["tag"].scalars.string_data.data) == [f"t{i}" for i in ids]
    dynamic = columns[DYNAMIC_FIELD]
    assert dynamic.is_dynamic
    assert [json.loads(blob) for blob in dynamic.scalars.json_data.data] == [{"color": f"c{i}"} for i in ids]
    assert list(columns["pk"].scalars.long_data.data) == ids
