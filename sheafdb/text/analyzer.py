"""Milvus's analyzers: ``analyzer_params`` -> a tokenizer and its filters -> tokens.

The rules and error texts follow Milvus's analyzer builder: an empty object is the
``standard`` analyzer; ``type`` names a built-in one (``standard``, ``english``, ``chinese``,
each taking ``stop_words``); otherwise ``tokenizer`` (a name, or an object with ``type``) and an
optional ``filter`` list, nothing else. Tokenizers: ``standard`` (tantivy's simple tokenizer:
runs of alphanumeric characters), ``whitespace``, ``jieba`` (jieba-rs, search mode with HMM by
default, as Milvus), and ``lindera``, ``icu``, ``language_identifier`` (``tokenizers.py``; the
last one runs whole sub-analyzers built here). Positions count the tokenizer's tokens, so a
filter that drops a token leaves a gap (phrase match relies on it); jieba reports each word's
start character as its position, as Milvus does.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import tantivy

from sheafdb.errors import ParameterInvalid
from sheafdb.schema import DataType, FieldSchema
from sheafdb.text import file_resources
from sheafdb.text import filters as F
from sheafdb.text.synonyms import SynonymTable
from sheafdb.text.tokenizers import (
    LINDERA_EMBEDDED,
    LINDERA_KINDS,
    IcuTokenizer,
    Identifier,
    LanguageIdentifierTokenizer,
    LinderaTokenizer,
    LinguaIdentifier,
    SplitToken,
    Tokenizer,
    WhatlangIdentifier,
)

# The type params Milvus reads on a VARCHAR field.
ENABLE_ANALYZER = "enable_analyzer"
ENABLE_MATCH = "enable_match"
ANALYZER_PARAMS = "analyzer_params"


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # character offsets in the analyzed text
    end: int
    position: int
    position_length: int = 1


class AnalyzerError(ParameterInvalid):
    """Bad ``analyzer_params``, with Milvus's wording (code 1100)."""

    def __init__(self, kind: str, reason: str, raw: str) -> None:
        super().__init__(f"create tokenizer failed with error: {kind}: {reason} param: {raw}")


class _NativeTokenizer(Tokenizer):
    """tantivy's ``simple`` (Milvus's standard) or ``whitespace`` tokenizer."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._bare = tantivy.TextAnalyzerBuilder(self.make()).build()

    def make(self) -> tantivy.Tokenizer:
        return tantivy.Tokenizer.simple() if self.kind == "standard" else tantivy.Tokenizer.whitespace()

    def words(self, text: str) -> list[str]:
        return self._bare.analyze(text)

    def split(self, text: str) -> list[SplitToken]:
        found: list[SplitToken] = []
        cursor = 0
        for position, word in enumerate(self._bare.analyze(text)):
            start = text.find(word, cursor)
            cursor = start + len(word)
            found.append((word, start, cursor, position, 1))
        return found


class _JiebaTokenizer(Tokenizer):
    def __init__(self, words: Sequence[str], use_default: bool, mode: str, hmm: bool) -> None:
        import rjieba  # its import loads jieba's dictionary (~0.6 s): only jieba analyzers pay it

        self._jieba = rjieba.Jieba() if use_default else rjieba.Jieba.empty()
        for word in words:
            self._jieba.add_word(word, None, None)
        self._mode = "search" if mode == "search" else "default"
        self._hmm = hmm

    def split(self, text: str) -> list[SplitToken]:
        return [
            (word, start, end, start, end - start)
            for word, start, end in self._jieba.tokenize(text, self._mode, self._hmm)
        ]


class Analyzer:
    """A built analyzer. Thread-safe (read-only but for the filter cache)."""

    def __init__(self, tokenizer: Tokenizer, filters: Sequence[F.Filter]) -> None:
        self._tokenizer = tokenizer
        self._chain = F.FilterChain(filters)
        self._native: tantivy.TextAnalyzer | None = None
        natives = F.native_filters(filters)
        if isinstance(tokenizer, _NativeTokenizer) and natives is not None:
            # One native pass for plain token lists (BM25, match queries): the common case.
            builder = tantivy.TextAnalyzerBuilder(tokenizer.make())
            for native in natives:
                builder = builder.filter(native)
            self._native = builder.build()

    def tokens(self, text: str) -> list[str]:
        if self._native is not None:
            return self._native.analyze(text)
        words = self._tokenizer.words(text)
        if self._chain.empty:
            return words
        return [out for word in words for out in self._chain.apply(word)]

    def analyze(self, text: str) -> list[Token]:
        """Tokens with their offsets and positions (RunAnalyzer's detail, phrase match)."""
        return [Token(*token) for token in self.analyze_split(text)]

    def analyze_split(self, text: str) -> list[SplitToken]:
        found: list[SplitToken] = []
        for word, start, end, position, length in self._tokenizer.split(text):
            outs = (word,) if self._chain.empty else self._chain.apply(word)
            found.extend((out, start, end, position, length) for out in outs)
        return found


def build_analyzer(raw: str | Mapping[str, Any] | None) -> Analyzer:
    """The analyzer ``analyzer_params`` (JSON text or object) describe; cached per text and
    file-resource generation (a replaced resource rebuilds the analyzers reading it)."""
    text = raw if isinstance(raw, str) else json.dumps(raw or {}, sort_keys=True)
    return _cached(text, file_resources.generation())


@functools.lru_cache(maxsize=64)
def _cached(text: str, generation: int) -> Analyzer:
    if not text.strip():
        return _standard([])
    try:
        params = json.loads(text)
    except json.JSONDecodeError as e:
        raise AnalyzerError("JsonError", str(e), text) from None
    if not isinstance(params, dict):
        raise AnalyzerError("InternalError", "params should be a json map", text)
    return _Builder(params, text).build()


def analyzer_for_field(field: FieldSchema) -> Analyzer:
    return build_analyzer(field.type_params.get(ANALYZER_PARAMS))


def is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def analyzer_enabled(field: FieldSchema) -> bool:
    return field.dtype is DataType.VARCHAR and is_true(field.type_params.get(ENABLE_ANALYZER))


def _standard(stop: Sequence[str]) -> Analyzer:
    steps = [F.lowercase(), *(F.stop_words(stop) if stop else [])]
    return Analyzer(_NativeTokenizer("standard"), steps)


class _Builder:
    def __init__(self, params: dict[str, Any], raw: str) -> None:
        self.params = params
        self.raw = raw

    def fail(self, reason: str, kind: str = "InternalError") -> AnalyzerError:
        return AnalyzerError(kind, reason, self.raw)

    def build(self) -> Analyzer:
        if not self.params:
            return _standard([])
        if "type" in self.params:
            return self._built_in(self.params["type"])
        tokenizer = self._tokenizer()
        steps: list[F.Filter] = []
        for key, value in self.params.items():
            if key == "tokenizer":
                continue
            if key != "filter":
                raise self.fail(f"unknown analyzer option key: {key}")
            if not isinstance(value, list):
                raise self.fail("filter params should be array")
            for item in value:
                steps.extend(self._filter(item))
        return Analyzer(tokenizer, steps)

    def _stop_option(self) -> list[str]:
        if "stop_words" not in self.params:
            return []
        return self._strings(self.params["stop_words"], "filter stop_words")

    def _strings(self, value: Any, what: str) -> list[str]:
        if not isinstance(value, list):
            raise self.fail(f"{what} should be array")
        if not all(isinstance(v, str) for v in value):
            raise self.fail(f"{what} item should be string")
        return list(value)

    def _built_in(self, kind: Any) -> Analyzer:
        if not isinstance(kind, str):
            raise self.fail("analyzer type shoud be string")
        stop = self._stop_option()
        if kind == "standard":
            return _standard(stop)
        if kind == "english":
            steps = [F.lowercase(), F.stemmer("english"), *F.stop_words(["_english_"])]
            return Analyzer(_NativeTokenizer("standard"), [*steps, *(F.stop_words(stop) if stop else [])])
        if kind == "chinese":
            jieba = _JiebaTokenizer([], True, "search", True)
            return Analyzer(jieba, [F.han_alphanum_only(), *(F.stop_words(stop) if stop else [])])
        raise self.fail(f"unknown build-in analyzer type: {kind}")

    def _tokenizer(self) -> Tokenizer:
        if "tokenizer" not in self.params:
            raise self.fail("tokenizer name or type must be set")
        value = self.params["tokenizer"]
        options: dict[str, Any] = {}
        if isinstance(value, str):
            name = value
        elif isinstance(value, dict):
            options = value
            if "type" not in value:
                raise self.fail("costum tokenizer must set type", "InvalidArgument")
            if not isinstance(value["type"], str):
                raise self.fail("tokenizer type should be string", "InvalidArgument")
            name = value["type"]
        else:
            raise self.fail("tokenizer name should be string or dict")
        if name in ("standard", "whitespace"):
            return _NativeTokenizer(name)
        if name == "jieba":
            return self._jieba(options)
        if name == "icu":
            return IcuTokenizer()
        if name == "lindera":
            return self._lindera(value)
        if name == "language_identifier":
            return self._language_identifier(value)
        raise self.fail(f"unsupported tokenizer: {name}", "InvalidArgument")

    def _lindera(self, value: Any) -> Tokenizer:
        if not isinstance(value, dict):
            raise self.fail("lindera tokenizer must be costum", "InvalidArgument")
        if "dict_kind" not in value:
            raise self.fail("lindera tokenizer dict_kind must be set", "InvalidArgument")
        kind = value["dict_kind"]
        if not isinstance(kind, str):
            raise self.fail("lindera tokenizer dict kind should be string", "InvalidArgument")
        if kind not in LINDERA_KINDS:
            raise self.fail(f"unsupported lindera dict type: {kind}", "InvalidArgument")
        if kind not in LINDERA_EMBEDDED:  # a dictionary this build does not hold, as in Milvus
            raise self.fail("lindera tokenizer with invalid dict_kind", "InvalidArgument")
        return LinderaTokenizer(kind)

    def _language_identifier(self, value: Any) -> Tokenizer:
        if not isinstance(value, dict):
            raise self.fail("lang ident tokenizer must be costum", "InvalidArgument")
        identifier = self._identifier(value.get("identifier", "whatlang"))
        if "analyzers" not in value:
            raise self.fail("analyzers must be set", "InvalidArgument")
        if not isinstance(value["analyzers"], dict):
            raise self.fail("analyzers must be dict", "InvalidArgument")
        analyzers: dict[str, Analyzer] = {}
        for name, params in value["analyzers"].items():
            if not isinstance(params, dict):
                raise self.fail(f'sub analyzer "{name}" params must be dict', "InvalidArgument")
            analyzers[name] = _Builder(params, self.raw).build()
        if "default" not in analyzers:
            raise self.fail(
                "default sub analyzer for language identifier analyzer must be set", "InvalidArgument"
            )
        mapping = value.get("mapping", {})
        if not isinstance(mapping, dict):
            raise self.fail("mapping must be dict", "InvalidArgument")
        if not all(isinstance(target, str) for target in mapping.values()):
            raise self.fail("mapping value must be string", "InvalidArgument")
        return LanguageIdentifierTokenizer(identifier, analyzers, mapping)

    def _identifier(self, value: Any) -> Identifier:
        if isinstance(value, str):
            if value == "whatlang":
                return WhatlangIdentifier(0.0)
            if value == "lingua":
                return LinguaIdentifier()
            raise self.fail(f"unknown identifier name: {value}", "InvalidArgument")
        if not isinstance(value, dict):
            raise self.fail("identifier params must be string or dict", "InvalidArgument")
        if "type" not in value:
            raise self.fail("identifier type must be set", "InvalidArgument")
        kind = value["type"]
        if not isinstance(kind, str):
            raise self.fail("identifier type must be string", "InvalidArgument")
        if kind == "whatlang":
            confidence = value.get("confidence", 0.0)
            if not isinstance(confidence, int | float) or isinstance(confidence, bool):
                raise self.fail("confidence must be float")
            return WhatlangIdentifier(float(confidence))
        if kind == "lingua":
            return LinguaIdentifier()
        raise self.fail(f"unknown identifier type: {kind}", "InvalidArgument")

    def _jieba(self, options: Mapping[str, Any]) -> Tokenizer:
        words: list[str] = []
        use_default = True
        if "dict" in options:
            if not isinstance(options["dict"], list):
                raise self.fail("jieba tokenizer dict must be array", "InvalidArgument")
            if not all(isinstance(w, str) for w in options["dict"]):
                raise self.fail("jieba tokenizer dict item must be string", "InvalidArgument")
            use_default = "_default_" in options["dict"]
            words = [w for w in options["dict"] if w != "_default_"]
        if file_resources.JIEBA_FILE_KEY in options:
            # jieba's dictionary format: "word [frequency] [tag]" a line; the word is what counts.
            lines = file_resources.file_lines(
                file_resources.JIEBA_FILE_KEY,
                options[file_resources.JIEBA_FILE_KEY],
                lambda reason: self.fail(reason, "InvalidArgument"),
            )
            words.extend(line.split()[0] for line in lines)
        mode = options.get("mode", "search")
        if not isinstance(mode, str):
            raise self.fail("jieba tokenizer mode must be string", "InvalidArgument")
        if mode not in ("exact", "search"):
            raise self.fail('jieba tokenizer mode must be "exact" or "search"', "InvalidArgument")
        hmm = options.get("hmm", True)
        if not isinstance(hmm, bool):
            raise self.fail("jieba tokenizer mode must be boolean", "InvalidArgument")
        return _JiebaTokenizer(words, use_default, mode, hmm)

    def _filter(self, item: Any) -> list[F.Filter]:
        if isinstance(item, str):
            named = F.NAMED_FILTERS.get(item)
            if named is None:
                raise self.fail(f"build analyzer failed, filter not found :{item}")
            return [named()]
        if not isinstance(item, dict):
            return []  # Milvus skips entries that are neither names nor objects
        if "type" not in item:
            raise self.fail("no type field in filter params")
        kind = item["type"]
        if not isinstance(kind, str):
            raise self.fail("filter type should be string")
        if kind == "length":
            limit = item.get("max")
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
                raise self.fail("lenth max param was none or not uint")
            return [F.max_length(limit)]
        if kind == "stop":
            words = self._strings(item.get("stop_words", []), "stop_words")
            return F.stop_words([*words, *self._file(item, kind)])
        if kind == "stemmer":
            language = item.get("language")
            if not isinstance(language, str):
                raise self.fail("stemmer language field should be string")
            if language.lower() not in F.STEMMER_LANGUAGES:
                raise self.fail(f"create stemmer failed : unsupport language: {language.lower()}")
            return [F.stemmer(language.lower())]
        if kind == "decompounder":
            words = item.get("word_list", [] if "word_list_file" in item else None)
            if not isinstance(words, list):
                raise self.fail("decompounder word list should be array")
            if not all(isinstance(w, str) for w in words):
                raise self.fail("decompounder word list item should be string")
            return [F.decompounder([*words, *self._file(item, kind)])]
        if kind == "regex":
            return [F.regex(self._regex(item))]
        if kind == "synonym":
            return [F.mapped(self._synonyms(item).expand)]
        raise self.fail(f"unsupport filter type: {kind}")

    def _regex(self, item: Mapping[str, Any]) -> re.Pattern[str]:
        if "expr" not in item:
            raise self.fail("must set expr for regex filter")
        expr = item["expr"]
        if not isinstance(expr, str):
            raise self.fail("expr must be string")
        try:
            return re.compile(expr)
        except re.error as e:
            raise self.fail(f"regex expression invalid, expr:{expr}, err: {e}", "InvalidArgument") from None

    def _synonyms(self, item: Mapping[str, Any]) -> SynonymTable:
        expand = item.get("expand", True)
        if not isinstance(expand, bool):
            raise self.fail("create synonym filter failed, `expand` must be bool", "InvalidArgument")
        rows = item.get("synonyms", [])
        if not isinstance(rows, list):
            raise self.fail("create synonym filter failed, `synonyms` must be array", "InvalidArgument")
        if not all(isinstance(row, str) for row in rows):
            raise self.fail(
                "create synonym filter failed, item in `synonyms` must be string", "InvalidArgument"
            )
        rows = [*rows, *self._file(item, "synonym")]
        return SynonymTable(rows, expand, lambda reason: self.fail(reason, "InvalidArgument"))

    def _file(self, item: Mapping[str, Any], kind: str) -> list[str]:
        """The lines of the file resource the filter's ``*_file`` param names (none if unset)."""
        key = file_resources.FILE_KEYS[kind]
        if key not in item:
            return []
        return file_resources.file_lines(key, item[key], lambda reason: self.fail(reason, "InvalidArgument"))
