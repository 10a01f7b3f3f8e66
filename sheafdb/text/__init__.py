"""Text: Milvus's analyzers, the BM25 term vectors they feed, and the per-segment match index.

At the index / expr level: imports only ``schema`` and ``errors`` from the package.
"""

from sheafdb.text.analyzer import Analyzer, Token, analyzer_for_field, build_analyzer

__all__ = ["Analyzer", "Token", "analyzer_for_field", "build_analyzer"]
