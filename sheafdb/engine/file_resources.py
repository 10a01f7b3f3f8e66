"""Milvus 3.0's file resources: named files (word lists, dictionaries) analyzers read.

AddFileResource registers ``name -> path`` in the catalog after checking the file can be
read where the server reads import files (``storage/import_files.py``: inside the import root,
or a key of the ``--objects`` bucket); ListFileResources lists them; RemoveFileResource drops
one, unless a collection's analyzer still names it (Milvus keeps a reference count per
resource and refuses; here the engine's DDL lock orders a removal against collection
creation), and is a no-op for a name not registered (as Milvus's). Analyzers
reach the registry through ``text.file_resources`` (this object is installed as its resolver).

Lock: ``_lock`` guards the name -> record map and the generation (a counter bumped by every
change, so analyzers cached from a replaced file are rebuilt); reads of a file happen outside it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath
from typing import Any

from sheafdb.errors import ParameterInvalid
from sheafdb.schema import CollectionSchema, FieldSchema
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.file_resource_rows import FileResourceRecord
from sheafdb.storage.import_files import ImportFileError, ImportFiles
from sheafdb.text.analyzer import ANALYZER_PARAMS


class FileResources:
    def __init__(
        self,
        catalog: Catalog,
        files: ImportFiles,
        schemas: Callable[[], Iterable[tuple[str, CollectionSchema]]],
    ) -> None:
        # ``schemas``: (collection name, schema) of every collection, whose analyzers may name one.
        self._catalog = catalog
        self._files = files
        self._schemas = schemas
        self._lock = threading.Lock()
        self._by_name = {r.name: r for r in catalog.list_file_resources()}
        self._generation = 0

    def generation(self) -> int:
        with self._lock:
            return self._generation

    def add(self, name: str, path: str) -> None:
        if not name:
            raise ParameterInvalid("add file resource failed: name is empty")
        if not path:
            raise ParameterInvalid("add file resource failed: path is empty")
        self._read(path)  # the file must exist and be readable text now, as Milvus checks
        with self._lock:
            known = self._by_name.get(name)
            if known is not None:
                if known.path == path:
                    return  # the same registration again: nothing changes
                raise ParameterInvalid(
                    f"add file resource failed: file resource {name} already exists with path {known.path}"
                )
            record = FileResourceRecord(self._catalog.allocate_id(), name, path)
            self._catalog.add_file_resource(record)
            self._by_name[name] = record
            self._generation += 1

    def remove(self, name: str) -> None:
        with self._lock:
            if name not in self._by_name:
                return
            users = [coll for coll, schema in self._schemas() if name in _resources_named(schema.fields)]
            if users:
                raise ParameterInvalid(
                    f"remove file resource failed: file resource {name} is in use by collection {users[0]}"
                )
            self._catalog.drop_file_resource(name)
            del self._by_name[name]
            self._generation += 1

    def require_named(self, fields: Iterable[FieldSchema]) -> None:
        """Refuses fields naming a resource not registered now. Called under the engine's
        DDL lock, which ``Engine.remove_file_resource`` takes too: a collection can never be
        created on a resource removed after its analyzers were checked (Milvus's TOCTOU fix)."""
        with self._lock:
            missing = sorted(_resources_named(fields) - self._by_name.keys())
        if missing:
            raise ParameterInvalid(f"file resource {missing[0]} not found")

    def records(self) -> list[FileResourceRecord]:
        with self._lock:
            return sorted(self._by_name.values(), key=lambda r: r.resource_id)

    def read_lines(self, resource_name: str, file_name: str) -> list[str]:
        with self._lock:
            record = self._by_name.get(resource_name)
        if record is None:
            raise LookupError(f"file resource {resource_name} not found")
        if PurePosixPath(record.path).name != file_name:
            raise LookupError(f"file {file_name} not found in file resource {resource_name}")
        try:
            text = self._read(record.path)
        except ParameterInvalid as e:
            raise LookupError(e.message) from None
        return [line.strip() for line in text.splitlines() if line.strip()]

    def _read(self, path: str) -> str:
        try:
            with self._files.open(path) as handle:
                data = handle.read()
        except (ImportFileError, OSError):
            raise ParameterInvalid(f"add file resource failed: file path {path} not exist") from None
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ParameterInvalid(f"add file resource failed: file {path} is not UTF-8 text") from None


def _resources_named(fields: Iterable[FieldSchema]) -> set[str]:
    """The file resources the fields' analyzers name."""
    found: set[str] = set()
    for field in fields:
        raw = field.type_params.get(ANALYZER_PARAMS)
        if raw:
            try:
                _collect(json.loads(raw), found)
            except json.JSONDecodeError:
                continue
    return found


def _collect(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        if value.get("type") == "remote" and isinstance(value.get("resource_name"), str):
            found.add(value["resource_name"])
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)
