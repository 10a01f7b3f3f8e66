"""Milvus's token filters, each a step that maps one token to zero or more tokens.

Every filter Milvus documents is token-local (it sees one token at a time), so a chain of them
is a function of the token alone: ``FilterChain`` runs consecutive tantivy filters as one
native analyzer over the token (tokenizer ``raw``) and caches each distinct token's result,
so a corpus pays the chain once per vocabulary word, not once per occurrence.

Milvus builds the same filters on tantivy's (lowercase, asciifolding, alphanumonly, length,
stop, stemmer, decompounder); the few it writes itself (cncharonly, cnalphanumonly,
removepunct, regex) are Python predicates here, and ``synonym`` a Python token -> synonyms map.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

import tantivy

# The stop list Milvus's ``_english_`` names (Lucene's classic English set), and the languages
# whose Snowball lists tantivy ships under the same ``_<language>_`` names.
ENGLISH_STOP_WORDS = (
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with"
).split()
SNOWBALL_STOP_LANGUAGES = frozenset(
    {
        "danish",
        "dutch",
        "finnish",
        "french",
        "german",
        "hungarian",
        "italian",
        "norwegian",
        "portuguese",
        "russian",
        "spanish",
        "swedish",
    }
)
STEMMER_LANGUAGES = frozenset(
    {
        "arabic",
        "danish",
        "dutch",
        "english",
        "finnish",
        "french",
        "german",
        "greek",
        "hungarian",
        "italian",
        "norwegian",
        "portuguese",
        "romanian",
        "russian",
        "spanish",
        "swedish",
        "tamil",
        "turkish",
    }
)

# Unicode's Han script (Milvus's ``\p{Han}``), as ranges: Python's re has no script classes.
_HAN = (
    "\u2e80-\u2e99\u2e9b-\u2ef3\u2f00-\u2fd5\u3005\u3007\u3021-\u3029\u3038-\u303b"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufa6d\ufa70-\ufad9"
    "\U00020000-\U0002a6df\U0002a700-\U0002ebe0\U0002f800-\U0002fa1d\U00030000-\U0003134a"
)
# Milvus's filters keep a token when the pattern is found anywhere in it (``is_match``).
_HAN_RE = re.compile(f"[{_HAN}]")
_HAN_ALNUM_RE = re.compile(f"[{_HAN}a-zA-Z0-9]")

TokenStep = Callable[[str], bool]


@dataclass(frozen=True)
class NativeFilter:
    """One tantivy filter (built per analyzer: tantivy filter objects are not shareable)."""

    make: Callable[[], tantivy.Filter]


@dataclass(frozen=True)
class KeepFilter:
    """A Python filter that keeps or drops a token whole."""

    keep: TokenStep


@dataclass(frozen=True)
class MapFilter:
    """A Python filter that replaces a token by zero or more tokens (same offsets, position)."""

    map: Callable[[str], tuple[str, ...]]


Filter = NativeFilter | KeepFilter | MapFilter


def lowercase() -> Filter:
    return NativeFilter(tantivy.Filter.lowercase)


def ascii_folding() -> Filter:
    return NativeFilter(tantivy.Filter.ascii_fold)


def alphanum_only() -> Filter:
    return NativeFilter(tantivy.Filter.alphanum_only)


def max_length(limit: int) -> Filter:
    # tantivy drops tokens of ``limit`` bytes or more; Milvus's ``max`` is the longest kept.
    return NativeFilter(lambda: tantivy.Filter.remove_long(limit + 1))


def stemmer(language: str) -> Filter:
    return NativeFilter(lambda: tantivy.Filter.stemmer(language))


def decompounder(words: Sequence[str]) -> Filter:
    listed = list(words)
    return NativeFilter(lambda: tantivy.Filter.split_compound(listed))


@functools.cache
def chinese_stop_words() -> tuple[str, ...]:
    """Milvus's ``_chinese_`` list (the package's ``stop_words/chinese.txt``, one word a line)."""
    text = resources.files("sheafdb.text").joinpath("stop_words/chinese.txt").read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def stop_words(words: Sequence[str]) -> list[Filter]:
    """Milvus's stop filter: ``_<language>_`` entries name built-in lists, others are words."""
    literal: list[str] = []
    languages: list[str] = []
    for word in words:
        name = word[1:-1] if len(word) > 2 and word.startswith("_") and word.endswith("_") else ""
        if name == "english":
            literal.extend(ENGLISH_STOP_WORDS)
        elif name == "chinese":
            literal.extend(chinese_stop_words())
        elif name in SNOWBALL_STOP_LANGUAGES:
            languages.append(name)
        else:
            literal.append(word)
    steps: list[Filter] = []
    if literal:
        steps.append(NativeFilter(lambda: tantivy.Filter.custom_stopword(literal)))
    steps.extend(NativeFilter(lambda lang=lang: tantivy.Filter.stopword(lang)) for lang in languages)
    return steps


def han_only() -> Filter:
    return KeepFilter(lambda token: _HAN_RE.search(token) is not None)


def han_alphanum_only() -> Filter:
    return KeepFilter(lambda token: _HAN_ALNUM_RE.search(token) is not None)


def regex(pattern: re.Pattern[str]) -> Filter:
    """Keeps a token the pattern is found in (anywhere: Milvus's ``is_match``)."""
    return KeepFilter(lambda token: pattern.search(token) is not None)


def mapped(step: Callable[[str], tuple[str, ...]]) -> Filter:
    return MapFilter(step)


def remove_punctuation() -> Filter:
    return KeepFilter(lambda token: not all(unicodedata.category(c).startswith("P") for c in token))


# Filters a ``filter`` list may name by a bare string.
NAMED_FILTERS: dict[str, Callable[[], Filter]] = {
    "lowercase": lowercase,
    "asciifolding": ascii_folding,
    "alphanumonly": alphanum_only,
    "cncharonly": han_only,
    "cnalphanumonly": han_alphanum_only,
    "removepunct": remove_punctuation,
}

# Distinct tokens whose filtered form a chain keeps; past this the cache starts over.
_CACHE_LIMIT = 1 << 20


class FilterChain:
    """A token's filtered forms (0..n tokens). Thread-safe: the cache only grows by whole entries."""

    def __init__(self, filters: Sequence[Filter]) -> None:
        self._steps: list[Callable[[str], list[str]]] = []
        run: list[NativeFilter] = []
        for step in [*filters, None]:
            if isinstance(step, NativeFilter):
                run.append(step)
                continue
            if run:
                self._steps.append(_native_step(run))
                run = []
            if isinstance(step, KeepFilter):
                keep = step.keep
                self._steps.append(lambda token, keep=keep: [token] if keep(token) else [])
            elif isinstance(step, MapFilter):
                replace = step.map
                self._steps.append(lambda token, replace=replace: list(replace(token)))
        self._cache: dict[str, tuple[str, ...]] = {}

    @property
    def empty(self) -> bool:
        return not self._steps

    def apply(self, token: str) -> tuple[str, ...]:
        found = self._cache.get(token)
        if found is not None:
            return found
        tokens = [token]
        for step in self._steps:
            tokens = [out for t in tokens for out in step(t)]
        result = tuple(tokens)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = result
        return result


def _native_step(run: Sequence[NativeFilter]) -> Callable[[str], list[str]]:
    builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw())
    for native in run:
        builder = builder.filter(native.make())
    analyzer = builder.build()
    # The raw tokenizer turns "" into one empty token; tokenizers never emit "".
    return lambda token: [t for t in analyzer.analyze(token) if t]


def native_filters(filters: Sequence[Filter]) -> list[tantivy.Filter] | None:
    """The chain as tantivy filters, or None when a Python filter is among them."""
    if not all(isinstance(f, NativeFilter) for f in filters):
        return None
    return [f.make() for f in filters if isinstance(f, NativeFilter)]
