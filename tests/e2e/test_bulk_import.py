"""Bulk import against a real server: files written by pymilvus's own ``LocalBulkWriter`` (JSON,
Parquet, NumPy, CSV) imported unchanged through gRPC (``utility.do_bulk_insert``) and REST v2
(``jobs/import/create | describe | list``, through pymilvus's ``bulk_import`` helpers and plain
HTTP); every row is checked before any is written, so a failed job imports nothing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ml_dtypes
import numpy as np
import pyarrow.fs as pafs
import pytest
from pymilvus import CollectionSchema, DataType, FieldSchema, MilvusClient, connections, utility
from pymilvus.bulk_writer import (
    BulkFileType,
    LocalBulkWriter,
    bulk_import,
    get_import_progress,
    list_import_jobs,
)

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready
from tests.services import S3Server

DIM = 8


@pytest.fixture(scope="module")
def import_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server whose import root is a directory the tests write files into."""
    root = tmp_path_factory.mktemp("sheafdb-import")
    files = root / "files"
    files.mkdir()
    port = free_port()
    log_path = root / "server.log"
    process = start_server(root / "data", port, log_path, extra=("--import-root", str(files)))
    wait_ready(process, log_path)
    yield f"http://127.0.0.1:{port}", files
    stop_server(process)


@pytest.fixture(scope="module")
def client(import_server: tuple[str, Path]) -> MilvusClient:
    return MilvusClient(uri=import_server[0], token=ROOT_TOKEN)


@pytest.fixture(scope="module")
def orm_alias(import_server: tuple[str, Path]) -> Iterator[str]:
    alias = f"import_{uuid.uuid4().hex[:6]}"
    connections.connect(alias, uri=import_server[0], token=ROOT_TOKEN)
    yield alias
    connections.disconnect(alias)


def _schema(*, dynamic: bool = True) -> CollectionSchema:
    return CollectionSchema(
        [
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("title", DataType.VARCHAR, max_length=64),
            FieldSchema("score", DataType.DOUBLE),
            FieldSchema("meta", DataType.JSON),
            FieldSchema("vector", DataType.FLOAT_VECTOR, dim=DIM),
        ],
        enable_dynamic_field=dynamic,
    )


def _rows(count: int, start: int = 0) -> list[dict[str, object]]:
    rng = np.random.default_rng(start)
    return [
        {
            "id": start + i,
            "title": f"title {start + i}",
            "score": float(i) / 2,
            "meta": {"n": start + i},
            "vector": rng.random(DIM, dtype=np.float32).tolist(),
            "color": "red" if i % 2 else "blue",
        }
        for i in range(count)
    ]


def _collection(client: MilvusClient, *, dynamic: bool = True) -> str:
    name = f"imp_{uuid.uuid4().hex[:8]}"
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=_schema(dynamic=dynamic), index_params=index)
    return name


def _write(
    files: Path, file_type: BulkFileType, rows: list[dict[str, object]], schema: CollectionSchema
) -> list[list[str]]:
    """pymilvus's LocalBulkWriter output, as paths relative to the server's import root."""
    target = files / uuid.uuid4().hex[:8]
    with LocalBulkWriter(schema=schema, local_path=str(target), file_type=file_type) as writer:
        for row in rows:
            writer.append_row(row)
        writer.commit()
        groups = writer.batch_files
    return [[str(Path(p).relative_to(files)) for p in group] for group in groups]


def _wait_grpc(task_id: int, alias: str) -> utility.BulkInsertState:
    deadline = time.monotonic() + 60
    while True:
        state = utility.get_bulk_insert_state(task_id, using=alias)
        if state.state in (utility.BulkInsertState.ImportCompleted, utility.BulkInsertState.ImportFailed):
            return state
        assert time.monotonic() < deadline, f"import {task_id} never finished: {state}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "file_type", [BulkFileType.JSON, BulkFileType.PARQUET, BulkFileType.NUMPY, BulkFileType.CSV]
)
def test_bulk_writer_files_import_unchanged_over_grpc(
    client: MilvusClient, import_server: tuple[str, Path], orm_alias: str, file_type: BulkFileType
) -> None:
    name = _collection(client)
    rows = _rows(50)
    groups = _write(import_server[1], file_type, rows, _schema())
    assert len(groups) == 1
    task = utility.do_bulk_insert(name, files=groups[0], using=orm_alias)
    state = _wait_grpc(task, orm_alias)
    assert state.state == utility.BulkInsertState.ImportCompleted, state.failed_reason
    assert state.row_count == 50 and state.progress == 100 and state.failed_reason == ""
    assert state.infos["collection"] == name

    client.load_collection(name)
    assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 50
    got = client.get(name, ids=[7], output_fields=["title", "score", "meta", "vector", "color"])[0]
    assert (got["title"], got["score"], got["meta"], got["color"]) == ("title 7", 3.5, {"n": 7}, "red")
    assert np.allclose(got["vector"], rows[7]["vector"])
    hits = client.search(name, [rows[3]["vector"]], limit=1, output_fields=["id"])
    assert hits[0][0]["id"] == 3
    # Sealed segments: durable and listed as persistent.
    assert utility.get_query_segment_info(name, using=orm_alias)
    tasks = utility.list_bulk_insert_tasks(collection_name=name, using=orm_alias)
    assert [t.task_id for t in tasks] == [task]
    client.drop_collection(name)


def test_failed_job_imports_nothing_and_says_why(
    client: MilvusClient, import_server: tuple[str, Path], orm_alias: str
) -> None:
    name = _collection(client)
    files = import_server[1]
    good = _write(files, BulkFileType.JSON, _rows(20), _schema())[0][0]
    bad_rows = _rows(5, start=100)
    bad_rows[3]["vector"] = [0.5] * (DIM + 1)
    bad = f"bad_{uuid.uuid4().hex[:6]}.json"
    (files / bad).write_text(json.dumps({"rows": bad_rows}))
    # Both files are one job: the bad row of the second file fails the whole job.
    task = utility.do_bulk_insert(name, files=[good, bad], using=orm_alias)
    state = _wait_grpc(task, orm_alias)
    assert state.state == utility.BulkInsertState.ImportFailed
    assert "the dim (9) of field data(vector) is not equal to schema dim (8)" in state.failed_reason
    assert client.get_collection_stats(name)["row_count"] == 0

    missing = f"missing_{uuid.uuid4().hex[:6]}.json"
    (files / missing).write_text(json.dumps([{"id": 1, "title": "t", "score": 1.0, "meta": {}}]))
    state = _wait_grpc(utility.do_bulk_insert(name, files=[missing], using=orm_alias), orm_alias)
    assert state.failed_reason == "value of field 'vector' is missed: importing data failed"

    state = _wait_grpc(
        utility.do_bulk_insert(name, files=["no/such/file.parquet"], using=orm_alias), orm_alias
    )
    assert state.state == utility.BulkInsertState.ImportFailed
    assert "no/such/file.parquet" in state.failed_reason

    state = _wait_grpc(utility.do_bulk_insert(name, files=["/etc/passwd.json"], using=orm_alias), orm_alias)
    assert "outside the import root" in state.failed_reason
    assert client.get_collection_stats(name)["row_count"] == 0
    client.drop_collection(name)


def test_import_request_checks(client: MilvusClient, orm_alias: str) -> None:
    name = _collection(client)
    with pytest.raises(Exception, match=r"unexpect file type, files=\['a.txt'\]: importing data failed"):
        utility.do_bulk_insert(name, files=["a.txt"], using=orm_alias)
    with pytest.raises(Exception, match="collection not found"):
        utility.do_bulk_insert("no_such_collection", files=["a.json"], using=orm_alias)
    with pytest.raises(Exception, match="partition not found"):
        utility.do_bulk_insert(name, files=["a.json"], partition_name="nope", using=orm_alias)
    with pytest.raises(Exception, match=r"import job does not exist, jobID=42"):
        utility.get_bulk_insert_state(42, using=orm_alias)
    client.drop_collection(name)


def test_rest_import_jobs(client: MilvusClient, import_server: tuple[str, Path]) -> None:
    uri, files = import_server
    name = _collection(client)
    client.create_partition(name, "p1")
    groups = _write(files, BulkFileType.PARQUET, _rows(30), _schema())
    reply = bulk_import(uri, name, api_key=ROOT_TOKEN, files=groups, partition_name="p1").json()
    assert reply["code"] == 0
    job_id = reply["data"]["jobId"]
    assert isinstance(job_id, str)
    deadline = time.monotonic() + 60
    while True:
        progress = get_import_progress(uri, job_id, api_key=ROOT_TOKEN).json()["data"]
        if progress["state"] in ("Completed", "Failed"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert progress["state"] == "Completed" and progress["progress"] == 100
    assert progress["importedRows"] == 30 and progress["totalRows"] == 30
    assert progress["collectionName"] == name and progress["completeTime"]
    assert progress["details"][0]["fileName"] == groups[0][0] and progress["details"][0]["fileSize"] > 0
    assert client.get_partition_stats(name, "p1")["row_count"] == 30

    listed = list_import_jobs(uri, collection_name=name, api_key=ROOT_TOKEN).json()["data"]["records"]
    assert listed == [{"jobId": job_id, "collectionName": name, "state": "Completed", "progress": 100}]

    headers = {"Authorization": f"Bearer {ROOT_TOKEN}"}
    with httpx.Client(base_url=uri, headers=headers) as http:
        same = http.post("/v2/vectordb/jobs/import/get_progress", json={"jobId": job_id}).json()
        assert same["data"]["state"] == "Completed"
        bad = http.post(
            "/v2/vectordb/jobs/import/create", json={"collectionName": name, "files": [["x.npy", "y.json"]]}
        )
        assert bad.json()["code"] == 2100
        assert (
            bad.json()["message"] == "inconsistency in file types, (x.npy) vs (y.json): importing data failed"
        )
        two = http.post(
            "/v2/vectordb/jobs/import/create", json={"collectionName": name, "files": [["a.json", "b.json"]]}
        )
        assert two.json()["message"] == "for JSON import, accepts only one file: importing data failed"
        missing = http.post("/v2/vectordb/jobs/import/create", json={"collectionName": name}).json()
        assert missing["code"] == 1802
        unknown = http.post("/v2/vectordb/jobs/import/describe", json={"jobId": "12345"}).json()
        assert (unknown["code"], unknown["message"]) == (
            2100,
            "import job does not exist, jobID=12345: importing data failed",
        )
        failing = http.post(
            "/v2/vectordb/jobs/import/create", json={"collectionName": name, "files": [["gone.parquet"]]}
        ).json()
        failed_id = failing["data"]["jobId"]
        while (
            state := http.post("/v2/vectordb/jobs/import/describe", json={"jobId": failed_id}).json()["data"]
        )["state"] != "Failed":
            assert time.monotonic() < deadline + 60
            time.sleep(0.05)
        assert state["progress"] == 0 and "gone.parquet" in state["reason"]
    client.drop_collection(name)


def test_auto_id_and_partition_key_rules(
    client: MilvusClient, import_server: tuple[str, Path], orm_alias: str
) -> None:
    files = import_server[1]
    schema = CollectionSchema(
        [
            FieldSchema("id", DataType.INT64, is_primary=True, auto_id=True),
            FieldSchema("tenant", DataType.VARCHAR, max_length=16, is_partition_key=True),
            FieldSchema("vector", DataType.FLOAT_VECTOR, dim=DIM),
        ]
    )
    name = f"imp_auto_{uuid.uuid4().hex[:6]}"
    client.create_collection(name, schema=schema, num_partitions=4)
    rows = [{"tenant": f"t{i % 3}", "vector": [float(i)] * DIM} for i in range(12)]
    groups = _write(files, BulkFileType.PARQUET, rows, schema)
    state = _wait_grpc(utility.do_bulk_insert(name, files=groups[0], using=orm_alias), orm_alias)
    assert state.state == utility.BulkInsertState.ImportCompleted, state.failed_reason
    assert client.get_collection_stats(name)["row_count"] == 12
    with pytest.raises(Exception, match="not allow to set partition name for collection with partition key"):
        utility.do_bulk_insert(name, files=groups[0], partition_name="_default_0", using=orm_alias)
    given = f"given_{uuid.uuid4().hex[:6]}.json"
    (files / given).write_text(json.dumps([{"id": 5, "tenant": "a", "vector": [0.0] * DIM}]))
    state = _wait_grpc(utility.do_bulk_insert(name, files=[given], using=orm_alias), orm_alias)
    assert (
        state.failed_reason
        == "the primary key 'id' is auto-generated, no need to provide: importing data failed"
    )
    client.drop_collection(name)


@pytest.mark.cluster
def test_import_from_the_object_store_bucket(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --objects, import paths are keys of that bucket (as Milvus reads its MinIO bucket)."""
    for key, value in s3_server.credentials_env().items():
        monkeypatch.setenv(key, value)
    bucket = f"imp-{uuid.uuid4().hex[:8]}"
    objects = s3_server.url(bucket, "sheafdb") + "&allow_bucket_creation=true"
    port = free_port()
    log_path = tmp_path / "server.log"
    process = start_server(tmp_path / "data", port, log_path, extra=("--objects", objects))
    try:
        wait_ready(process, log_path)
        uri = f"http://127.0.0.1:{port}"
        client = MilvusClient(uri=uri, token=ROOT_TOKEN)
        name = _collection(client)
        local = tmp_path / "files"
        local.mkdir()
        path = _write(local, BulkFileType.PARQUET, _rows(40), _schema())[0][0]
        filesystem, _ = pafs.FileSystem.from_uri(objects)
        key = f"uploads/{path}"
        with filesystem.open_output_stream(f"{bucket}/{key}") as out:
            out.write((local / path).read_bytes())
        done = _rest_job(uri, bulk_import(uri, name, api_key=ROOT_TOKEN, files=[[key]]).json())
        assert done["state"] == "Completed", done.get("reason")
        client.load_collection(name)
        assert client.query(name, filter="id >= 0", output_fields=["count(*)"])[0]["count(*)"] == 40
        # A local path is not in the bucket: the job fails and says which file.
        failed = _rest_job(
            uri, bulk_import(uri, name, api_key=ROOT_TOKEN, files=[[str(local / path)]]).json()
        )
        assert failed["state"] == "Failed" and "does not exist" in failed["reason"]
        client.close()
    finally:
        stop_server(process)


def _rest_job(uri: str, created: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        progress: dict[str, Any] = get_import_progress(
            uri, created["data"]["jobId"], api_key=ROOT_TOKEN
        ).json()["data"]
        if progress["state"] in ("Completed", "Failed"):
            return progress
        assert time.monotonic() < deadline, progress
        time.sleep(0.05)


def _typed_schema() -> CollectionSchema:
    return CollectionSchema(
        [
            FieldSchema("id", DataType.VARCHAR, is_primary=True, max_length=16),
            FieldSchema("flag", DataType.BOOL),
            FieldSchema("small", DataType.INT8),
            FieldSchema("tags", DataType.ARRAY, element_type=DataType.INT32, max_capacity=4),
            FieldSchema("maybe", DataType.FLOAT, nullable=True),
            FieldSchema("half", DataType.FLOAT16_VECTOR, dim=4),
            FieldSchema("brain", DataType.BFLOAT16_VECTOR, dim=4),
            FieldSchema("bits", DataType.BINARY_VECTOR, dim=16),
            FieldSchema("sparse", DataType.SPARSE_FLOAT_VECTOR),
            FieldSchema("bytes8", DataType.INT8_VECTOR, dim=4),
        ]
    )


@pytest.mark.parametrize("file_type", [BulkFileType.JSON, BulkFileType.PARQUET, BulkFileType.CSV])
def test_every_vector_and_scalar_shape(
    client: MilvusClient, import_server: tuple[str, Path], orm_alias: str, file_type: BulkFileType
) -> None:
    rows = [
        {
            "id": f"k{i}",
            "flag": i % 2 == 0,
            "small": i - 3,
            "tags": list(range(i % 4)),
            "maybe": None if i % 3 == 0 else i / 4,
            # numpy rows and list rows mixed: the bulk writer then puts raw bytes and floats
            # in one Parquet column
            "half": np.array([i, 0.5, -1, 2], dtype=np.float16) if i % 2 else [float(i), 0.5, -1.0, 2.0],
            "brain": np.array([i, 0.25, -2, 1], dtype=ml_dtypes.bfloat16)
            if i % 2
            else [float(i), 0.25, -2.0, 1.0],
            "bits": np.array([i, 255 - i], dtype=np.uint8).tobytes(),
            "sparse": {i + 1: 0.5, 100: float(i)},
            "bytes8": np.array([i, -i, 3, 4], dtype=np.int8),
        }
        for i in range(6)
    ]
    schema = _typed_schema()
    name = f"imp_types_{uuid.uuid4().hex[:6]}"
    index = client.prepare_index_params()
    index.add_index("half", index_type="FLAT", metric_type="L2")
    index.add_index("brain", index_type="FLAT", metric_type="L2")
    index.add_index("bits", index_type="BIN_FLAT", metric_type="HAMMING")
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    index.add_index("bytes8", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
    client.create_collection(name, schema=schema, index_params=index)
    groups = _write(import_server[1], file_type, rows, schema)
    state = _wait_grpc(utility.do_bulk_insert(name, files=groups[0], using=orm_alias), orm_alias)
    assert state.state == utility.BulkInsertState.ImportCompleted, state.failed_reason
    client.load_collection(name)
    got = {r["id"]: r for r in client.query(name, filter="", limit=10, output_fields=["*"])}
    assert sorted(got) == [f"k{i}" for i in range(6)]
    five = got["k5"]
    assert (five["flag"], five["small"], five["tags"], five["maybe"]) == (False, 2, [0], 1.25)
    assert got["k3"]["maybe"] is None
    assert np.frombuffer(five["half"][0], dtype=np.float16).tolist() == [5, 0.5, -1, 2]
    assert np.frombuffer(got["k4"]["half"][0], dtype=np.float16).tolist() == [4, 0.5, -1, 2]
    for key, first in (("k4", 4.0), ("k5", 5.0)):
        brain = np.frombuffer(got[key]["brain"][0], dtype=ml_dtypes.bfloat16).astype(np.float32)
        assert brain.tolist() == [first, 0.25, -2.0, 1.0]
    assert five["bits"] == [np.array([5, 250], dtype=np.uint8).tobytes()]
    assert five["sparse"] == {6: 0.5, 100: 5.0}
    int8 = five["bytes8"]
    if isinstance(int8, list) and isinstance(int8[0], bytes):
        int8 = np.frombuffer(int8[0], np.int8)
    assert [int(v) for v in int8] == [5, -5, 3, 4]
    client.drop_collection(name)


def test_csv_options_and_numpy_dynamic_field(
    client: MilvusClient, import_server: tuple[str, Path], orm_alias: str
) -> None:
    files = import_server[1]
    name = _collection(client)
    text = "id|title|score|meta|vector|$meta\n" + "\n".join(
        f'{i}|t{i}|NULL|{{"n": {i}}}|{json.dumps([float(i)] * DIM)}|{{"color": "c{i}"}}' for i in range(3)
    )
    csv_path = f"opts_{uuid.uuid4().hex[:6]}.csv"
    (files / csv_path).write_text(text)
    task = utility.do_bulk_insert(name, files=[csv_path], sep="|", nullkey="NULL", using=orm_alias)
    state = _wait_grpc(task, orm_alias)
    # score is not nullable: the null key in its cells is refused by the insert rules.
    assert state.state == utility.BulkInsertState.ImportFailed
    assert "score" in state.failed_reason
    (files / csv_path).write_text(text.replace("|NULL|", "|1.5|"))
    task = utility.do_bulk_insert(name, files=[csv_path], sep="|", nullkey="NULL", using=orm_alias)
    assert _wait_grpc(task, orm_alias).state == utility.BulkInsertState.ImportCompleted

    folder = files / f"npy_{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    np.save(folder / "id.npy", np.arange(10, 14, dtype=np.int64))
    np.save(folder / "title.npy", np.array(["a", "b", "c", "d"]))
    np.save(folder / "score.npy", np.array([1, 2, 3, 4], dtype=np.float64))
    np.save(folder / "meta.npy", np.array(['{"n": 1}'] * 4))
    np.save(folder / "vector.npy", np.ones((4, DIM), dtype=np.float32))
    np.save(folder / "$meta.npy", np.array(['{"color": "green"}'] * 4))
    npy = [str(p.relative_to(files)) for p in sorted(folder.iterdir())]
    task = utility.do_bulk_insert(name, files=npy, using=orm_alias)
    assert _wait_grpc(task, orm_alias).state == utility.BulkInsertState.ImportCompleted
    client.load_collection(name)
    assert client.query(name, filter="score == 1.5", output_fields=["color"])[0]["color"] in (
        "c0",
        "c1",
        "c2",
    )
    assert len(client.query(name, filter='color == "green"', output_fields=["id"])) == 4
    client.drop_collection(name)


def test_dummy_runs_a_query_as_milvus(client: MilvusClient, orm_alias: str) -> None:
    from pymilvus.grpc_gen import milvus_pb2

    name = _collection(client)
    client.load_collection(name)
    stub = connections._fetch_handler(orm_alias)._stub
    asked = {"request_type": "query", "collection_name": name, "expr": "id > 0", "output_fields": ["id"]}
    assert (
        stub.Dummy(milvus_pb2.DummyRequest(request_type=json.dumps(asked))).response
        == '{"status": "success"}'
    )
    asked["collection_name"] = "no_such_collection"
    assert (
        stub.Dummy(milvus_pb2.DummyRequest(request_type=json.dumps(asked))).response == '{"status": "fail"}'
    )
    assert stub.Dummy(milvus_pb2.DummyRequest(request_type="not json")).response == '{"status": "fail"}'
    client.drop_collection(name)
