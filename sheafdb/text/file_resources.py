"""Analyzer params that name a Milvus 3.0 file resource instead of an inline word list.

``stop_words_file`` (stop), ``word_list_file`` (decompounder), ``synonyms_file`` (synonym) and
``extra_dict_file`` (jieba) take ``{"type": "remote", "resource_name": ..., "file_name": ...}``:
the resource is one registered with AddFileResource, ``file_name`` the file's own name (the
last part of its registered path). The file is read one entry a line (blank lines skipped).

The text layer cannot see the registry (it lives in the engine's catalog), so the server
installs a ``FileResolver`` once at start (``install``): one registry per process, as one
server runs per process. ``generation`` changes whenever the registry does, so analyzers
built from a file (cached by their params' text) are rebuilt after a resource is replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

# Filter type -> the param naming its file; the jieba tokenizer's is ``extra_dict_file``.
FILE_KEYS = {"stop": "stop_words_file", "synonym": "synonyms_file", "decompounder": "word_list_file"}
JIEBA_FILE_KEY = "extra_dict_file"


class FileResolver(Protocol):
    def generation(self) -> int: ...

    def read_lines(self, resource_name: str, file_name: str) -> list[str]:
        """The file's non-blank lines; raises ``LookupError`` (its message) when it cannot."""
        ...


class _NoResources:
    def generation(self) -> int:
        return 0

    def read_lines(self, resource_name: str, file_name: str) -> list[str]:
        raise LookupError(f"file resource {resource_name} not found")


_resolver: FileResolver = _NoResources()


def install(resolver: FileResolver) -> FileResolver:
    """Makes ``resolver`` the one analyzers use; returns the one it replaces."""
    global _resolver
    previous, _resolver = _resolver, resolver
    return previous


def generation() -> int:
    return _resolver.generation()


def file_lines(key: str, value: Any, fail: Callable[[str], Exception]) -> list[str]:
    """The lines of the file ``value`` (the param ``key``'s value) names, or Milvus-style 1100s."""
    if not isinstance(value, dict):
        raise fail(f"{key} should be a file resource object")
    kind = value.get("type")
    if kind != "remote":
        raise fail(f"unsupported file type: {kind} in {key}; SheafDB reads remote file resources")
    name, file_name = value.get("resource_name"), value.get("file_name")
    if not isinstance(name, str) or not name:
        raise fail(f"resource_name of {key} must be set as a string")
    if not isinstance(file_name, str) or not file_name:
        raise fail(f"file_name of {key} must be set as a string")
    try:
        return _resolver.read_lines(name, file_name)
    except LookupError as e:
        raise fail(str(e.args[0]) if e.args else str(e)) from None
