"""Full-text search against the real server: BM25 functions, text / phrase match, rankers.

The corpus is generated (lower-case ASCII words joined by spaces), so the standard analyzer's
tokens are ``text.split()`` and the references below are plain numpy / Python: BM25 with
Lucene's idf over the whole collection, TEXT_MATCH as "shares a term", PHRASE_MATCH as
"terms in order, each 0..slop positions further than right after the previous one".
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
from pymilvus import (
    AnnSearchRequest,
    DataType,
    Function,
    FunctionType,
    MilvusClient,
    MilvusException,
    RRFRanker,
)

K1, B = 1.5, 0.7
DOCS = 10_500
BATCHES = (3_000, 3_000, 3_000, 1_500)  # three sealed segments, then growing rows
VOCABULARY = [f"w{i}" for i in range(1_500)]
DIM = 8


def _corpus(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) for rank in range(len(VOCABULARY))]  # Zipf-like term frequencies
    return [" ".join(rng.choices(VOCABULARY, weights, k=rng.randint(3, 30))) for _ in range(count)]


def _schema(client: MilvusClient, *, enable_match: bool = True):  # type: ignore[no-untyped-def]
    schema = client.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field(
        "text", DataType.VARCHAR, max_length=2000, enable_analyzer=True, enable_match=enable_match
    )
    schema.add_field("year", DataType.INT64)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        Function(
            name="text_bm25",
            function_type=FunctionType.BM25,
            input_field_names=["text"],
            output_field_names=["sparse"],
        )
    )
    return schema


@pytest.fixture(scope="module")
def corpus(client: MilvusClient) -> Iterator[tuple[str, list[str]]]:
    name = "fts_corpus"
    if client.has_collection(name):
        client.drop_collection(name)
    index = client.prepare_index_params()
    index.add_index(
        "sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params={"bm25_k1": K1, "bm25_b": B}
    )
    index.add_index("dense", index_type="FLAT", metric_type="COSINE")
    client.create_collection(name, schema=_schema(client), index_params=index)
    texts = _corpus(7, DOCS)
    rng = np.random.default_rng(3)
    start = 0
    for i, size in enumerate(BATCHES):
        rows = [
            {
                "id": start + j,
                "text": texts[start + j],
                "year": (start + j) % 50,
                "dense": rng.random(DIM).tolist(),
            }
            for j in range(size)
        ]
        client.insert(name, rows)
        if i < len(BATCHES) - 1:
            client.flush(name)
        start += size
    yield name, texts
    client.drop_collection(name)


def _bm25_reference(texts: list[str], query: str) -> np.ndarray:
    docs = [Counter(t.split()) for t in texts]
    lengths = np.array([sum(d.values()) for d in docs], dtype=np.float64)
    avgdl = lengths.mean()
    scores = np.zeros(len(texts))
    for term, qtf in Counter(query.split()).items():
        tf = np.array([d.get(term, 0) for d in docs], dtype=np.float64)
        df = int((tf > 0).sum())
        idf = math.log(1 + (len(texts) - df + 0.5) / (df + 0.5))
        scores += qtf * idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * lengths / avgdl))
    return scores


@pytest.mark.slow
def test_bm25_scores_equal_a_reference_over_segments_and_growing_rows(
    client: MilvusClient, corpus: tuple[str, list[str]]
) -> None:
    name, texts = corpus
    queries = ["w3 w40", "w7 w7 w120 w999", "w1", "w1400 w2 w88"]
    found = client.search(name, queries, anns_field="sparse", limit=10, output_fields=["id"])
    for query, hits in zip(queries, found, strict=True):
        reference = _bm25_reference(texts, query)
        expected = np.sort(reference[reference > 0])[::-1][:10]
        scores = np.array([hit["distance"] for hit in hits])
        assert len(hits) == len(expected)
        np.testing.assert_allclose(scores, expected, rtol=1e-4)
        for hit in hits:  # each hit's own score, not only the sorted list
            assert hit["distance"] == pytest.approx(reference[hit["id"]], rel=1e-4)
        assert np.all(np.diff(scores) <= 1e-6) and np.all(scores > 0)


def test_bm25_search_with_filter_and_drop_ratio(client: MilvusClient, corpus: tuple[str, list[str]]) -> None:
    name, texts = corpus
    found = client.search(
        name,
        ["w5 w60"],
        anns_field="sparse",
        limit=5,
        filter="year == 7",
        search_params={"params": {"drop_ratio_search": 0.0}},
    )[0]
    reference = _bm25_reference(texts, "w5 w60")
    allowed = np.array([i % 50 == 7 for i in range(len(texts))])
    expected = np.sort(reference[allowed & (reference > 0)])[::-1][:5]
    np.testing.assert_allclose([hit["distance"] for hit in found], expected, rtol=1e-4)
    # drop_ratio_search 0.5 keeps the query's heavier half: the rarer term (higher idf).
    pruned = client.search(
        name, ["w1 w1300"], anns_field="sparse", limit=3, search_params={"params": {"drop_ratio_search": 0.5}}
    )[0]
    rare_only = _bm25_reference(texts, "w1300")
    assert [hit["id"] for hit in pruned] == list(np.argsort(-rare_only, kind="stable")[: len(pruned)])


def _phrase_match(tokens: list[str], phrase: list[str], slop: int) -> bool:
    reachable = [p for p, t in enumerate(tokens) if t == phrase[0]]
    for offset, term in enumerate(phrase[1:], start=1):
        shifted = [p - offset for p, t in enumerate(tokens) if t == term]
        reachable = [s for s in shifted if any(0 <= s - r <= slop for r in reachable)]
        if not reachable:
            return False
    return bool(reachable)


def test_text_match_equals_brute_force(client: MilvusClient, corpus: tuple[str, list[str]]) -> None:
    name, texts = corpus
    for words in ("w300 w301", "w1200", "w77 w78 w79"):
        wanted = set(words.split())
        expected = {i for i, t in enumerate(texts) if wanted & set(t.split())}
        rows = client.query(name, filter=f"TEXT_MATCH(text, '{words}')", output_fields=["id"], limit=16384)
        assert {r["id"] for r in rows} == expected
        count = client.query(
            name, filter=f"TEXT_MATCH(text, '{words}') and year < 25", output_fields=["count(*)"]
        )
        assert count[0]["count(*)"] == len({i for i in expected if i % 50 < 25})
    at_least_two = {i for i, t in enumerate(texts) if len({"w5", "w6", "w7"} & set(t.split())) >= 2}
    rows = client.query(
        name, filter="TEXT_MATCH(text, 'w5 w6 w7', minimum_should_match=2)", output_fields=["id"], limit=16384
    )
    assert {r["id"] for r in rows} == at_least_two


def test_phrase_match_equals_brute_force(client: MilvusClient, corpus: tuple[str, list[str]]) -> None:
    name, texts = corpus
    split = [t.split() for t in texts]
    for phrase, slop in (("w0 w1", 0), ("w0 w1", 2), ("w2 w0 w3", 1), ("w4 w4", 0)):
        terms = phrase.split()
        expected = {i for i, tokens in enumerate(split) if _phrase_match(tokens, terms, slop)}
        rows = client.query(
            name, filter=f"PHRASE_MATCH(text, '{phrase}', {slop})", output_fields=["id"], limit=16384
        )
        assert {r["id"] for r in rows} == expected, (phrase, slop)
    # In a search filter too.
    hits = client.search(name, ["w0"], anns_field="sparse", limit=50, filter="PHRASE_MATCH(text, 'w0 w1')")[0]
    assert hits and all(_phrase_match(split[h["id"]], ["w0", "w1"], 0) for h in hits)


def test_hybrid_rrf_over_bm25_and_dense(client: MilvusClient, corpus: tuple[str, list[str]]) -> None:
    name, _ = corpus
    vector = np.random.default_rng(11).random(DIM).tolist()
    text_req = AnnSearchRequest(["w9 w10"], "sparse", {}, limit=20)
    dense_req = AnnSearchRequest([vector], "dense", {}, limit=20)
    fused = client.hybrid_search(name, [text_req, dense_req], RRFRanker(60), limit=10)[0]
    text_hits = client.search(name, ["w9 w10"], anns_field="sparse", limit=20)[0]
    dense_hits = client.search(name, [vector], anns_field="dense", limit=20)[0]
    expected: dict[int, float] = {}
    for hits in (text_hits, dense_hits):
        for rank, hit in enumerate(hits, start=1):
            expected[hit["id"]] = expected.get(hit["id"], 0.0) + 1.0 / (60 + rank)
    best = sorted(expected.values(), reverse=True)[:10]
    assert [h["distance"] for h in fused] == pytest.approx(best, rel=1e-5)
    assert all(h["distance"] == pytest.approx(expected[h["id"]], rel=1e-5) for h in fused)


def test_decay_ranker_reorders_by_distance_from_origin(
    client: MilvusClient, corpus: tuple[str, list[str]]
) -> None:
    name, _ = corpus
    params = {"reranker": "decay", "function": "gauss", "origin": 10, "scale": 5, "offset": 1, "decay": 0.5}
    ranker = Function(
        name="recent", input_field_names=["year"], function_type=FunctionType.RERANK, params=params
    )
    plain = client.search(name, ["w12"], anns_field="sparse", limit=30, output_fields=["year"])[0]
    decayed = client.search(
        name, ["w12"], anns_field="sparse", limit=30, ranker=ranker, output_fields=["year"]
    )[0]
    sigma_sq = -(5**2) / (2 * math.log(0.5))
    expected = {
        h["id"]: h["distance"] * math.exp(-(max(0, abs(h["entity"]["year"] - 10) - 1) ** 2) / (2 * sigma_sq))
        for h in plain
    }
    assert {h["id"] for h in decayed} == set(expected)
    assert [h["distance"] for h in decayed] == pytest.approx(
        sorted(expected.values(), reverse=True), rel=1e-5
    )
    with pytest.raises(MilvusException) as caught:
        bad = Function(
            name="m",
            input_field_names=["text"],
            function_type=FunctionType.RERANK,
            params={"reranker": "model", "provider": "tei"},
        )
        client.search(name, ["w12"], anns_field="sparse", limit=3, ranker=bad)
    assert "model rankers" in caught.value.message


def test_what_langchain_and_llamaindex_send(client: MilvusClient) -> None:
    """AUTOINDEX + BM25 with build params, searches without a metric and with drop ratios, and the
    function read back from describe_collection on reconnect."""
    name = "fts_clients"
    if client.has_collection(name):
        client.drop_collection(name)
    index = client.prepare_index_params()
    index.add_index("sparse", index_type="AUTOINDEX", metric_type="BM25", params={"drop_ratio_build": 0.2})
    index.add_index("dense", index_type="AUTOINDEX", metric_type="IP")
    client.create_collection(name, schema=_schema(client, enable_match=False), index_params=index)
    texts = _corpus(5, 300)
    client.insert(name, [{"id": i, "text": t, "year": i, "dense": [0.1] * DIM} for i, t in enumerate(texts)])
    for params in ({"drop_ratio_build": 0.2}, {"params": {"drop_ratio_search": 0.2}}):
        hits = client.search(name, ["w1 w2 w3"], anns_field="sparse", limit=5, search_params=params)[0]
        scores = [h["distance"] for h in hits]
        assert scores and all(s > 0 for s in scores) and scores == sorted(scores, reverse=True)
    functions = client.describe_collection(name)["functions"]
    assert functions == [
        {
            "name": "text_bm25",
            "id": functions[0]["id"],
            "description": "",
            "type": FunctionType.BM25,
            "params": {},
            "input_field_names": ["text"],
            "input_field_ids": functions[0]["input_field_ids"],
            "output_field_names": ["sparse"],
            "output_field_ids": functions[0]["output_field_ids"],
        }
    ]
    fields = {f["name"]: f for f in client.describe_collection(name)["fields"]}
    assert fields["sparse"].get("is_function_output") is True
    # "*" leaves the BM25 output out (LangChain asks for "*"); naming it is Milvus's error.
    row = client.query(name, filter="id == 3", output_fields=["*"])[0]
    assert set(row) == {"id", "text", "year", "dense"}
    with pytest.raises(MilvusException) as caught:
        client.query(name, filter="id == 3", output_fields=["sparse"])
    assert "not allowed to retrieve raw data of field sparse" in caught.value.message
    client.drop_collection(name)


def test_schema_rules_for_bm25(client: MilvusClient) -> None:
    schema = client.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=100)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        Function(
            name="f",
            function_type=FunctionType.BM25,
            input_field_names=["text"],
            output_field_names=["sparse"],
        )
    )
    with pytest.raises(MilvusException) as caught:
        client.create_collection("fts_rules", schema=schema)
    assert "BM25 function input field must set enable_analyzer to true" in caught.value.message
    name = "fts_rules"
    client.create_collection(name, schema=_schema(client, enable_match=False))
    index = client.prepare_index_params()
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    with pytest.raises(MilvusException) as caught:
        client.create_index(name, index)
    assert "only supports BM25 metric" in caught.value.message
    with pytest.raises(MilvusException) as caught:
        client.insert(name, [{"id": 1, "text": "a b", "year": 1, "dense": [0.0] * DIM, "sparse": {1: 1.0}}])
    assert "function output field" in caught.value.message
    client.drop_collection(name)


def test_text_match_refused_without_enable_match_and_delete_by_match(client: MilvusClient) -> None:
    name = "fts_delete"
    if client.has_collection(name):
        client.drop_collection(name)
    index = client.prepare_index_params()
    index.add_index("sparse", index_type="AUTOINDEX", metric_type="BM25")
    index.add_index("dense", index_type="AUTOINDEX", metric_type="L2")
    client.create_collection(name, schema=_schema(client), index_params=index)
    texts = ["red apple", "green apple", "red car", "blue sky"]
    client.insert(name, [{"id": i, "text": t, "year": i, "dense": [0.0] * DIM} for i, t in enumerate(texts)])
    client.delete(name, filter="TEXT_MATCH(text, 'red')")
    assert sorted(r["id"] for r in client.query(name, filter="id >= 0", output_fields=["id"])) == [1, 3]
    with pytest.raises(MilvusException) as caught:
        client.query(name, filter="TEXT_MATCH(year, 'x')")
    assert caught.value.code == 1100
    client.drop_collection(name)


@pytest.mark.slow
def test_bm25_collection_survives_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Functions, analyzer params and the BM25 index (with its row lengths) come back from disk."""
    from tests.e2e.conftest import free_port, start_server, stop_server, wait_ready

    port, log = free_port(), tmp_path / "server.log"
    process = start_server(tmp_path / "data", port, log, auth=False)
    try:
        wait_ready(process, log)
        client = MilvusClient(uri=f"http://127.0.0.1:{port}")
        index = client.prepare_index_params()
        index.add_index(
            "sparse",
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            params={"bm25_k1": K1, "bm25_b": B},
        )
        index.add_index("dense", index_type="FLAT", metric_type="L2")
        client.create_collection("kept", schema=_schema(client), index_params=index)
        texts = _corpus(9, 400)
        client.insert(
            "kept", [{"id": i, "text": t, "year": i, "dense": [0.0] * DIM} for i, t in enumerate(texts[:300])]
        )
        client.flush("kept")
        client.insert(
            "kept",
            [{"id": i, "text": t, "year": i, "dense": [0.0] * DIM} for i, t in enumerate(texts) if i >= 300],
        )
        before = client.search("kept", ["w2 w30"], anns_field="sparse", limit=5)[0]
        client.close()
    finally:
        stop_server(process)
    process = start_server(tmp_path / "data", port, log, auth=False)
    try:
        wait_ready(process, log)
        client = MilvusClient(uri=f"http://127.0.0.1:{port}")
        client.load_collection("kept")
        after = client.search("kept", ["w2 w30"], anns_field="sparse", limit=5)[0]
        assert [(h["id"], pytest.approx(h["distance"], rel=1e-5)) for h in before] == [
            (h["id"], h["distance"]) for h in after
        ]
        reference = _bm25_reference(texts, "w2 w30")
        assert [h["distance"] for h in after] == pytest.approx(sorted(reference, reverse=True)[:5], rel=1e-4)
        assert client.describe_collection("kept")["functions"][0]["name"] == "text_bm25"
        client.close()
    finally:
        stop_server(process)
