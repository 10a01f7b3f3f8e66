"""Schema refusals through the real pymilvus client and REST, with Milvus's codes and texts."""

from __future__ import annotations

import uuid

import httpx
import pytest
from pymilvus import CollectionSchema, DataType, FieldSchema, MilvusClient, MilvusException

from tests.e2e.conftest import ROOT_TOKEN


def _refused(client: MilvusClient, *extra: FieldSchema) -> MilvusException:
    fields = [
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=4),
        *extra,
    ]
    name = f"msg_{uuid.uuid4().hex[:8]}"
    with pytest.raises(MilvusException) as refused:
        client.create_collection(name, schema=CollectionSchema(fields))
    assert not client.has_collection(name)
    return refused.value


@pytest.mark.parametrize(
    ("field", "text"),
    [
        (
            FieldSchema("int8_field", DataType.INT8, default_value="abc"),
            "type (Int8) of field (int8_field) is not equal to the type(DataType_VarChar) of default_value",
        ),
        (
            FieldSchema("int32_field", DataType.INT32, default_value=2.5),
            "type (Int32) of field (int32_field) is not equal to the type(DataType_Double) of default_value",
        ),
        (
            FieldSchema("flag", DataType.BOOL, default_value=3),
            "type (Bool) of field (flag) is not equal to the type(DataType_Int64) of default_value",
        ),
        (
            FieldSchema("meta", DataType.JSON, default_value='{"a": 1}'),
            "type not support default_value, type:JSON, name:meta",
        ),
        (
            FieldSchema("tags", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4, default_value=1),
            "type not support default_value, type:Array, name:tags",
        ),
        (
            # pymilvus sends a value too wide for INT8 as an Int64, as it does to Milvus.
            FieldSchema("small", DataType.INT8, default_value=128),
            "type (Int8) of field (small) is not equal to the type(DataType_Int64) of default_value",
        ),
        (
            FieldSchema("s", DataType.VARCHAR, max_length=2, default_value="toolong"),
            "the length (7) of string exceeds max length (2)",
        ),
        (
            FieldSchema("tags", DataType.ARRAY, element_type=DataType.INT64, max_capacity="many"),
            "the value for max_capacity of field tags must be an integer",
        ),
    ],
)
def test_default_and_type_param_refusals(client: MilvusClient, field: FieldSchema, text: str) -> None:
    error = _refused(client, field)
    assert error.code == 1100
    assert text in error.message


def test_missing_type_params_are_missing_parameters(client: MilvusClient) -> None:
    error = _refused(client, FieldSchema("tags", DataType.ARRAY, element_type=DataType.INT64))
    assert error.code == 1101
    wanted = "type param(max_capacity) should be specified for array field tags of collection msg_"
    assert wanted in error.message


def test_primary_key_may_be_neither_nullable_nor_defaulted(client: MilvusClient) -> None:
    for pk in (
        FieldSchema("id", DataType.INT64, is_primary=True, nullable=True),
        FieldSchema("id", DataType.INT64, is_primary=True, default_value=7),
    ):
        name = f"msg_{uuid.uuid4().hex[:8]}"
        schema = CollectionSchema([pk, FieldSchema("vec", DataType.FLOAT_VECTOR, dim=4)])
        with pytest.raises(MilvusException) as refused:
            client.create_collection(name, schema=schema)
        assert refused.value.code == 1100
        wanted = "null" if pk.nullable else "default_value"
        assert f"primary field not support {wanted}, type:Int64, name:id" in refused.value.message


def test_json_default_over_rest_is_refused_not_crashed(server_uri: str) -> None:
    body = {
        "collectionName": f"msg_{uuid.uuid4().hex[:8]}",
        "schema": {
            "fields": [
                {"fieldName": "id", "dataType": "Int64", "isPrimary": True},
                {"fieldName": "vec", "dataType": "FloatVector", "elementTypeParams": {"dim": 4}},
                {"fieldName": "meta", "dataType": "JSON", "defaultValue": {"a": 1}},
            ]
        },
    }
    reply = httpx.post(
        f"{server_uri}/v2/vectordb/collections/create",
        json=body,
        headers={"Authorization": f"Bearer {ROOT_TOKEN}"},
    ).json()
    assert reply["code"] == 1100
    assert "type not support default_value, type:JSON, name:meta" in reply["message"]
