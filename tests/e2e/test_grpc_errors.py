"""Bad input over the wire: Milvus's codes, clear texts, and the server stays up."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pymilvus import MilvusClient, MilvusException
from pymilvus.client.types import LoadState

DIM = 4


@pytest.fixture(scope="module")
def coll(client: MilvusClient) -> Iterator[str]:
    name = f"err_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dimension=DIM)
    client.insert(name, [{"id": i, "vector": [float(i)] * DIM, "tag": "x"} for i in range(10)])
    yield name
    client.drop_collection(name)


def code_of(fn: object) -> MilvusException:
    with pytest.raises(MilvusException) as raised:
        fn()  # type: ignore[operator]
    return raised.value


def test_unknown_collection(client: MilvusClient) -> None:
    assert code_of(lambda: client.load_collection("nope_nope")).code == 100
    assert code_of(lambda: client.release_collection("nope_nope")).code == 100
    assert code_of(lambda: client.query("nope_nope", filter="id > 0")).code == 100
    assert client.get_load_state("nope_nope")["state"] == LoadState.NotExist


def test_wrong_dimension(client: MilvusClient, coll: str) -> None:
    assert code_of(lambda: client.search(coll, [[1.0] * (DIM + 1)], limit=3)).code == 1100


def test_topk_too_large(client: MilvusClient, coll: str) -> None:
    error = code_of(lambda: client.search(coll, [[1.0] * DIM], limit=20000))
    assert error.code == 1100
    assert "topk [20000] is invalid, it should be in range [1, 16384], but got 20000" in error.message


def test_bad_expression(client: MilvusClient, coll: str) -> None:
    assert code_of(lambda: client.query(coll, filter="id >>> 3")).code == 1100


def test_wrong_type_and_unknown_field_on_insert(client: MilvusClient, coll: str) -> None:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    from pymilvus import DataType

    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("name", DataType.VARCHAR, max_length=4)
    strict = f"strict_{uuid.uuid4().hex[:8]}"
    client.create_collection(strict, schema=schema)
    too_long = code_of(lambda: client.insert(strict, [{"id": 1, "vec": [0.0] * DIM, "name": "far too long"}]))
    assert too_long.code == 1100
    client.drop_collection(strict)


def test_unsupported_rpc_is_a_clear_error_not_a_hang(client: MilvusClient) -> None:
    error = code_of(lambda: client.get_replicate_configuration())
    assert "is not supported by SheafDB" in error.message


def test_server_still_answers_after_errors(client: MilvusClient, coll: str) -> None:
    assert client.query(coll, filter="id < 2", output_fields=["id"])
