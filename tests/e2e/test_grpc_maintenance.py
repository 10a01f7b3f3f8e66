"""Compaction, segments, index progress, flush-all and metrics against the real server, through
pymilvus (MilvusClient first; the raw stub for calls no pymilvus helper makes)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from pymilvus import MilvusClient, MilvusException
from pymilvus.grpc_gen import common_pb2, milvus_pb2

DIM = 4


def _stub(client: MilvusClient):  # noqa: ANN202 - pymilvus's generated stub
    return client._get_connection()._stub


def _wait_compacted(client: MilvusClient, job_id: int) -> None:
    deadline = time.monotonic() + 60
    while client.get_compaction_state(job_id) != "Completed":
        assert time.monotonic() < deadline, "compaction never completed"
        time.sleep(0.05)


@pytest.fixture
def segmented(client: MilvusClient) -> Iterator[str]:
    """A loaded collection with three sealed segments (three flushes) and some deletes."""
    name = f"maint_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dimension=DIM)
    for batch in range(3):
        rows = [{"id": batch * 100 + i, "vector": [float(i + batch)] * DIM} for i in range(100)]
        client.insert(name, rows)
        client.flush(name)
    client.delete(name, ids=[0, 1, 2])
    yield name
    client.drop_collection(name)


def test_manual_compaction_runs_the_real_compaction(client: MilvusClient, segmented: str) -> None:
    before = client.list_persistent_segments(segmented)
    assert len(before) == 3
    assert sum(s.num_rows for s in before) == 300
    job_id = client.compact(segmented)
    assert job_id > 0
    _wait_compacted(client, job_id)
    after = client.list_persistent_segments(segmented)
    assert len(after) == 1
    assert after[0].num_rows == 297  # the deleted rows are gone
    plans = client.get_compaction_plans(job_id)
    assert plans.state.name == "Completed"
    assert len(plans.plans) == 1
    assert sorted(plans.plans[0].sources) == sorted(s.segment_id for s in before)
    assert plans.plans[0].target == after[0].segment_id
    # pymilvus's list_compaction_tasks reads the same plans by collection.
    tasks = client.list_compaction_tasks(segmented)
    assert [p.target for p in tasks.plans] == [after[0].segment_id]
    assert client.query(segmented, filter="id in [0, 1, 5]", output_fields=["id"]) == [{"id": 5}]


def test_unknown_compaction_id_reads_completed(client: MilvusClient) -> None:
    assert client.get_compaction_state(123) == "Completed"


def test_compact_missing_collection(client: MilvusClient) -> None:
    with pytest.raises(MilvusException) as err:
        client.compact("no_such_collection")
    assert err.value.code == 100


def test_loaded_segments_carry_memory_and_index(client: MilvusClient, segmented: str) -> None:
    client.refresh_load(segmented)
    loaded = client.list_loaded_segments(segmented)
    persistent = {s.segment_id for s in client.list_persistent_segments(segmented)}
    assert {s.segment_id for s in loaded} == persistent
    for seg in loaded:
        assert seg.mem_size > 0
        assert seg.num_rows == 100
        assert seg.index_name in ("", "vector")
        assert seg.node_ids == [1]
    client.release_collection(segmented)
    assert client.list_loaded_segments(segmented) == []


def test_index_state_and_progress(client: MilvusClient, segmented: str) -> None:
    stub = _stub(client)
    deadline = time.monotonic() + 60
    while True:
        state = stub.GetIndexState(
            milvus_pb2.GetIndexStateRequest(collection_name=segmented, index_name="vector")
        )
        if state.state == common_pb2.Finished or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert state.status.code == 0 and state.state == common_pb2.Finished
    progress = stub.GetIndexBuildProgress(
        milvus_pb2.GetIndexBuildProgressRequest(collection_name=segmented, index_name="vector")
    )
    assert (progress.indexed_rows, progress.total_rows) == (300, 300)
    stats = stub.GetIndexStatistics(milvus_pb2.GetIndexStatisticsRequest(collection_name=segmented))
    assert [d.index_name for d in stats.index_descriptions] == ["vector"]
    missing = stub.GetIndexState(
        milvus_pb2.GetIndexStateRequest(collection_name=segmented, index_name="nope")
    )
    assert missing.status.code == 700
    indexed = stub.ListIndexedSegment(_indexed_request(segmented))
    assert indexed.status.code == 0
    assert sorted(indexed.segmentIDs) == sorted(
        s.segment_id for s in client.list_persistent_segments(segmented)
    )


def _indexed_request(collection: str):  # noqa: ANN202
    from pymilvus.grpc_gen import feder_pb2

    return feder_pb2.ListIndexedSegmentRequest(collection_name=collection, index_name="vector")


def test_flush_all_seals_every_collection(client: MilvusClient, segmented: str) -> None:
    client.insert(segmented, [{"id": 1000, "vector": [1.0] * DIM}])
    after_insert = _stub(client).AllocTimestamp(milvus_pb2.AllocTimestampRequest()).timestamp
    assert client.get_flush_all_state(flush_all_ts=after_insert) is False
    assert len(client.list_persistent_segments(segmented)) == 3
    client.flush_all()
    assert len(client.list_persistent_segments(segmented)) == 4
    assert client.get_flush_all_state(flush_all_ts=after_insert) is True


def test_metrics_system_info_has_milvus_shape_and_memory(client: MilvusClient, segmented: str) -> None:
    reply = _stub(client).GetMetrics(milvus_pb2.GetMetricsRequest(request='{"metric_type": "system_info"}'))
    assert reply.status.code == 0
    body = json.loads(reply.response)
    types = [n["infos"]["type"] for n in body["nodes_info"]]
    assert types == ["proxy", "querynode"]
    infos = body["nodes_info"][0]["infos"]
    for key in ("has_error", "name", "hardware_infos", "system_info", "created_time", "updated_time", "id"):
        assert key in infos
    assert infos["system_info"]["deploy_mode"] == "STANDALONE"
    memory = body["memory"]
    assert memory["budget_bytes"] > 0
    assert memory["free_bytes"] == memory["budget_bytes"] - memory["used_bytes"] - memory["reserved_bytes"]
    mine = [c for c in memory["collections"] if c["name"] == segmented]
    assert len(mine) == 1
    assert mine[0]["resident_bytes"] > 0
    assert sum(mine[0]["fields"].values()) + sum(mine[0]["indexes"].values()) == mine[0]["resident_bytes"]
    assert "vector" in mine[0]["indexes"]
    client.release_collection(segmented)
    reply = _stub(client).GetMetrics(milvus_pb2.GetMetricsRequest(request='{"metric_type": "system_info"}'))
    assert not [c for c in json.loads(reply.response)["memory"]["collections"] if c["name"] == segmented]

    bad = _stub(client).GetMetrics(milvus_pb2.GetMetricsRequest(request='{"metric_type": "nope"}'))
    assert bad.status.reason == "sorry, but this metric type is not implemented"


def test_component_states_and_batch_describe(client: MilvusClient, segmented: str) -> None:
    states = _stub(client).GetComponentStates(milvus_pb2.GetComponentStatesRequest())
    assert states.status.code == 0
    assert states.state.state_code == common_pb2.Healthy
    batch = _stub(client).BatchDescribeCollection(
        milvus_pb2.BatchDescribeCollectionRequest(collection_name=[segmented, "no_such_collection"])
    )
    assert batch.status.code == 0
    assert batch.responses[0].collection_name == segmented
    assert batch.responses[1].status.code == 100
