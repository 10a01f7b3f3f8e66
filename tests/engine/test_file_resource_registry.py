"""The file-resource registry over a real catalog and real files: it survives a reopen, and an
analyzer reading a resource follows the file the name points to now."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sheafdb.engine.file_resources import FileResources
from sheafdb.errors import ParameterInvalid
from sheafdb.schema import DataType, FieldSchema
from sheafdb.storage.catalog import open_catalog
from sheafdb.storage.import_files import LocalImportFiles
from sheafdb.text import build_analyzer, file_resources

PARAMS = {
    "tokenizer": "standard",
    "filter": [
        {
            "type": "stop",
            "stop_words_file": {"type": "remote", "resource_name": "stops", "file_name": "s.txt"},
        }
    ],
}


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "s.txt").write_text("alpha\n")
    (tmp_path / "b" / "s.txt").write_text("beta\n")
    previous = file_resources.install(_NoRegistry())
    yield tmp_path
    file_resources.install(previous)


class _NoRegistry:
    def generation(self) -> int:
        return -1

    def read_lines(self, resource_name: str, file_name: str) -> list[str]:
        raise LookupError("no registry")


def registry(root: Path) -> FileResources:
    catalog = open_catalog(None, root / "meta")
    found = FileResources(catalog, LocalImportFiles(root), lambda: [])
    file_resources.install(found)
    return found


def test_registry_survives_reopen_and_analyzers_follow_replacements(root: Path) -> None:
    first = registry(root)
    first.add("stops", "a/s.txt")
    assert build_analyzer(PARAMS).tokens("alpha beta") == ["beta"]
    again = registry(root)
    assert [(r.name, r.path) for r in again.records()] == [("stops", "a/s.txt")]
    assert again.records()[0].resource_id > 0
    again.remove("stops")
    again.add("stops", "b/s.txt")
    assert build_analyzer(PARAMS).tokens("alpha beta") == ["alpha"]


def test_refusals(root: Path) -> None:
    found = registry(root)
    with pytest.raises(ParameterInvalid, match="not exist"):
        found.add("x", "a/none.txt")
    with pytest.raises(ParameterInvalid, match="not exist"):
        found.add("x", "../outside.txt")
    assert found.records() == []


def test_fields_naming_a_removed_resource_are_refused(root: Path) -> None:
    found = registry(root)
    found.add("stops", "a/s.txt")
    field = FieldSchema(
        "text", DataType.VARCHAR, type_params={"max_length": "9", "analyzer_params": json.dumps(PARAMS)}
    )
    found.require_named([field])
    found.remove("stops")
    with pytest.raises(ParameterInvalid, match="file resource stops not found"):
        found.require_named([field])
