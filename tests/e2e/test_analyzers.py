"""RunAnalyzer against the real server: Milvus's built-in analyzers, tokenizers and filters.

Expected tokens follow Milvus's documented behaviour (tantivy's simple tokenizer for
``standard``, Snowball stemmers, jieba in search mode with HMM for ``chinese``).
"""

from __future__ import annotations

from typing import Any

import pytest
from pymilvus import DataType, MilvusClient, MilvusException

CASES: list[tuple[str, dict[str, Any], str, list[str]]] = [
    (
        "standard",
        {"type": "standard"},
        "The Quick-Brown fox's 2 jumps!",
        ["the", "quick", "brown", "fox", "s", "2", "jumps"],
    ),
    (
        "standard stop",
        {"type": "standard", "stop_words": ["the", "fox"]},
        "The fox and THE hound",
        ["and", "hound"],
    ),
    ("english", {"type": "english"}, "The runners were running quickly", ["runner", "were", "run", "quick"]),
    ("chinese", {"type": "chinese"}, "我爱北京天安门", ["我", "爱", "北京", "天安", "天安门"]),
    ("chinese drops punctuation", {"type": "chinese"}, "你好！世界。", ["你好", "世界"]),
    ("whitespace", {"tokenizer": "whitespace"}, "Hello, World! foo_bar", ["Hello,", "World!", "foo_bar"]),
    (
        "whitespace lowercase",
        {"tokenizer": "whitespace", "filter": ["lowercase"]},
        "Hello World",
        ["hello", "world"],
    ),
    (
        "asciifolding",
        {"tokenizer": "standard", "filter": ["lowercase", "asciifolding"]},
        "Crème Brûlée à Noël",
        ["creme", "brulee", "a", "noel"],
    ),
    ("alphanumonly", {"tokenizer": "standard", "filter": ["alphanumonly"]}, "café 123 abc", ["123", "abc"]),
    (
        "length",
        {"tokenizer": "standard", "filter": [{"type": "length", "max": 4}]},
        "a abcd abcde",
        ["a", "abcd"],
    ),
    (
        "stop built-in and custom",
        {
            "tokenizer": "standard",
            "filter": ["lowercase", {"type": "stop", "stop_words": ["_english_", "hound"]}],
        },
        "The fox and the Hound",
        ["fox"],
    ),
    (
        "stop french",
        {"tokenizer": "whitespace", "filter": ["lowercase", {"type": "stop", "stop_words": ["_french_"]}]},
        "Le chat est sur la table",
        ["chat", "est", "table"],
    ),
    (
        "stemmer",
        {"tokenizer": "standard", "filter": ["lowercase", {"type": "stemmer", "language": "english"}]},
        "connections connected connecting",
        ["connect", "connect", "connect"],
    ),
    (
        "jieba custom dict",
        {"tokenizer": {"type": "jieba", "dict": ["结巴分词器"], "mode": "exact", "hmm": False}},
        "milvus结巴分词器中文测试",
        ["milvus", "结巴分词器", "中", "文", "测", "试"],
    ),
    ("jieba removepunct", {"tokenizer": "jieba", "filter": ["removepunct"]}, "你好!世界。", ["你好", "世界"]),
    (
        "cncharonly",
        {"tokenizer": "jieba", "filter": ["cncharonly"]},
        "Milvus 是向量数据库",
        ["是", "向量", "数据", "据库", "数据库"],
    ),
    ("empty params: standard", {}, "Hello WORLD", ["hello", "world"]),
]


@pytest.mark.parametrize(("name", "params", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_run_analyzer_tokens(
    client: MilvusClient, name: str, params: dict[str, Any], text: str, expected: list[str]
) -> None:
    assert client.run_analyzer(text, analyzer_params=params).tokens == expected


def test_run_analyzer_many_texts_with_detail_and_hash(client: MilvusClient) -> None:
    results = client.run_analyzer(
        ["Quick fox", "the dog"], analyzer_params={"type": "standard"}, with_detail=True, with_hash=True
    )
    first = [token.dict for token in results[0].tokens]
    assert [(t["token"], t["start_offset"], t["end_offset"], t["position"]) for t in first] == [
        ("quick", 0, 5, 0),
        ("fox", 6, 9, 1),
    ]
    assert all(t["hash"] > 0 for t in first)
    # The same term hashes the same in every text.
    second = client.run_analyzer("fox", analyzer_params={"type": "standard"}, with_hash=True)
    assert second.tokens[0].dict["hash"] == first[1]["hash"]
    assert [token.token for token in results[1].tokens] == ["the", "dog"]


def test_stop_word_gap_keeps_positions(client: MilvusClient) -> None:
    params = {"tokenizer": "standard", "filter": ["lowercase", {"type": "stop", "stop_words": ["_english_"]}]}
    tokens = client.run_analyzer("the cat and the hat", analyzer_params=params, with_detail=True).tokens
    assert [(t.token, t.position) for t in tokens] == [("cat", 1), ("hat", 4)]


def test_run_analyzer_with_a_collection_field(client: MilvusClient) -> None:
    name = "analyzer_field"
    if client.has_collection(name):
        client.drop_collection(name)
    schema = client.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field(
        "text", DataType.VARCHAR, max_length=200, enable_analyzer=True, analyzer_params={"type": "english"}
    )
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    client.create_collection(name, schema=schema)
    assert client.run_analyzer("Running dogs", collection_name=name, field_name="text").tokens == [
        "run",
        "dog",
    ]
    with pytest.raises(MilvusException) as caught:
        client.run_analyzer(
            "x", analyzer_params={"type": "standard"}, collection_name=name, field_name="text"
        )
    assert "can't use analyzer params and (collection,field) in same time" in caught.value.message
    client.drop_collection(name)


BAD_PARAMS = [
    ({"type": "klingon"}, "unknown build-in analyzer type: klingon"),
    ({"tokenizer": "nope"}, "unsupported tokenizer: nope"),
    ({"tokenizer": "standard", "filter": ["nope"]}, "filter not found :nope"),
    ({"tokenizer": "standard", "filter": "lowercase"}, "filter params should be array"),
    ({"tokenizer": "standard", "extra": 1}, "unknown analyzer option key: extra"),
    ({"filter": ["lowercase"]}, "tokenizer name or type must be set"),
    (
        {"tokenizer": "standard", "filter": [{"type": "stemmer", "language": "klingon"}]},
        "unsupport language: klingon",
    ),
    (
        {"tokenizer": "standard", "filter": [{"type": "length", "max": -1}]},
        "lenth max param was none or not uint",
    ),
    ({"tokenizer": "standard", "filter": [{"max": 3}]}, "no type field in filter params"),
    ({"tokenizer": {"type": "jieba", "mode": "fast"}}, 'jieba tokenizer mode must be "exact" or "search"'),
]


@pytest.mark.parametrize(("params", "reason"), BAD_PARAMS)
def test_bad_analyzer_params_answer_milvus_errors(
    client: MilvusClient, params: dict[str, Any], reason: str
) -> None:
    with pytest.raises(MilvusException) as caught:
        client.run_analyzer("text", analyzer_params=params)
    assert caught.value.code == 1100
    assert reason in caught.value.message
    assert caught.value.message.startswith("create tokenizer failed with error:")


def test_bad_analyzer_params_refuse_the_collection(client: MilvusClient) -> None:
    schema = client.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field(
        "text", DataType.VARCHAR, max_length=200, enable_analyzer=True, analyzer_params={"tokenizer": "nope"}
    )
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    with pytest.raises(MilvusException) as caught:
        client.create_collection("bad_analyzer", schema=schema)
    assert caught.value.code == 1100
    assert "unsupported tokenizer: nope" in caught.value.message
    assert not client.has_collection("bad_analyzer")
