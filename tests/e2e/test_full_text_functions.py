"""Full-text leftovers against the real server: functions after create, ComputePhraseMatchSlop,
Milvus's term hashes, and BM25 statistics without deleted rows."""

from __future__ import annotations

import base64
import math
import zlib
from collections import Counter
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
from pymilvus import DataType, Function, FunctionType, MilvusClient, MilvusException
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from tests.e2e.conftest import ROOT_TOKEN


def _bm25_schema(client: MilvusClient):  # type: ignore[no-untyped-def]
    schema = client.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=500, enable_analyzer=True)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        Function(
            name="bm25",
            function_type=FunctionType.BM25,
            input_field_names=["text"],
            output_field_names=["sparse"],
        )
    )
    return schema


@pytest.fixture
def bm25_collection(client: MilvusClient) -> Iterator[str]:
    name = "fts_functions"
    if client.has_collection(name):
        client.drop_collection(name)
    index = client.prepare_index_params()
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(name, schema=_bm25_schema(client), index_params=index)
    yield name
    client.drop_collection(name)


def _refused(call, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MilvusException) as caught:
        call()
    assert caught.value.code == 1100, caught.value
    assert reason in caught.value.message


def _bm25(name: str, output: str = "sparse") -> Function:
    return Function(
        name=name, function_type=FunctionType.BM25, input_field_names=["text"], output_field_names=[output]
    )


def _embedding(name: str) -> Function:
    return Function(
        name=name,
        function_type=FunctionType.TEXTEMBEDDING,
        input_field_names=["text"],
        output_field_names=["sparse"],
        params={"provider": "openai", "model_name": "text-embedding-3-small"},
    )


def test_functions_after_create_follow_milvus_rules(client: MilvusClient, bm25_collection: str) -> None:
    name = bm25_collection
    _refused(
        lambda: client.add_collection_function(name, _bm25("other")),
        "Currently does not support adding BM25 function",
    )
    _refused(
        lambda: client.add_collection_function(name, _embedding("embed")),
        "TextEmbedding functions (they call a model service) is not supported by SheafDB",
    )
    _refused(
        lambda: client.alter_collection_function(name, "bm25", _bm25("bm25")),
        "Currently does not support alter BM25 function",
    )
    _refused(
        lambda: client.alter_collection_function(name, "bm25", _embedding("x")),
        "Invalid function config, name not match",
    )
    _refused(
        lambda: client.alter_collection_function(name, "nope", _embedding("nope")), "Function nope not found"
    )
    _refused(
        lambda: client.alter_collection_function(name, "bm25", _embedding("bm25")),
        "Currently does not support alter BM25 function",
    )
    _refused(
        lambda: client.drop_collection_function(name, "bm25"),
        "Currently does not support droping BM25 function",
    )
    client.drop_collection_function(name, "not_there")  # Milvus answers success: nothing to drop
    functions = client.describe_collection(name)["functions"]
    assert [(f["name"], f["type"]) for f in functions] == [("bm25", FunctionType.BM25)]
    # The function is checked before the collection is looked up, as Milvus does.
    _refused(lambda: client.add_collection_function("no_such_collection", _bm25("b")), "adding BM25 function")
    with pytest.raises(MilvusException) as caught:
        client.drop_collection_function("no_such_collection", "bm25")
    assert caught.value.code == 100


def _stub_call(
    uri: str, request: milvus_pb2.ComputePhraseMatchSlopRequest
) -> milvus_pb2.ComputePhraseMatchSlopResponse:
    token = base64.b64encode(ROOT_TOKEN.encode()).decode()
    with grpc.insecure_channel(uri.removeprefix("http://")) as channel:
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        return stub.ComputePhraseMatchSlop(request, metadata=[("authorization", token)])


SLOPS = [
    ('{"type": "standard"}', "hello world", "hello world", True, 0),
    ('{"type": "standard"}', "A C", "A B C", True, 1),
    ('{"type": "standard"}', "A B", "A C D E B F G A B", True, 0),
    ('{"type": "standard"}', "A B A", "A B A", True, 0),
    ('{"type": "standard"}', "hello world", "hello there", False, -1),
    (
        '{"type": "standard"}',
        "I like swimming and skiing",
        "x " * 10 + "Skiing and swimming are sports that I like the most.",
        True,
        10,
    ),
    ('{"tokenizer": "jieba"}', "中文 测试", "测试 的 中文", True, 8),
]


@pytest.mark.parametrize(("params", "query", "text", "matched", "slop"), SLOPS)
def test_compute_phrase_match_slop(
    server_uri: str, params: str, query: str, text: str, matched: bool, slop: int
) -> None:
    reply = _stub_call(
        server_uri,
        milvus_pb2.ComputePhraseMatchSlopRequest(analyzer_params=params, query_text=query, data_texts=[text]),
    )
    assert reply.status.code == 0, reply.status.reason
    assert list(reply.is_match) == [matched]
    assert list(reply.slops) == [slop]


def test_compute_phrase_match_slop_many_texts_and_errors(server_uri: str) -> None:
    request = milvus_pb2.ComputePhraseMatchSlopRequest(
        analyzer_params="", query_text="quick fox", data_texts=["the quick fox", "quick brown fox", "a fox"]
    )
    reply = _stub_call(server_uri, request)
    assert (list(reply.is_match), list(reply.slops)) == ([True, True, False], [0, 1, -1])
    empty = _stub_call(server_uri, milvus_pb2.ComputePhraseMatchSlopRequest(query_text="", data_texts=["x"]))
    assert (empty.status.code, list(empty.slops)) == (0, [])
    bad = _stub_call(
        server_uri,
        milvus_pb2.ComputePhraseMatchSlopRequest(
            analyzer_params='{"tokenizer": "nope"}', query_text="a", data_texts=["a"]
        ),
    )
    assert bad.status.code == 1100 and "unsupported tokenizer: nope" in bad.status.reason


def _milvus_hash(token: str) -> int:
    """Milvus's typeutil.HashString2LessUint32: CRC-32 of the first 100 bytes, mod 2**32 - 1."""
    return zlib.crc32(token.encode()[:100]) % 0xFFFFFFFF


def test_token_hashes_are_milvus_hashes(client: MilvusClient) -> None:
    long_word = "é" * 80  # 160 UTF-8 bytes: only the first 100 are hashed
    result = client.run_analyzer(
        f"fox 北京 {long_word}", analyzer_params={"tokenizer": "whitespace"}, with_hash=True
    )
    tokens = [t.dict for t in result.tokens]
    assert [t["token"] for t in tokens] == ["fox", "北京", long_word]
    assert [t["hash"] for t in tokens] == [_milvus_hash(t["token"]) for t in tokens]


def _reference(texts: dict[int, str], query: str) -> dict[int, float]:
    k1, b = 1.2, 0.75
    docs = {key: Counter(text.split()) for key, text in texts.items()}
    avgdl = sum(sum(d.values()) for d in docs.values()) / len(docs)
    scores = dict.fromkeys(docs, 0.0)
    for term in set(query.split()):
        df = sum(1 for d in docs.values() if term in d)
        idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
        for key, d in docs.items():
            tf = d.get(term, 0)
            scores[key] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * sum(d.values()) / avgdl))
    return {key: s for key, s in scores.items() if s > 0}


def test_bm25_statistics_leave_out_deleted_rows(client: MilvusClient, bm25_collection: str) -> None:
    name = bm25_collection
    rng = np.random.default_rng(5)
    words = [f"t{i}" for i in range(30)]
    texts = {i: " ".join(rng.choice(words, size=int(rng.integers(2, 12)))) for i in range(400)}
    client.insert(name, [{"id": i, "text": t} for i, t in texts.items() if i < 300])
    client.flush(name)  # a sealed segment ...
    client.insert(name, [{"id": i, "text": t} for i, t in texts.items() if i >= 300])  # ... and growing rows
    client.load_collection(name)
    client.delete(name, filter="id < 60 or (id >= 300 and id < 330)")  # in both
    texts = {i: t for i, t in texts.items() if not (i < 60 or 300 <= i < 330)}
    client.upsert(name, [{"id": 100, "text": "t1 t1 t1 t2"}])  # an upsert hides the old version
    texts[100] = "t1 t1 t1 t2"
    for query in ["t1", "t2 t7", "t29 t0 t5"]:
        expected = _reference(texts, query)
        hits = client.search(name, [query], anns_field="sparse", limit=20, output_fields=["id"])[0]
        assert len(hits) == min(20, len(expected))
        for hit in hits:
            assert hit["distance"] == pytest.approx(expected[hit["id"]], rel=1e-4)


def _match_bytes(server_uri: str, collection: str) -> int:
    response = httpx.post(
        f"{server_uri}/v2/sheafdb/memory", json={}, headers={"Authorization": f"Bearer {ROOT_TOKEN}"}
    )
    assert response.status_code == 200 and response.json()["code"] == 0, response.text
    for entry in response.json()["data"]["collections"]:
        if entry["collectionName"] == collection:
            return sum(f["bytes"] for f in entry["fields"] if f["kind"] == "match")
    return -1  # not loaded


def test_match_indexes_are_accounted_and_released(client: MilvusClient, server_uri: str) -> None:
    name = "fts_match_memory"
    if client.has_collection(name):
        client.drop_collection(name)
    schema = client.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=200, enable_analyzer=True, enable_match=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index("v", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    client.insert(
        name, [{"id": i, "text": f"w{i % 37} w{i % 11} common", "v": [0.0, 1.0]} for i in range(2000)]
    )
    client.flush(name)
    client.load_collection(name)
    assert _match_bytes(server_uri, name) == 0  # built on first use only
    found = client.query(name, filter="TEXT_MATCH(text, 'w3')", output_fields=["id"], limit=5000)
    assert sorted(r["id"] for r in found) == [i for i in range(2000) if i % 37 == 3 or i % 11 == 3]
    held = _match_bytes(server_uri, name)
    assert held > 0
    client.query(name, filter="PHRASE_MATCH(text, 'w3 common', 1)", output_fields=["id"], limit=10)
    assert _match_bytes(server_uri, name) == held  # the same index serves the next reads
    client.release_collection(name)
    assert _match_bytes(server_uri, name) == -1
    client.drop_collection(name)
