"""Reads racing loads, releases and field-list changes (issue 14, item 1): each read is served
from one consistent view or fails with Milvus's "not loaded" (101), never an internal error.

Against the session's real server: a loop of load / release / load(load_fields) / release while
a writer inserts, deletes and flushes and two readers run filtered queries and searches."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from tests.e2e.conftest import ROOT_TOKEN

DIM = 8
ROUNDS = 6


def _vectors(rng: np.random.Generator, rows: int) -> list[list[float]]:
    return rng.random((rows, DIM), dtype=np.float32).tolist()


def test_reads_racing_loads_releases_and_field_changes_never_fail_internally(client: MilvusClient) -> None:
    name = "load_races"
    schema = client.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
    client.create_collection(name, schema=schema, index_params=index)
    rng = np.random.default_rng(14)
    client.insert(name, [{"id": i, "vec": v, "tag": "a"} for i, v in enumerate(_vectors(rng, 2000))])
    client.flush(name)

    stop = threading.Event()
    bad: list[str] = []

    def writer() -> None:
        next_id = 2000
        writes = np.random.default_rng(1)
        while not stop.is_set():
            rows = [{"id": next_id + i, "vec": v, "tag": "b"} for i, v in enumerate(_vectors(writes, 100))]
            client.insert(name, rows)
            client.delete(name, filter=f"id in [{next_id - 50}, {next_id - 49}, {next_id + 3}]")
            next_id += 100
            if next_id % 1000 == 0:
                client.flush(name)

    def reader(kind: str) -> None:
        while not stop.is_set():
            try:
                if kind == "query":
                    client.query(name, filter="id < 1000", output_fields=["id"])
                else:
                    client.search(name, [[0.5] * DIM], limit=5, filter="id < 1000")
            except MilvusException as exc:
                if exc.code != 101 and "not loaded" not in exc.message:
                    bad.append(f"{kind}: {exc.code} {exc.message}")

    threads = [
        threading.Thread(target=writer),
        *(threading.Thread(target=reader, args=(k,)) for k in ("query", "search")),
    ]
    for thread in threads:
        thread.start()
    try:
        for _ in range(ROUNDS):
            client.load_collection(name)
            client.release_collection(name)
            client.load_collection(name, load_fields=["id", "vec"], skip_load_dynamic_field=True)
            client.release_collection(name)
        client.load_collection(name)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert bad == []
    # Loaded at the end: every read now answers, and the deletes hide their rows.
    rows = client.query(name, filter="id < 1000", output_fields=["id"])
    assert len(rows) == 1000
    client.drop_collection(name)


def test_loads_and_releases_racing_each_other_never_answer_internal_errors(
    client: MilvusClient, server_uri: str
) -> None:
    """Two clients cycle load / release / load(load_fields) / release on one collection at once,
    while a writer inserts and deletes and a reader queries and searches. Transitions are
    serialized per collection: a load meets either a released collection or a loaded one, and
    a load asking other fields than those loaded gets Milvus's parameter error (1100), never
    65535. At the end, a release and a full load give every field and every row."""
    name = "load_release_races"
    schema = client.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
    client.create_collection(name, schema=schema, index_params=index)
    rng = np.random.default_rng(15)
    client.insert(name, [{"id": i, "vec": v, "tag": "a"} for i, v in enumerate(_vectors(rng, 1000))])
    client.flush(name)

    stop = threading.Event()
    codes: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def attempt(kind: str, call: Callable[[], object]) -> None:
        try:
            call()
        except MilvusException as exc:
            with lock:
                codes.append((kind, exc.code, exc.message))

    def lifecycle(own: MilvusClient) -> None:
        for _ in range(ROUNDS):
            attempt("load", lambda: own.load_collection(name, timeout=120))
            attempt("release", lambda: own.release_collection(name))
            attempt(
                "partial_load",
                lambda: own.load_collection(
                    name, load_fields=["id", "vec"], skip_load_dynamic_field=True, timeout=120
                ),
            )
            attempt("release", lambda: own.release_collection(name))

    def writer() -> None:
        next_id = 1000
        writes = np.random.default_rng(2)
        while not stop.is_set():
            rows = [{"id": next_id + i, "vec": v, "tag": "b"} for i, v in enumerate(_vectors(writes, 50))]
            attempt("insert", functools.partial(client.insert, name, rows))
            attempt("delete", functools.partial(client.delete, name, ids=[next_id + 1]))
            next_id += 50

    def reader() -> None:
        while not stop.is_set():
            # Only fields both load field lists hold: a read of a field not loaded is refused.
            attempt("query", lambda: client.query(name, filter="id < 500", output_fields=["id"]))
            attempt("search", lambda: client.search(name, [[0.5] * DIM], limit=5, filter="id < 500"))

    lifecycles = [
        threading.Thread(target=lifecycle, args=(MilvusClient(uri=server_uri, token=ROOT_TOKEN),))
        for _ in range(2)
    ]
    others = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in (*lifecycles, *others):
        thread.start()
    for thread in lifecycles:
        thread.join()
    stop.set()
    for thread in others:
        thread.join()

    internal = [c for c in codes if c[1] == 65535 or "Error" in c[2].split(":")[0]]
    assert internal == []
    for kind, code, message in codes:
        if code == 1100:  # the other client loaded other fields in between
            assert kind in ("load", "partial_load"), (kind, message)
            assert "can't change the load field list for loaded collection" in message
        else:  # a read, or a load's progress poll, after the other client's release
            assert code in (101, 201) and "not loaded" in message, (kind, code, message)
    client.release_collection(name)
    client.load_collection(name)
    rows = client.query(name, filter="id < 500", output_fields=["id", "tag"])
    assert len(rows) == 500 and all(row["tag"] == "a" for row in rows)
    client.drop_collection(name)
