"""RunAnalyzer (texts -> tokens, with given analyzer params or a collection field's analyzer) and
ComputePhraseMatchSlop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sheafdb.errors import FieldNotFound, invalid
from sheafdb.schema import CollectionSchema
from sheafdb.text.analyzer import Token, analyzer_enabled, analyzer_for_field, build_analyzer
from sheafdb.text.bm25 import term_id
from sheafdb.text.phrase_slop import minimum_slop


@dataclass(frozen=True)
class AnalyzedToken:
    token: Token
    hash: int  # the term's BM25 dimension


def run_analyzer(
    texts: Sequence[str], params: str, schema: CollectionSchema | None, field_name: str
) -> list[list[AnalyzedToken]]:
    if schema is not None:
        if params.strip():
            raise invalid("run analyzer can't use analyzer params and (collection,field) in same time")
        field = schema.field(field_name)
        if field is None:
            raise FieldNotFound(f"field not found[field={field_name}]")
        if not analyzer_enabled(field):
            raise invalid(f"field {field_name} does not enable analyzer")
        analyzer = analyzer_for_field(field)
    else:
        analyzer = build_analyzer(params)
    return [[AnalyzedToken(t, term_id(t.text)) for t in analyzer.analyze(text)] for text in texts]


@dataclass(frozen=True)
class PhraseSlop:
    is_match: bool
    slop: int  # -1 when the text lacks a query term


def phrase_match_slops(params: str, query: str, texts: Sequence[str]) -> list[PhraseSlop]:
    """Milvus's ComputePhraseMatchSlop: per text, the smallest slop PHRASE_MATCH needs.

    An empty query or no texts answer nothing (as Milvus); bad params are Milvus's analyzer
    error, where Milvus would mark every text unmatched.
    """
    if not query or not texts:
        return []
    analyzer = build_analyzer(params)
    found = [minimum_slop(analyzer, query, text) for text in texts]
    return [PhraseSlop(False, -1) if slop is None else PhraseSlop(True, slop) for slop in found]
