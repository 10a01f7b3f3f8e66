"""A query worker's read service (api/cluster/worker_service.py) in a real worker runtime,
called over real gRPC: without the cluster secret nothing is unpickled; with authentication on,
the client's ``authorization`` is checked and then its privilege on the collection."""

from __future__ import annotations

import base64
import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from sheafdb.api.cluster.worker_config import WorkerConfig
from sheafdb.api.cluster.worker_runtime import WorkerRuntime
from sheafdb.engine.access import AccessControl
from sheafdb.engine.config import EngineConfig
from sheafdb.engine.distribution.read_calls import READ_METHOD, SECRET_METADATA_KEY, ReadAnswer, ReadCall
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import LoadState, QueryRequest, SearchRequest
from sheafdb.storage.catalog import CATALOG_FILE
from sheafdb.storage.placement_rows import ReplicaRecord, SegmentAssignment
from sheafdb.storage.sqlite_catalog import SqliteCatalog
from tests.engine.conftest import basic_schema, make_rows

DB = "default"


def _token(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[WorkerRuntime, int, SqliteCatalog]]:
    """A writer engine with one loaded collection of 20 rows, and one worker holding all of it."""
    data = tmp_path / "data"
    engine = Engine(EngineConfig(data, fsync=False, restore_loads=False, share_pages=True))
    catalog = SqliteCatalog(data / CATALOG_FILE)
    access = AccessControl(data / "credentials.db", enabled=True)
    runtime = WorkerRuntime(WorkerConfig(state_dir=tmp_path / "worker", data_dir=data, auth_enabled=True))
    try:
        engine.create_collection(DB, "c", basic_schema())
        engine.insert(DB, "c", make_rows(range(20)))
        engine.flush(DB, ["c"])
        engine.create_index(DB, "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
        engine.load_collection(DB, "c")
        assert engine.wait_for_load(DB, "c", timeout=30) is LoadState.LOADED
        access.create_user("alice", "alice-password")
        access.create_user("bob", "bob-password")
        access.create_role("reader")
        access.grant("reader", "Collection", "c", "Query", DB, "root")
        access.grant_role("bob", "reader")
        secret = catalog.ensure_cluster_secret()
        runtime.start()
        coll = engine._resolve(DB, "c")
        wid = runtime.worker_id
        catalog.save_placement(
            coll.collection_id,
            [ReplicaRecord(coll.collection_id, 1, "__default_resource_group", (wid,), wid)],
            [SegmentAssignment(coll.collection_id, 1, s.segment_id, wid) for s in coll.snapshot().sealed],
        )
        for _ in range(3000):  # bounded: the heartbeat thread loads and acks
            if all(a.loaded for a in catalog.list_assignments(collection_id=coll.collection_id)):
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the worker never acked its segments")
        yield runtime, secret, catalog
    finally:
        runtime.stop()
        access.close()
        catalog.close()
        engine.close()


def _call(
    runtime: WorkerRuntime, method: str, request: object, metadata: list[tuple[str, str]]
) -> ReadAnswer:
    call = ReadCall(method, DB, request, 1, runtime.view.applied_version)  # type: ignore[arg-type]
    with grpc.insecure_channel(runtime.address) as channel:
        raw = channel.unary_unary(READ_METHOD)(pickle.dumps(call), metadata=metadata, timeout=30)
    answer = pickle.loads(raw)
    assert isinstance(answer, ReadAnswer)
    return answer


def _refused(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()  # type: ignore[attr-defined, no-any-return]


def test_the_secret_then_the_user_then_the_privilege(
    served: tuple[WorkerRuntime, int, SqliteCatalog],
) -> None:
    runtime, secret, catalog = served
    # The worker has applied the placement with every ack in it.
    runtime.view.apply_placement()
    assert runtime.view.applied_version == catalog.placement_version()
    count = QueryRequest("c", output_fields=("count(*)",))
    vector = make_rows(range(20)).column("vec").to_numpy(zero_copy_only=False)[3].reshape(1, -1)
    search = SearchRequest("c", vector, 1)
    cluster = (SECRET_METADATA_KEY, str(secret))

    root = _call(runtime, "query", count, [cluster, ("authorization", _token("root", "Milvus"))])
    assert root.error_code == 0 and root.result.table.column(0)[0].as_py() == 20  # type: ignore[union-attr]

    def as_root_without_secret() -> object:
        return _call(runtime, "query", count, [("authorization", _token("root", "Milvus"))])

    def with_a_wrong_secret() -> object:
        wrong = (SECRET_METADATA_KEY, str(secret + 1))
        return _call(runtime, "query", count, [wrong, ("authorization", _token("root", "Milvus"))])

    assert _refused(as_root_without_secret) is grpc.StatusCode.PERMISSION_DENIED
    assert _refused(with_a_wrong_secret) is grpc.StatusCode.PERMISSION_DENIED
    assert _refused(lambda: _call(runtime, "query", count, [cluster])) is grpc.StatusCode.UNAUTHENTICATED
    wrong_password = [cluster, ("authorization", _token("root", "nope"))]
    assert _refused(lambda: _call(runtime, "query", count, wrong_password)) is grpc.StatusCode.UNAUTHENTICATED

    alice = [cluster, ("authorization", _token("alice", "alice-password"))]
    assert _refused(lambda: _call(runtime, "query", count, alice)) is grpc.StatusCode.PERMISSION_DENIED
    bob = [cluster, ("authorization", _token("bob", "bob-password"))]
    assert _call(runtime, "query", count, bob).error_code == 0
    assert _refused(lambda: _call(runtime, "search", search, bob)) is grpc.StatusCode.PERMISSION_DENIED
    hits = _call(runtime, "search", search, [cluster, ("authorization", _token("root", "Milvus"))])
    assert hits.result is not None and hits.result.ids.to_pylist() == [3]  # type: ignore[union-attr]
