"""Scalar and JSON path indexes through the real pymilvus client (and REST): Milvus's refusals,
built per sealed segment, loaded and accounted with the collection, and filters answering
exactly what a column scan answers, on sealed and growing rows, with nulls and deletes."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from tests.e2e.conftest import ROOT_TOKEN, compact_and_wait, free_port, start_server, stop_server, wait_ready

ROWS = 3000
WORDS = ("apple", "apricot", "banana", "blueberry", "cherry", "grape", "grapefruit", "melon")

# Every filter is run on the indexed collection and on an unindexed twin: same ids.
FILTERS = (
    "age == 7",
    "age != 7",
    "age in [1, 5, 9, 400]",
    "age not in [1, 5]",
    "age > 90",
    "age >= 10 and age < 13",
    "1 < age <= 4",
    "age == 7.5",
    "age < 3.5",
    "score > 0.9",
    "score <= 0.05",
    'color == "red"',
    'color in ["red", "blue"]',
    'color != "green"',
    'name like "apr%"',
    'name like "grape%"',
    'name like "%rr%"',
    'name like "%fruit%"',
    'name like "b%y%"',
    'name == "melon-7"',
    'name > "m"',
    'note like "%ana%"',
    "flag == true",
    "flag != false",
    'meta["price"] > 2900',
    'meta["price"] == 17',
    'meta["price"] in [3, 4, 5]',
    'meta["price"] != 17',
    'meta["price"] == "17"',
    'meta["tag"] like "t1%"',
    "not (age > 50)",
    "age is null",
    "color is null or age < 2",
    'array_contains(tags, "t3")',
    'array_contains(tags, "nope")',
    'array_contains_any(tags, ["t1", "t4", "nope"])',
    'array_contains_all(tags, ["t1", "t2"])',
    'array_contains_all(tags, ["t1", "t2", "t3", "t4", "t5"])',
    'not array_contains(tags, "t3")',
    'tags is null or array_contains(tags, "t0")',
    "array_contains(nums, 5)",
    "array_contains_any(nums, [1, 2, 70])",
    "array_contains_all(nums, [2, 4])",
    "array_contains(nums, 2) and not array_contains(nums, 3)",
    "array_contains(ratios, 0.1)",
    "array_contains_any(ratios, [0.25, 0.3])",
    "array_length(tags) == 0",
    'json_contains(meta["labels"], "l3")',
    'json_contains(meta["labels"], 12)',
    'json_contains_any(meta["labels"], [2, 5.0])',
    'json_contains_all(meta["labels"], ["l1", "l1"])',
    'json_contains_all(meta["labels"], ["l1", 1])',
    'not json_contains(meta["labels"], "l3")',
    'tags[0] == "t1"',
)


def _rows(start: int, count: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, start + count):
        word = WORDS[i % len(WORDS)]
        rows.append(
            {
                "id": i,
                "age": None if i % 11 == 0 else i % 100,
                "score": (i % 1000) / 1000,
                "color": None if i % 13 == 0 else ("red", "green", "blue", "black")[i % 4],
                "name": f"{word}-{i % 50}",
                "note": f"{word} note {i}",
                "flag": i % 3 == 0,
                "meta": {
                    "price": i if i % 7 else str(i),
                    "tag": f"t{i % 20}",
                    "labels": [f"l{i % 10}", i % 13, i % 2 == 0] if i % 4 else "none",
                },
                # Null, empty and repeated elements: the index must answer as the scan does.
                "tags": None if i % 17 == 0 else [f"t{(i + k) % 6}" for k in range(i % 5)],
                "nums": [i % 9, (i * 7) % 11, i % 9],
                "ratios": [(i % 10) / 10, 0.25] if i % 3 else [],
                "vec": [float(i % 10), float(i % 7), 1.0, 0.5],
            }
        )
    return rows


def _schema() -> Any:
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("age", DataType.INT32, nullable=True)
    schema.add_field("score", DataType.FLOAT)
    schema.add_field("color", DataType.VARCHAR, max_length=16, nullable=True)
    schema.add_field("name", DataType.VARCHAR, max_length=64)
    schema.add_field("note", DataType.VARCHAR, max_length=64)
    schema.add_field("flag", DataType.BOOL)
    schema.add_field("meta", DataType.JSON)
    schema.add_field(
        "tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=8, max_length=8, nullable=True
    )
    schema.add_field("nums", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4)
    schema.add_field("ratios", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=4)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
    return schema


def _scalar_indexes(client: MilvusClient) -> Any:
    params = client.prepare_index_params()
    params.add_index("age", index_type="INVERTED", index_name="age_inv")
    params.add_index("score", index_type="STL_SORT", index_name="score_sort")
    params.add_index("color", index_type="BITMAP", index_name="color_bitmap")
    params.add_index("name", index_type="TRIE", index_name="name_trie")
    params.add_index(
        "note", index_type="NGRAM", index_name="note_ngram", params={"min_gram": 2, "max_gram": 3}
    )
    params.add_index("flag", index_type="AUTOINDEX", index_name="flag_auto")
    params.add_index("tags", index_type="INVERTED", index_name="tags_inv")
    params.add_index("nums", index_type="BITMAP", index_name="nums_bitmap")
    params.add_index("ratios", index_type="AUTOINDEX", index_name="ratios_auto")
    for index_name, cast in (("price_num", "DOUBLE"), ("price_text", "VARCHAR")):
        params.add_index(
            "meta",
            index_type="INVERTED",
            index_name=index_name,
            params={"json_path": 'meta["price"]', "json_cast_type": cast},
        )
    for index_name, cast in (("labels_text", "ARRAY_VARCHAR"), ("labels_num", "ARRAY_DOUBLE")):
        params.add_index(
            "meta",
            index_type="INVERTED",
            index_name=index_name,
            params={"json_path": 'meta["labels"]', "json_cast_type": cast},
        )
    params.add_index(
        "meta",
        index_type="NGRAM",
        index_name="tag_ngram",
        params={"json_path": 'meta["tag"]', "json_cast_type": "VARCHAR", "min_gram": 1, "max_gram": 2},
    )
    return params


def _create(client: MilvusClient, name: str, indexed: bool) -> None:
    params = client.prepare_index_params()
    params.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=_schema(), index_params=params)
    if indexed:
        client.release_collection(name)
        client.create_index(name, _scalar_indexes(client))
        client.load_collection(name)


def _ids(client: MilvusClient, name: str, expr: str) -> list[int]:
    return sorted(r["id"] for r in client.query(name, filter=expr, output_fields=["id"], limit=16384))


def _wait_built(client: MilvusClient, name: str, index_name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        described = client.describe_index(name, index_name)
        if described["pending_index_rows"] == 0 and described["state"] == "Finished":
            return described
        assert time.monotonic() < deadline, described
        time.sleep(0.1)


def _scalar_index_bytes(server_uri: str, name: str, token: str | None = ROOT_TOKEN) -> dict[str, int]:
    """The memory accountant's scalar index blocks of a collection, by index name."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = httpx.post(f"{server_uri}/v2/sheafdb/memory", json={}, headers=headers).json()
    out: dict[str, int] = {}
    for entry in reply["data"]["collections"]:
        if entry["collectionName"] == name:
            for block in entry["fields"]:
                if block["kind"] == "scalar_index":
                    out[block["fieldName"]] = out.get(block["fieldName"], 0) + block["bytes"]
    return out


@pytest.fixture(scope="module")
def twins(client: MilvusClient) -> Any:
    indexed, plain = f"sidx_{uuid.uuid4().hex[:8]}", f"splain_{uuid.uuid4().hex[:8]}"
    for name, with_index in ((indexed, True), (plain, False)):
        _create(client, name, with_index)
        client.insert(name, _rows(0, ROWS))
        client.flush(name)  # sealed: the indexes build per segment
        client.insert(name, _rows(ROWS, ROWS // 2))
        client.flush(name)
        client.delete(name, filter="id in [7, 17, 27, 3001, 3002]")
        client.insert(name, _rows(ROWS + ROWS // 2, 200))  # growing rows: scanned
    yield indexed, plain
    client.drop_collection(indexed)
    client.drop_collection(plain)


def test_indexes_are_built_per_sealed_segment(client: MilvusClient, twins: Any) -> None:
    indexed, _ = twins
    for index_name in (
        "age_inv",
        "score_sort",
        "color_bitmap",
        "name_trie",
        "note_ngram",
        "flag_auto",
        "tags_inv",
        "nums_bitmap",
        "ratios_auto",
        "price_num",
        "price_text",
        "labels_text",
        "labels_num",
        "tag_ngram",
    ):
        described = _wait_built(client, indexed, index_name)
        assert described["indexed_rows"] == ROWS + ROWS // 2
    assert client.describe_index(indexed, "price_text")["json_cast_type"] == "VARCHAR"


def test_filters_with_and_without_indexes_agree(client: MilvusClient, twins: Any) -> None:
    indexed, plain = twins
    _wait_built(client, indexed, "tag_ngram")
    client.release_collection(indexed)
    client.load_collection(indexed)  # the indexes built after the load are read now too
    for expr in FILTERS:
        want = _ids(client, plain, expr)
        assert _ids(client, indexed, expr) == want, expr
    for expr in (
        'color == "red"',
        "age in [3, 4]",
        'array_contains_any(tags, ["t1", "t2"])',
        'name like "apr%"',
        'meta["price"] > 3000',
    ):
        got = client.search(indexed, [[1.0, 2.0, 1.0, 0.5]], filter=expr, limit=50, output_fields=["id"])
        want = client.search(plain, [[1.0, 2.0, 1.0, 0.5]], filter=expr, limit=50, output_fields=["id"])
        assert [h["id"] for h in got[0]] == [h["id"] for h in want[0]], expr


def test_indexes_are_accounted_and_released(client: MilvusClient, server_uri: str, twins: Any) -> None:
    indexed, _ = twins
    _wait_built(client, indexed, "tag_ngram")
    client.release_collection(indexed)
    client.load_collection(indexed)
    indexes = _scalar_index_bytes(server_uri, indexed)
    assert {
        "age_inv",
        "color_bitmap",
        "price_num",
        "tag_ngram",
        "tags_inv",
        "nums_bitmap",
        "labels_text",
    } <= set(indexes)
    assert all(
        indexes[n] > 0
        for n in ("age_inv", "color_bitmap", "price_num", "tags_inv", "nums_bitmap", "labels_num")
    )
    client.release_collection(indexed)
    assert _scalar_index_bytes(server_uri, indexed) == {}
    # A partial load without a field leaves its index on disk.
    client.load_collection(indexed, load_fields=["id", "vec", "age"])
    assert set(_scalar_index_bytes(server_uri, indexed)) & {"age_inv", "color_bitmap"} == {"age_inv"}
    assert _ids(client, indexed, "age == 7") == _ids(client, twins[1], "age == 7")
    client.release_collection(indexed)
    client.load_collection(indexed)


def test_compaction_rebuilds_and_drop_removes(client: MilvusClient, server_uri: str) -> None:
    name = f"sidx_c_{uuid.uuid4().hex[:8]}"
    _create(client, name, True)
    try:
        for start in (0, 500, 1000):
            client.insert(name, _rows(start, 500))
            client.flush(name)
        client.delete(name, filter="id < 100")
        compact_and_wait(client, name)
        assert _wait_built(client, name, "age_inv")["indexed_rows"] == 1400  # deleted rows dropped
        assert len(_ids(client, name, "age == 7")) == len([r for r in _rows(100, 1400) if r["age"] == 7])
        client.release_collection(name)
        client.drop_index(name, "price_text")
        assert "price_text" not in client.list_indexes(name)
        assert "price_num" in client.list_indexes(name)
        client.load_collection(name)
        assert "price_text" not in _scalar_index_bytes(server_uri, name)
        assert "price_num" in _scalar_index_bytes(server_uri, name)
        assert _ids(client, name, 'meta["price"] == 117') == [117]
    finally:
        client.drop_collection(name)


REFUSALS = (
    ("score", "BITMAP", {}, "bitmap index are only supported on bool, int, string and array field"),
    ("id", "BITMAP", {}, "create bitmap index on primary key not supported"),
    (
        "flag",
        "STL_SORT",
        {},
        "STL_SORT are only supported on numeric, varchar or timestamptz field, got Bool",
    ),
    ("age", "TRIE", {}, "TRIE are only supported on varchar field"),
    (
        "age",
        "NGRAM",
        {"min_gram": 2, "max_gram": 3},
        "ngram index can only be created on VARCHAR or JSON field",
    ),
    ("note", "NGRAM", {"min_gram": 2}, "Ngram index must specify both min_gram and max_gram"),
    (
        "note",
        "NGRAM",
        {"min_gram": "x", "max_gram": 3},
        "min_gram for Ngram index must be an integer, got: x",
    ),
    ("note", "NGRAM", {"min_gram": 4, "max_gram": 3}, "invalid min_gram or max_gram value for Ngram index"),
    (
        "meta",
        "NGRAM",
        {"json_path": 'meta["tag"]', "json_cast_type": "DOUBLE", "min_gram": 1, "max_gram": 2},
        "JSON field with ngram index only supports VARCHAR cast type, got: DOUBLE",
    ),
    (
        "meta",
        "INVERTED",
        {"json_path": 'meta["a"]', "json_cast_type": "DOUBLE", "json_cast_function": "NOPE"},
        "json_cast_function NOPE is not supported",
    ),
    (
        "meta",
        "INVERTED",
        {"json_path": 'meta["a"]', "json_cast_type": "VARCHAR", "json_cast_function": "STRING_TO_DOUBLE"},
        "json_cast_function STRING_TO_DOUBLE is not supported for json_cast_type VARCHAR",
    ),
    (
        "meta",
        "INVERTED",
        {"json_path": 'meta["a"]'},
        "json index must specify cast type: missing parameter[missing_param=json_cast_type]: "
        "invalid parameter[expected=valid index params][actual=invalid index params]",
    ),
    ("meta", "AUTOINDEX", {}, "json index must specify cast type"),
)


@pytest.mark.parametrize(("field", "index_type", "params", "message"), REFUSALS)
def test_wrong_type_or_params_are_refused(
    client: MilvusClient, twins: Any, field: str, index_type: str, params: dict[str, Any], message: str
) -> None:
    _, plain = twins
    index_params = client.prepare_index_params()
    index_params.add_index(field, index_type=index_type, index_name="refused", params=params)
    with pytest.raises(MilvusException) as refused:
        client.create_index(plain, index_params)
    assert refused.value.code == 1100
    assert message in refused.value.message


def test_rest_create_index_builds_a_scalar_index(client: MilvusClient, server_uri: str, twins: Any) -> None:
    _, plain = twins
    headers = {"Authorization": f"Bearer {ROOT_TOKEN}"}
    client.release_collection(plain)
    reply = httpx.post(
        f"{server_uri}/v2/vectordb/indexes/create",
        headers=headers,
        json={
            "collectionName": plain,
            "indexParams": [
                {"fieldName": "age", "indexName": "age_sorted", "params": {"index_type": "STL_SORT"}}
            ],
        },
    ).json()
    assert reply["code"] == 0, reply
    try:
        assert _wait_built(client, plain, "age_sorted")["index_type"] == "STL_SORT"
        client.load_collection(plain)
        assert "age_sorted" in _scalar_index_bytes(server_uri, plain)
        assert len(_ids(client, plain, "age == 7")) > 0
    finally:
        client.release_collection(plain)
        client.drop_index(plain, "age_sorted")
        client.load_collection(plain)


@pytest.mark.slow
def test_built_indexes_survive_a_restart(tmp_path: Path) -> None:
    """The catalog names each segment's index files: a restart loads them, nothing rebuilt."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    process = start_server(tmp_path / "data", port, tmp_path / "one.log", auth=False)
    try:
        wait_ready(process, tmp_path / "one.log")
        client = MilvusClient(uri)
        _create(client, "c", True)
        client.insert("c", _rows(0, 800))
        client.flush("c")
        _wait_built(client, "c", "tag_ngram")
        files = sorted(p.name for p in (tmp_path / "data").rglob("index_*.arrow"))
        assert len(files) == 14  # one file per scalar index of the one sealed segment
        before = {expr: _ids(client, "c", expr) for expr in FILTERS}
        client.close()
    finally:
        assert stop_server(process) == 0
    process = start_server(tmp_path / "data", port, tmp_path / "two.log", auth=False)
    try:
        wait_ready(process, tmp_path / "two.log")
        client = MilvusClient(uri)
        client.load_collection("c")
        assert client.describe_index("c", "note_ngram")["indexed_rows"] == 800
        assert sorted(p.name for p in (tmp_path / "data").rglob("index_*.arrow")) == files
        assert {"age_inv", "note_ngram", "price_num", "tags_inv"} <= set(
            _scalar_index_bytes(uri, "c", token=None)
        )
        assert {expr: _ids(client, "c", expr) for expr in FILTERS} == before
        client.close()
    finally:
        assert stop_server(process) == 0
