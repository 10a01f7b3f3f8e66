"""RunAnalyzer against the real server: Milvus 2.6's other tokenizers (lindera, icu,
language_identifier) and filters (regex, synonym, the ``_chinese_`` stop list).

Expected tokens are the ones Milvus's own analyzer tests and docs give for the same params
(tokens of the same libraries: Lindera's embedded dictionaries, ICU's word breaks, whatlang and
lingua), order-free where Milvus's synonym filter gives a set.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymilvus import DataType, MilvusClient, MilvusException

STANDARD_SUBS = {
    "default": {"tokenizer": "standard"},
    "en": {"type": "english"},
    "jieba": {"tokenizer": "jieba"},
}

CASES: list[tuple[str, dict[str, Any], str, list[str]]] = [
    (
        "regex keeps matches",
        {"tokenizer": "standard", "filter": [{"type": "regex", "expr": "^(?!test)"}]},
        "test milvus testing atest",
        ["milvus", "atest"],
    ),
    (
        "chinese stop list",
        {"tokenizer": "jieba", "filter": [{"type": "stop", "stop_words": ["_chinese_"]}]},
        "我们的产品是一个向量数据库",
        ["产品", "一个", "向量", "数据", "据库", "数据库"],
    ),
    (
        "lindera ipadic",
        {"tokenizer": {"type": "lindera", "dict_kind": "ipadic"}},
        "東京スカイツリーの最寄り駅はとうきょうスカイツリー駅です",
        [
            "東京",
            "スカイ",
            "ツリー",
            "の",
            "最寄り駅",
            "は",
            "とう",
            "きょう",
            "スカイ",
            "ツリー",
            "駅",
            "です",
        ],
    ),
    (
        "lindera ko-dic",
        {"tokenizer": {"type": "lindera", "dict_kind": "ko-dic"}},
        "안녕하세요 세계",
        ["안녕", "하", "세요", "세계"],
    ),
    (
        "lindera cc-cedict",
        {"tokenizer": {"type": "lindera", "dict_kind": "cc-cedict"}},
        "中文分词测试",
        ["中文", "分词", "测试"],
    ),
    (
        "icu keeps every segment",
        {"tokenizer": "icu"},
        "tokenizer for global doc, 中文",
        ["tokenizer", " ", "for", " ", "global", " ", "doc", ",", " ", "中文"],
    ),
    (
        "icu with filters",
        {"tokenizer": "icu", "filter": ["lowercase", "removepunct", {"type": "regex", "expr": r"\S"}]},
        "Hello, World!",
        ["hello", "world"],
    ),
    (
        "language identifier: English",
        {
            "tokenizer": {
                "type": "language_identifier",
                "analyzers": STANDARD_SUBS,
                "mapping": {"Mandarin": "jieba", "English": "en"},
            }
        },
        "This is a simple test for language identification.",
        ["simpl", "test", "languag", "identif"],
    ),
    (
        "language identifier: Mandarin",
        {
            "tokenizer": {
                "type": "language_identifier",
                "analyzers": STANDARD_SUBS,
                "mapping": {"Mandarin": "jieba", "English": "en"},
            }
        },
        "测试中文文本",
        ["测试", "中文", "文本"],
    ),
    (
        "language identifier: lingua",
        {
            "tokenizer": {
                "type": "language_identifier",
                "identifier": "lingua",
                "analyzers": STANDARD_SUBS,
                "mapping": {"Chinese": "jieba", "English": "en"},
            }
        },
        "running dogs are faster",
        ["run", "dog", "faster"],
    ),
    (
        "language identifier: undetectable text uses default",
        {"tokenizer": {"type": "language_identifier", "analyzers": STANDARD_SUBS}},
        "12345 678",
        ["12345", "678"],
    ),
]


@pytest.mark.parametrize(("name", "params", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_run_analyzer_tokens(
    client: MilvusClient, name: str, params: dict[str, Any], text: str, expected: list[str]
) -> None:
    assert client.run_analyzer(text, analyzer_params=params).tokens == expected


def test_synonyms_as_milvus_parses_them(client: MilvusClient) -> None:
    no_expand = {
        "tokenizer": "standard",
        "filter": [
            {
                "type": "synonym",
                "expand": False,
                "synonyms": ["trans => translate, \\=>", "\\\\test, test, tests"],
            }
        ],
    }
    found = client.run_analyzer("test trans synonym", analyzer_params=no_expand).tokens
    assert sorted(found) == sorted(["\\test", "translate", "=>", "synonym"])
    expand = {
        "tokenizer": "standard",
        "filter": [{"type": "synonym", "synonyms": ["distance, range, span, length", "interval => gap"]}],
    }
    tokens = client.run_analyzer("distance interval", analyzer_params=expand, with_detail=True).tokens
    assert {t.token for t in tokens} == {"distance", "range", "span", "length", "interval", "gap"}
    # A token's synonyms stand at its position (phrase match sees them as alternatives).
    assert {t.token: t.position for t in tokens}["gap"] == 1
    assert {t.token: t.position for t in tokens}["span"] == 0


def test_icu_positions_count_characters(client: MilvusClient) -> None:
    tokens = client.run_analyzer("ab 中文", analyzer_params={"tokenizer": "icu"}, with_detail=True).tokens
    assert [(t.token, t.start_offset, t.end_offset, t.position) for t in tokens] == [
        ("ab", 0, 2, 0),
        (" ", 2, 3, 2),
        ("中文", 3, 5, 3),
    ]


BAD_PARAMS = [
    ({"tokenizer": "standard", "filter": [{"type": "regex"}]}, "must set expr for regex filter"),
    ({"tokenizer": "standard", "filter": [{"type": "regex", "expr": 3}]}, "expr must be string"),
    (
        {"tokenizer": "standard", "filter": [{"type": "regex", "expr": "("}]},
        "regex expression invalid, expr:(",
    ),
    ({"tokenizer": "standard", "filter": [{"type": "synonym", "expand": "yes"}]}, "`expand` must be bool"),
    (
        {"tokenizer": "standard", "filter": [{"type": "synonym", "synonyms": "a,b"}]},
        "`synonyms` must be array",
    ),
    (
        {"tokenizer": "standard", "filter": [{"type": "synonym", "synonyms": ["a b, c"]}]},
        "has space between words",
    ),
    (
        {"tokenizer": "standard", "filter": [{"type": "synonym", "synonyms": ["a => b => c"]}]},
        'more than one "=>"',
    ),
    (
        {"tokenizer": "standard", "filter": [{"type": "synonym", "synonyms": ["a\\"]}]},
        "invalid synonym escaped in the end",
    ),
    ({"tokenizer": "lindera"}, "lindera tokenizer must be costum"),
    ({"tokenizer": {"type": "lindera"}}, "lindera tokenizer dict_kind must be set"),
    ({"tokenizer": {"type": "lindera", "dict_kind": "klingon"}}, "unsupported lindera dict type: klingon"),
    ({"tokenizer": {"type": "lindera", "dict_kind": "unidic"}}, "lindera tokenizer with invalid dict_kind"),
    ({"tokenizer": "language_identifier"}, "lang ident tokenizer must be costum"),
    ({"tokenizer": {"type": "language_identifier"}}, "analyzers must be set"),
    (
        {"tokenizer": {"type": "language_identifier", "analyzers": {"en": {"type": "english"}}}},
        "default sub analyzer for language identifier analyzer must be set",
    ),
    (
        {"tokenizer": {"type": "language_identifier", "identifier": "cld", "analyzers": STANDARD_SUBS}},
        "unknown identifier name: cld",
    ),
    (
        {"tokenizer": {"type": "language_identifier", "analyzers": {"default": {"tokenizer": "nope"}}}},
        "unsupported tokenizer: nope",
    ),
]


@pytest.mark.parametrize(("params", "reason"), BAD_PARAMS)
def test_bad_params_answer_milvus_errors(client: MilvusClient, params: dict[str, Any], reason: str) -> None:
    with pytest.raises(MilvusException) as caught:
        client.run_analyzer("text", analyzer_params=params)
    assert caught.value.code == 1100
    assert reason in caught.value.message


def test_text_match_through_lindera_and_synonyms(client: MilvusClient) -> None:
    name = "analyzers_more_match"
    if client.has_collection(name):
        client.drop_collection(name)
    schema = client.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field(
        "ja",
        DataType.VARCHAR,
        max_length=200,
        enable_analyzer=True,
        enable_match=True,
        analyzer_params={"tokenizer": {"type": "lindera", "dict_kind": "ipadic"}},
    )
    schema.add_field(
        "en",
        DataType.VARCHAR,
        max_length=200,
        enable_analyzer=True,
        enable_match=True,
        analyzer_params={
            "tokenizer": "standard",
            "filter": ["lowercase", {"type": "synonym", "synonyms": ["car, auto"]}],
        },
    )
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index("v", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    client.insert(
        name,
        [
            {"id": 1, "ja": "東京スカイツリーの最寄り駅", "en": "a red Car", "v": [0.0, 0.0]},
            {"id": 2, "ja": "大阪の天気", "en": "an auto shop", "v": [0.0, 0.0]},
            {"id": 3, "ja": "京都", "en": "a bicycle", "v": [0.0, 0.0]},
        ],
    )
    client.load_collection(name)
    assert [r["id"] for r in client.query(name, filter="TEXT_MATCH(ja, '東京')", output_fields=["id"])] == [1]
    found = client.query(name, filter="TEXT_MATCH(en, 'car')", output_fields=["id"])
    assert sorted(r["id"] for r in found) == [1, 2]
    client.drop_collection(name)
