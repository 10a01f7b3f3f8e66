"""The catalog rows of file resources (Milvus 3.0's AddFileResource registry): name -> path, id.

A mixin of ``SqlCatalog`` (its one connection and transactions), kept apart as a concept of
its own. Names are unique; the id comes from the catalog's counter when a resource is added.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

FILE_RESOURCE_TABLES = """
CREATE TABLE IF NOT EXISTS file_resources (
    name TEXT PRIMARY KEY, resource_id INTEGER NOT NULL, path TEXT NOT NULL);
"""


@dataclass(frozen=True)
class FileResourceRecord:
    resource_id: int
    name: str
    path: str


class _Transactions(Protocol):
    def _tx(self) -> AbstractContextManager[Any]: ...
    def _read(self) -> AbstractContextManager[Any]: ...


class FileResourceRows:
    def add_file_resource(self: _Transactions, record: FileResourceRecord) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO file_resources VALUES (?, ?, ?)", (record.name, record.resource_id, record.path)
            )

    def drop_file_resource(self: _Transactions, name: str) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM file_resources WHERE name = ?", (name,))

    def list_file_resources(self: _Transactions) -> list[FileResourceRecord]:
        with self._read() as cur:
            rows = cur.execute("SELECT resource_id, name, path FROM file_resources ORDER BY resource_id")
            return [FileResourceRecord(r[0], r[1], r[2]) for r in rows]
