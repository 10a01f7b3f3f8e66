"""Tokenizers beyond tantivy's and jieba's: lindera, icu and language_identifier, as Milvus 2.6's.

- ``lindera``: Lindera's morphological analysis in normal mode with a dictionary Milvus names by
  ``dict_kind``; the ``lindera-python-cjk`` wheel embeds IPADIC, ko-dic and CC-CEDICT (UniDic
  and IPADIC-NEologd are not in it: Milvus's answer for a dictionary not built in).
- ``icu``: ICU's word break iterator (UAX #29 plus ICU's dictionaries for Chinese, Japanese,
  Thai, ...). As Milvus's, every segment between two breaks is a token, spaces and punctuation
  included; a token's position is the number of characters before it.
- ``language_identifier``: detects the text's language (whatlang, Milvus's default, or lingua)
  and runs the sub-analyzer that ``mapping`` (or the language's own name) picks, else
  ``default``. Languages are named as Milvus names them: whatlang's English names
  ("English", "Mandarin", ...) and lingua's ("English", "Chinese", ...).

Split tokens are ``(text, start, end, position, position_length)`` with character offsets.
Each library is imported when an analyzer first needs it (ICU's alone takes ~0.2 s), so a
server that never builds one starts without them.
Lindera's and whatlang's objects may be used from any thread; an ICU break iterator is
stateful, so each split makes its own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Protocol

SplitToken = tuple[str, int, int, int, int]


class Tokenizer:
    """Splits text into tokens before any filter runs."""

    def split(self, text: str) -> list[SplitToken]:
        raise NotImplementedError

    def words(self, text: str) -> list[str]:
        return [token[0] for token in self.split(text)]


# Dictionaries Milvus's lindera tokenizer knows, and those the installed wheel embeds.
LINDERA_KINDS = frozenset({"ipadic", "ipadic-neologd", "unidic", "ko-dic", "cc-cedict"})
LINDERA_EMBEDDED = frozenset({"ipadic", "ko-dic", "cc-cedict"})


@functools.cache
def _lindera(kind: str) -> Any:
    import lindera

    return lindera.Tokenizer(lindera.load_dictionary(f"embedded://{kind}"), mode="normal")


class LinderaTokenizer(Tokenizer):
    def __init__(self, kind: str) -> None:
        self._tokenizer = _lindera(kind)

    def split(self, text: str) -> list[SplitToken]:
        chars = _char_offsets(text, text.encode())
        return [
            (token.surface, chars(token.byte_start), chars(token.byte_end), token.position, 1)
            for token in self._tokenizer.tokenize(text)
        ]


class IcuTokenizer(Tokenizer):
    def __init__(self) -> None:
        import icu

        self._icu = icu

    def split(self, text: str) -> list[SplitToken]:
        icu = self._icu
        breaks = icu.BreakIterator.createWordInstance(icu.Locale.getRoot())
        breaks.setText(text)
        chars = _char_offsets(text, text.encode("utf-16-le"), unit=2)
        found: list[SplitToken] = []
        start = position = 0
        for boundary in breaks:
            end = chars(boundary * 2)
            if end == start:
                continue
            piece = text[start:end]
            found.append((piece, start, end, position, len(piece)))
            position += len(piece)
            start = end
        return found


def _char_offsets(text: str, data: bytes, unit: int = 1) -> Callable[[int], int]:
    """Byte offset in ``data`` (``text`` encoded) -> character offset in ``text``."""
    if len(data) == len(text) * unit:
        return lambda offset: offset // unit
    starts: list[int] = []
    for index, char in enumerate(text):
        starts.extend([index] * len(char.encode("utf-8" if unit == 1 else "utf-16-le")))
    starts.append(len(text))
    return lambda offset: starts[offset] if offset < len(starts) else len(text)


class Analyzing(Protocol):
    """What a sub-analyzer of language_identifier offers (an ``Analyzer``)."""

    def analyze_split(self, text: str) -> list[SplitToken]: ...


class Identifier(Protocol):
    def language(self, text: str) -> str: ...


class WhatlangIdentifier:
    def __init__(self, confidence: float) -> None:
        import whatlang

        self._detect = whatlang.detect
        self._confidence = confidence

    def language(self, text: str) -> str:
        try:
            info = self._detect(text)
        except ValueError:  # nothing to detect from (empty text, digits, ...)
            return "default"
        if info.confidence <= self._confidence:
            return "default"
        return WHATLANG_NAMES.get(info.lang, "default")


class LinguaIdentifier:
    def language(self, text: str) -> str:
        found = _lingua().detect_language_of(text)
        return "default" if found is None else str(found.name).capitalize()


@functools.cache
def _lingua() -> Any:
    import lingua  # its models load on first use: only analyzers that name it pay for them

    return lingua.LanguageDetectorBuilder.from_all_languages().build()


class LanguageIdentifierTokenizer(Tokenizer):
    def __init__(
        self, identifier: Identifier, analyzers: Mapping[str, Analyzing], mapping: Mapping[str, str]
    ) -> None:
        self._identifier = identifier
        self._analyzers = dict(analyzers)
        self._mapping = dict(mapping)

    def split(self, text: str) -> list[SplitToken]:
        language = self._identifier.language(text)
        name = self._mapping.get(language, language)
        chosen = self._analyzers.get(name) or self._analyzers["default"]
        return chosen.analyze_split(text)


# whatlang's ISO 639-3 codes -> its English names (``Lang::eng_name``), which Milvus matches.
WHATLANG_NAMES: dict[str, str] = dict(
    [
        ("epo", "Esperanto"), ("eng", "English"), ("rus", "Russian"), ("cmn", "Mandarin"),
        ("spa", "Spanish"), ("por", "Portuguese"), ("ita", "Italian"), ("ben", "Bengali"),
        ("fra", "French"), ("deu", "German"), ("ukr", "Ukrainian"), ("kat", "Georgian"),
        ("ara", "Arabic"), ("hin", "Hindi"), ("jpn", "Japanese"), ("heb", "Hebrew"),
        ("yid", "Yiddish"), ("pol", "Polish"), ("amh", "Amharic"), ("jav", "Javanese"),
        ("kor", "Korean"), ("nob", "Bokmal"), ("nno", "Nynorsk"), ("dan", "Danish"),
        ("swe", "Swedish"), ("fin", "Finnish"), ("tur", "Turkish"), ("nld", "Dutch"),
        ("hun", "Hungarian"), ("ces", "Czech"), ("ell", "Greek"), ("bul", "Bulgarian"),
        ("bel", "Belarusian"), ("mar", "Marathi"), ("kan", "Kannada"), ("ron", "Romanian"),
        ("slv", "Slovene"), ("hrv", "Croatian"), ("srp", "Serbian"), ("mkd", "Macedonian"),
        ("lit", "Lithuanian"), ("lav", "Latvian"), ("est", "Estonian"), ("tam", "Tamil"),
        ("vie", "Vietnamese"), ("urd", "Urdu"), ("tha", "Thai"), ("guj", "Gujarati"),
        ("uzb", "Uzbek"), ("pan", "Punjabi"), ("aze", "Azerbaijani"), ("ind", "Indonesian"),
        ("tel", "Telugu"), ("pes", "Persian"), ("mal", "Malayalam"), ("ori", "Oriya"),
        ("mya", "Burmese"), ("tgl", "Tagalog"), ("yor", "Yoruba"), ("ceb", "Cebuano"),
        ("mlg", "Malagasy"), ("nep", "Nepali"), ("sin", "Sinhalese"), ("khm", "Khmer"),
        ("tuk", "Turkmen"), ("som", "Somali"), ("aka", "Akan"), ("zul", "Zulu"),
        ("kin", "Kinyarwanda"), ("hat", "Haitian Creole"), ("ilo", "Ilocano"), ("sna", "Shona"),
        ("uig", "Uyghur"), ("afr", "Afrikaans"), ("lat", "Latin"), ("slk", "Slovak"),
        ("cat", "Catalan"), ("hye", "Armenian"),
    ]
)  # fmt: skip
