"""AllocTimestamp and the reads' session_ts come from the engine's timestamp oracle.

So they order with the writes' timestamps (a wall clock does not: the oracle may run ahead of
it, e.g. after a restart with a floor from the catalog). Real servicer on a real engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from pymilvus.grpc_gen import milvus_pb2

from sheafdb.api.grpc.servicer import MilvusServicer
from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.storage.timestamps import compose, physical_ms


class _Call:
    """The part of ``grpc.ServicerContext`` the handlers read."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


@pytest.fixture
def servicer(tmp_path: Path) -> Iterator[MilvusServicer]:
    engine = Engine(EngineConfig(data_dir=tmp_path, fsync=False, compaction_min_segments=None))
    schema = CollectionSchema(
        fields=(
            FieldSchema("pk", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=2),
        )
    )
    engine.create_collection("default", "c", schema)
    yield MilvusServicer(engine)
    engine.close()


def _alloc(servicer: MilvusServicer) -> int:
    reply = servicer.AllocTimestamp(milvus_pb2.AllocTimestampRequest(), _Call())  # type: ignore[arg-type]
    assert reply.status.code == 0
    return reply.timestamp


def _insert(servicer: MilvusServicer, pk: int) -> int:
    rows = pa.table(
        {
            "pk": pa.array([pk], pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array([0.5, 0.5], pa.float32()), 2),
        }
    )
    return servicer.engine.insert("default", "c", rows).timestamp


def test_alloc_timestamps_increase_and_follow_every_write(servicer: MilvusServicer) -> None:
    first = _alloc(servicer)
    written = _insert(servicer, 1)
    second = _alloc(servicer)
    assert first < written < second
    assert _insert(servicer, 2) > second


def test_alloc_timestamp_follows_an_oracle_ahead_of_the_clock(tmp_path: Path) -> None:
    """A catalog that recorded a timestamp an hour ahead (the clock stepped back since):
    every timestamp handed out afterwards is above it, AllocTimestamp's too."""
    config = EngineConfig(data_dir=tmp_path, fsync=False, compaction_min_segments=None)
    engine = Engine(config)
    ahead = compose(physical_ms(engine.allocate_timestamp()) + 3_600_000, 0)
    engine._catalog.note_timestamp(ahead)
    engine.close()
    engine = Engine(config)
    try:
        assert _alloc(MilvusServicer(engine)) > ahead
    finally:
        engine.close()


def test_query_session_ts_is_above_the_writes_it_saw(servicer: MilvusServicer) -> None:
    written = _insert(servicer, 7)
    servicer.engine.create_index("default", "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
    servicer.engine.load_collection("default", "c")
    request = milvus_pb2.QueryRequest(collection_name="c", expr="pk >= 0", output_fields=["pk"])
    reply = None
    for _ in range(600):
        reply = servicer.Query(request, _Call())  # type: ignore[arg-type]
        if reply.status.code == 0:
            break
    assert reply is not None and reply.status.code == 0, reply
    assert list(reply.fields_data[0].scalars.long_data.data) == [7]
    assert reply.session_ts > written
