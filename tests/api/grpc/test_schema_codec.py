"""Collection schemas: pymilvus's CreateCollection bytes -> ours, ours -> what describe shows."""

from __future__ import annotations

from pymilvus import CollectionSchema as ClientSchema
from pymilvus import DataType as ClientType
from pymilvus import FieldSchema as ClientField
from pymilvus.client.prepare import Prepare

from sheafdb.api.grpc.schema_codec import schema_from_proto, schema_to_proto
from sheafdb.schema import CollectionSchema, DataType

from .codec_helpers import describe_dict


def _client_schema() -> ClientSchema:
    return ClientSchema(
        [
            ClientField("id", ClientType.VARCHAR, is_primary=True, max_length=64),
            ClientField("vec", ClientType.FLOAT_VECTOR, dim=8, mmap_enabled=True),
            ClientField("tags", ClientType.ARRAY, element_type=ClientType.INT16, max_capacity=5),
            ClientField("score", ClientType.DOUBLE, nullable=True, default_value=1.5),
            ClientField("meta", ClientType.JSON, nullable=True),
            ClientField("part", ClientType.INT64, is_partition_key=True),
            ClientField("label", ClientType.VARCHAR, max_length=16, default_value="none"),
        ],
        description="d",
        enable_dynamic_field=True,
    )


def test_pymilvus_schema_decodes_with_every_attribute() -> None:
    proto = Prepare.get_schema_from_collection_schema("c", _client_schema())
    schema = schema_from_proto(proto)
    assert schema.enable_dynamic_field and schema.description == "d"
    by_name = {f.name: f for f in schema.fields}
    assert (
        by_name["id"].is_primary
        and by_name["id"].dtype is DataType.VARCHAR
        and by_name["id"].max_length == 64
    )
    assert by_name["vec"].dim == 8 and by_name["vec"].type_params == {"mmap.enabled": "true"}
    assert by_name["tags"].element_type is DataType.INT16 and by_name["tags"].max_capacity == 5
    assert by_name["score"].nullable and by_name["score"].default_value == 1.5
    assert by_name["part"].is_partition_key
    assert by_name["label"].default_value == "none"


def test_round_trip_is_identity_and_pymilvus_reads_it_back() -> None:
    schema = schema_from_proto(Prepare.get_schema_from_collection_schema("c", _client_schema()))
    assert schema_from_proto(schema_to_proto("c", schema)) == schema
    described = describe_dict("c", schema)
    assert described["enable_dynamic_field"] is True
    fields = {f["name"]: f for f in described["fields"]}
    assert "$meta" not in fields
    assert fields["vec"]["params"] == {"dim": 8, "mmap_enabled": True}
    assert fields["tags"]["element_type"] == ClientType.INT16
    assert fields["tags"]["params"]["max_capacity"] == 5
    assert fields["score"]["nullable"] is True
    assert fields["id"]["is_primary"] is True


def test_dynamic_meta_field_sent_by_a_client_is_not_a_schema_field() -> None:
    proto = Prepare.get_schema_from_collection_schema("c", _client_schema())
    meta = proto.fields.add()
    meta.name, meta.data_type, meta.is_dynamic = "$meta", ClientType.JSON, True
    schema = schema_from_proto(proto)
    assert isinstance(schema, CollectionSchema) and schema.field("$meta") is None
