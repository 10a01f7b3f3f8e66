"""The catalog rows of resource groups and of where each collection's replica lives.

A mixin of ``SqlCatalog`` (it uses the catalog's one connection and its transactions, in the
SQL SQLite and PostgreSQL share), kept apart because resource groups are a concept of their
own. Configs are stored as the JSON the engine gives (``config``), nodes as a JSON list; a
collection's replica placement row goes with the collection (ON DELETE CASCADE).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

RESOURCE_GROUP_TABLES = """
CREATE TABLE IF NOT EXISTS resource_groups (
    name TEXT PRIMARY KEY, config TEXT NOT NULL, nodes TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS replica_groups (
    collection_id INTEGER PRIMARY KEY REFERENCES collections ON DELETE CASCADE,
    replica_id INTEGER NOT NULL, resource_group TEXT NOT NULL);
"""


@dataclass(frozen=True)
class ResourceGroupRecord:
    name: str
    config: Mapping[str, Any]
    nodes: tuple[int, ...]


class _Transactions(Protocol):
    # The catalog's cursors (SqlCatalog's SqlCursor: ``?`` placeholders, either driver).
    def _tx(self) -> AbstractContextManager[Any]: ...
    def _read(self) -> AbstractContextManager[Any]: ...


class ResourceGroupRows:
    def save_resource_groups(self: _Transactions, records: Sequence[ResourceGroupRecord]) -> None:
        """Insert or replace every record in one transaction."""
        with self._tx() as cur:
            for r in records:
                cur.execute(
                    "INSERT INTO resource_groups VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                    "config = excluded.config, nodes = excluded.nodes",
                    (r.name, json.dumps(dict(r.config), sort_keys=True), json.dumps(list(r.nodes))),
                )

    def drop_resource_group(self: _Transactions, name: str) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM resource_groups WHERE name = ?", (name,))

    def list_resource_groups(self: _Transactions) -> list[ResourceGroupRecord]:
        with self._read() as cur:
            rows = cur.execute("SELECT name, config, nodes FROM resource_groups ORDER BY name")
            return [ResourceGroupRecord(r[0], json.loads(r[1]), tuple(json.loads(r[2]))) for r in rows]

    def set_replica_group(
        self: _Transactions, collection_id: int, replica_id: int, resource_group: str
    ) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO replica_groups VALUES (?, ?, ?) ON CONFLICT (collection_id) DO UPDATE SET "
                "replica_id = excluded.replica_id, resource_group = excluded.resource_group",
                (collection_id, replica_id, resource_group),
            )

    def list_replica_groups(self: _Transactions) -> dict[int, tuple[int, str]]:
        """collection id -> (replica id, resource group)."""
        with self._read() as cur:
            rows = cur.execute("SELECT collection_id, replica_id, resource_group FROM replica_groups")
            return {r[0]: (r[1], r[2]) for r in rows}
