"""TIMESTAMPTZ (type 26) through the real pymilvus client and REST: ISO text in, UTC stored,
ISO text out, ``ISO '...'`` comparisons and ``INTERVAL`` arithmetic in filters, group_by."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from tests.e2e.conftest import ROOT_TOKEN

DIM = 4


@pytest.fixture
def tsz(client: MilvusClient) -> Iterator[str]:
    name = f"tsz_{uuid.uuid4().hex[:8]}"
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("ts", DataType.TIMESTAMPTZ, nullable=True)
    schema.add_field("since", DataType.TIMESTAMPTZ, default_value="2020-01-01T00:00:00Z")
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    index_params = client.prepare_index_params()
    index_params.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index_params)
    rows = [
        # Shanghai midnight of Jan 1 + i days, i.e. 16:00 UTC the day before.
        {"id": i, "ts": f"2025-01-{i + 1:02d}T00:00:00+08:00", "vec": [float(i)] * DIM}
        for i in range(6)
    ]
    rows.append({"id": 6, "ts": None, "since": "2024-06-01T12:30:00.5Z", "vec": [6.0] * DIM})
    client.insert(name, rows)
    yield name
    client.drop_collection(name)


def test_values_come_back_as_utc_iso_text(client: MilvusClient, tsz: str) -> None:
    described = client.describe_collection(tsz)
    ts_field = next(f for f in described["fields"] if f["name"] == "ts")
    assert ts_field["type"] == DataType.TIMESTAMPTZ
    rows = {r["id"]: r for r in client.query(tsz, filter="id >= 0", output_fields=["ts", "since"])}
    assert rows[0]["ts"] == "2024-12-31T16:00:00Z"
    assert rows[2]["ts"] == "2025-01-02T16:00:00Z"
    assert rows[0]["since"] == "2020-01-01T00:00:00Z"
    assert rows[6]["ts"] is None and rows[6]["since"] == "2024-06-01T12:30:00.500000Z"


@pytest.mark.parametrize("flush_first", [False, True])
def test_comparisons_and_intervals(client: MilvusClient, tsz: str, flush_first: bool) -> None:
    if flush_first:
        client.flush(tsz)

    def ids(expr: str) -> list[int]:
        return sorted(r["id"] for r in client.query(tsz, filter=expr, output_fields=["id"]))

    assert ids("ts == ISO '2025-01-03T00:00:00+08:00'") == [2]
    assert ids("ts != ISO '2025-01-03T00:00:00+08:00'") == [0, 1, 3, 4, 5]
    assert ids("ts >= ISO '2025-01-04T16:00:00Z'") == [4, 5]
    assert ids("ISO '2025-01-01T00:00:00Z' < ts < ISO '2025-01-03T00:00:00Z'") == [1, 2]
    assert ids("ts + INTERVAL 'P1D' == ISO '2025-01-02T00:00:00+08:00'") == [0]
    assert ids("ts - INTERVAL 'PT16H' == ISO '2025-01-02T00:00:00Z'") == [2]
    assert ids("ts is null") == [6]
    hits = client.search(
        tsz, [[0.0] * DIM], limit=3, filter="ts > ISO '2025-01-03T00:00:00Z'", output_fields=["ts"]
    )
    assert [h["id"] for h in hits[0]] == [3, 4, 5]
    assert hits[0][0]["entity"]["ts"] == "2025-01-03T16:00:00Z"


def test_bad_values_are_refused(client: MilvusClient, tsz: str) -> None:
    with pytest.raises(MilvusException) as bad_row:
        client.insert(tsz, [{"id": 9, "ts": "yesterday", "vec": [0.0] * DIM}])
    assert bad_row.value.code == 1100
    with pytest.raises(MilvusException) as bad_literal:
        client.query(tsz, filter="ts > ISO 'not a time'")
    assert bad_literal.value.code == 1100


def test_group_by_timestamptz(client: MilvusClient, tsz: str) -> None:
    client.insert(
        tsz, [{"id": 10 + i, "ts": "2025-01-01T00:00:00+08:00", "vec": [0.1] * DIM} for i in range(3)]
    )
    hits = client.search(tsz, [[0.0] * DIM], limit=3, group_by_field="ts", output_fields=["ts"])
    values = [h["entity"]["ts"] for h in hits[0]]
    assert len(values) == 3 and len(set(values)) == 3
    assert values[0] == "2024-12-31T16:00:00Z"


def test_timestamptz_over_rest(client: MilvusClient, server_uri: str, tsz: str) -> None:
    headers = {"Authorization": f"Bearer {ROOT_TOKEN}"}
    inserted = httpx.post(
        f"{server_uri}/v2/vectordb/entities/insert",
        json={
            "collectionName": tsz,
            "data": [{"id": 20, "ts": "2030-05-01T08:00:00+02:00", "vec": [1.0] * DIM}],
        },
        headers=headers,
    ).json()
    assert inserted["code"] == 0, inserted
    queried = httpx.post(
        f"{server_uri}/v2/vectordb/entities/query",
        json={"collectionName": tsz, "filter": "ts > ISO '2030-01-01T00:00:00Z'", "outputFields": ["ts"]},
        headers=headers,
    ).json()
    assert queried["data"] == [{"id": 20, "ts": "2030-05-01T06:00:00Z"}]


def test_values_in_the_asked_or_the_collection_zone(client: MilvusClient, tsz: str) -> None:
    row = client.query(tsz, filter="id == 0", output_fields=["ts"], timezone="Asia/Shanghai")[0]
    assert row["ts"] == "2025-01-01T00:00:00+08:00"
    client.alter_collection_properties(tsz, properties={"timezone": "America/New_York"})
    assert client.query(tsz, filter="id == 0", output_fields=["ts"])[0]["ts"] == "2024-12-31T11:00:00-05:00"
    # Text without an offset is read in the collection's zone.
    client.insert(tsz, [{"id": 30, "ts": "2025-06-01T12:00:00", "vec": [0.0] * DIM}])
    row = client.query(tsz, filter="id == 30", output_fields=["ts"], timezone="UTC")[0]
    assert row["ts"] == "2025-06-01T16:00:00Z"
    hits = client.search(tsz, [[0.0] * DIM], limit=1, output_fields=["ts"], timezone="Asia/Tokyo")
    assert hits[0][0]["entity"]["ts"] == "2025-01-01T01:00:00+09:00"
    with pytest.raises(MilvusException) as bad_zone:
        client.query(tsz, filter="id == 0", output_fields=["ts"], timezone="Mars/Olympus")
    assert bad_zone.value.code == 1100
