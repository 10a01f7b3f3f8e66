"""Milvus's ``mmap.enabled`` against the real server: mapped field files are accounted apart
from resident bytes (a load that would not fit in the budget read into memory fits mapped),
and the setting cannot change while the collection is loaded (code 104)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready

DIM = 16
ROWS = 20_000


@pytest.fixture
def tight_client(tmp_path: Path) -> Iterator[MilvusClient]:
    port = free_port()
    log_path = tmp_path / "server.log"
    # The FLAT index (1.28 MB) and the key lookup fit; the raw columns read as well do not.
    process = start_server(tmp_path / "data", port, log_path, extra=("--memory-budget", "2.5MiB"))
    wait_ready(process, log_path)
    client = MilvusClient(uri=f"http://127.0.0.1:{port}", token=ROOT_TOKEN)
    try:
        yield client
    finally:
        client.close()
        stop_server(process)


def test_mapped_fields_are_not_resident_bytes_and_stay_fixed_while_loaded(tight_client: MilvusClient) -> None:
    client = tight_client
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection("m", schema=schema, index_params=index)
    client.release_collection("m")
    vectors = np.random.default_rng(7).random((ROWS, DIM), dtype=np.float32)
    for start in range(0, ROWS, 5000):
        client.insert("m", [{"id": i, "vec": vectors[i].tolist()} for i in range(start, start + 5000)])
    client.flush("m")
    for _ in range(3000):  # the index built, so every load below counts it
        if client.describe_index("m", "vec").get("indexed_rows") == ROWS:
            break
        threading.Event().wait(0.01)

    with pytest.raises(MilvusException) as err:
        client.load_collection("m")  # read into memory: over the budget
    assert err.value.code == 3

    client.alter_collection_properties("m", properties={"mmap.enabled": "true"})
    client.load_collection("m")  # mapped: only the index and the key lookup count
    hits = client.search("m", [vectors[123].tolist()], limit=1)
    assert hits[0][0]["id"] == 123

    with pytest.raises(MilvusException) as err:
        client.alter_collection_properties("m", properties={"mmap.enabled": "false"})
    assert err.value.code == 104

    client.release_collection("m")
    client.alter_collection_properties("m", properties={"mmap.enabled": "false"})
    with pytest.raises(MilvusException) as err:
        client.load_collection("m")
    assert err.value.code == 3
