"""Reads that find nothing answer an empty result of every output type, never an internal error.

Milvus's partition tests query a vector field over an empty partition; that once failed with
65535 ``'pyarrow.lib.DataType' object has no attribute 'list_size'`` (the empty column had no
type). Every field type is asked for, over an empty collection, an empty partition, and a
filter that keeps nothing, through query, get, search and REST.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from tests.e2e.conftest import ROOT_TOKEN

DIM = 8
SCALARS = ["b", "i8", "i16", "i32", "f", "d", "s", "j", "arr"]
# Milvus allows 4 vector fields a collection: the vector types are spread over two.
VECTOR_SETS = [("fv", "bv", "f16", "sv"), ("fv", "bf16", "i8v")]
VECTOR_TYPES = {
    "fv": DataType.FLOAT_VECTOR,
    "bv": DataType.BINARY_VECTOR,
    "f16": DataType.FLOAT16_VECTOR,
    "bf16": DataType.BFLOAT16_VECTOR,
    "sv": DataType.SPARSE_FLOAT_VECTOR,
    "i8v": DataType.INT8_VECTOR,
}


def _schema(vectors: tuple[str, ...]) -> object:
    schema = MilvusClient.create_schema(enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("b", DataType.BOOL)
    schema.add_field("i8", DataType.INT8)
    schema.add_field("i16", DataType.INT16)
    schema.add_field("i32", DataType.INT32)
    schema.add_field("f", DataType.FLOAT)
    schema.add_field("d", DataType.DOUBLE)
    schema.add_field("s", DataType.VARCHAR, max_length=16)
    schema.add_field("j", DataType.JSON)
    schema.add_field("arr", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4)
    for name in vectors:
        if name == "sv":
            schema.add_field(name, VECTOR_TYPES[name])
        else:
            schema.add_field(name, VECTOR_TYPES[name], dim=DIM * 8 if name == "bv" else DIM)
    return schema


def _index_params(client: MilvusClient, vectors: tuple[str, ...]) -> object:
    params = client.prepare_index_params()
    for name in vectors:
        if name == "bv":
            params.add_index(name, index_type="BIN_FLAT", metric_type="HAMMING")
        elif name == "sv":
            params.add_index(name, index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        else:
            params.add_index(name, index_type="FLAT", metric_type="L2")
    return params


def _row(i: int, vectors: tuple[str, ...]) -> dict[str, object]:
    rng = np.random.default_rng(i)
    row = {
        "id": i,
        "b": True,
        "i8": 1,
        "i16": 2,
        "i32": 3,
        "f": 0.5,
        "d": 0.25,
        "s": "x",
        "j": {"k": i},
        "arr": [1, 2],
        "fv": rng.random(DIM).tolist(),
        "bv": bytes(rng.integers(0, 256, DIM, dtype=np.uint8)),
        "f16": rng.random(DIM).astype(np.float16),
        "bf16": rng.random(DIM).astype(np.float32).tobytes()[: DIM * 2],
        "sv": {1: 0.5, 7: 0.25},
        "i8v": rng.integers(-5, 5, DIM).astype(np.int8),
    }
    return {k: v for k, v in row.items() if k not in VECTOR_TYPES or k in vectors}


@pytest.fixture(scope="module", params=VECTOR_SETS, ids=["+".join(v) for v in VECTOR_SETS])
def empty_and_full(
    client: MilvusClient, request: pytest.FixtureRequest
) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    vectors = request.param
    empty = f"empty_{uuid.uuid4().hex[:8]}"
    full = f"full_{uuid.uuid4().hex[:8]}"
    for name in (empty, full):
        client.create_collection(name, schema=_schema(vectors), index_params=_index_params(client, vectors))
        client.create_partition(name, "nothing_here")
    client.insert(full, [_row(i, vectors) for i in range(3)])
    client.flush(full)
    client.insert(full, [_row(i, vectors) for i in range(3, 5)])
    yield empty, full, vectors
    client.drop_collection(empty)
    client.drop_collection(full)


def _reads_find_nothing(client: MilvusClient, empty: str, full: str, output: list[str]) -> None:
    assert client.query(empty, filter="id >= 0", output_fields=output) == []
    assert client.query(full, filter="id > 1000", output_fields=output) == []
    assert client.query(full, filter="id >= 0", output_fields=output, partition_names=["nothing_here"]) == []
    assert client.get(empty, ids=[1, 2], output_fields=output) == []
    assert client.get(full, ids=[1000], output_fields=output) == []
    hits = client.search(empty, [[0.5] * DIM], anns_field="fv", limit=3, output_fields=output)
    assert [list(h) for h in hits] == [[]]
    hits = client.search(
        full, [[0.5] * DIM], anns_field="fv", limit=3, filter="id > 1000", output_fields=output
    )
    assert [list(h) for h in hits] == [[]]


@pytest.mark.parametrize("output_field", ["*", *SCALARS])
def test_scalars_over_nothing_answer_empty(
    client: MilvusClient, empty_and_full: tuple[str, str, tuple[str, ...]], output_field: str
) -> None:
    empty, full, _ = empty_and_full
    _reads_find_nothing(client, empty, full, [output_field])


def test_vectors_over_nothing_answer_empty(
    client: MilvusClient, empty_and_full: tuple[str, str, tuple[str, ...]]
) -> None:
    empty, full, vectors = empty_and_full
    for vector in vectors:
        _reads_find_nothing(client, empty, full, [vector])


def test_rest_query_over_nothing_answers_empty(
    server_uri: str, empty_and_full: tuple[str, str, tuple[str, ...]]
) -> None:
    empty, _, _ = empty_and_full
    reply = httpx.post(
        f"{server_uri}/v2/vectordb/entities/query",
        json={"collectionName": empty, "filter": "id >= 0", "outputFields": ["*"]},
        headers={"Authorization": f"Bearer {ROOT_TOKEN}"},
    ).json()
    assert reply == {"code": 0, "data": [], "cost": 0}
