"""Which collection a (database, name or alias) means, answered from memory.

Every read and write starts by resolving the collection it names; asking the catalog costs a
SQLite query and a re-parse of the schema JSON per request. The catalog stays the durable
truth; ``CollectionNames`` mirrors its names: it is built from the catalog when the engine
opens and changed only together with it, under the engine's ``_ddl_lock``, by every DDL path
(database create/drop, collection create/drop/rename, alias create/alter/drop). Schema and
property changes need nothing here: the map holds the ``Collection`` runtimes themselves.

Locks: none of its own. Writers are serialised by the engine's ``_ddl_lock``; each change
builds a new immutable ``_View`` and swaps the one reference, so a lock-free reader sees the
whole view before or the whole view after a change, never half of one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sheafdb.engine.collection import Collection
from sheafdb.engine.name_rules import check_collection_name, check_partition_name
from sheafdb.errors import CollectionNotFound, DatabaseNotFound, UnexpectedError
from sheafdb.storage.catalog import Catalog

_Key = tuple[str, str]  # (database, collection name or alias)


@dataclass(frozen=True)
class _View:
    """Never changed once built (its dicts included): a change builds the next one."""

    databases: frozenset[str]
    by_name: Mapping[_Key, Collection]
    by_alias: Mapping[_Key, Collection]


class CollectionNames:
    def __init__(
        self,
        databases: Iterable[str],
        collections: Iterable[Collection],
        aliases: Iterable[tuple[str, str, Collection]],
    ) -> None:
        """``aliases``: (database, alias, the collection it points to), as the catalog has them."""
        self._view = _View(
            frozenset(databases),
            {(c.db_name, c.name): c for c in collections},
            {(db, alias): coll for db, alias, coll in aliases},
        )

    @classmethod
    def from_catalog(cls, catalog: Catalog, collections: Mapping[int, Collection]) -> CollectionNames:
        """The names as the catalog has them; ``collections``: the runtimes by id (a runtime
        the catalog no longer lists is left out)."""
        databases = [d.name for d in catalog.list_databases()]
        listed = [collections[r.collection_id] for r in catalog.list_collections()]
        aliases = [
            (a.db_name, a.alias, collections[a.collection_id])
            for db in databases
            for a in catalog.list_aliases(db)
        ]
        return cls(databases, listed, aliases)

    # -- reads (lock-free) ------------------------------------------------------------------
    def resolve(self, db: str, name_or_alias: str) -> Collection:
        """The collection ``name_or_alias`` names (an alias wins, as in the catalog)."""
        view = self._view
        key = (db, name_or_alias)
        coll = view.by_alias.get(key)
        if coll is None:
            coll = view.by_name.get(key)
        if coll is None:
            raise self._missing(view, db, name_or_alias)
        return coll

    def resolve_checked(
        self, db: str, name: str, partitions: Sequence[str] = (), *, reading: bool = False
    ) -> Collection:
        """``resolve`` after Milvus's name checks (name_rules.py): the collection name, then
        each partition name, before any lookup. Reads check partition names loosely
        (emptiness, length) and then that each exists, with the proxy's plain error."""
        check_collection_name(name)
        for partition in partitions:
            check_partition_name(partition, strict=not reading)
        coll = self.resolve(db, name)
        if reading and partitions:
            known = coll.partitions
            for partition in partitions:
                if partition not in known:
                    raise UnexpectedError(f"partition name {partition} not found")
        return coll

    def get(self, db: str, name: str) -> Collection:
        """The collection with exactly this name (never through an alias)."""
        view = self._view
        coll = view.by_name.get((db, name))
        if coll is None:
            raise self._missing(view, db, name)
        return coll

    def alias_target(self, db: str, alias: str) -> Collection | None:
        return self._view.by_alias.get((db, alias))

    def aliases_of(self, coll: Collection) -> tuple[str, ...]:
        """The aliases pointing at ``coll``, sorted (the catalog's order)."""
        return tuple(sorted(alias for (_, alias), target in self._view.by_alias.items() if target is coll))

    @staticmethod
    def _missing(view: _View, db: str, name: str) -> Exception:
        if db not in view.databases:
            return DatabaseNotFound(f"database not found[database={db}]")
        return CollectionNotFound.named(db, name)

    # -- changes (the caller holds the engine's _ddl_lock and has changed the catalog) -------
    def add_database(self, name: str) -> None:
        view = self._view
        self._view = _View(view.databases | {name}, view.by_name, view.by_alias)

    def drop_database(self, name: str) -> None:
        """The catalog refuses to drop a database holding collections; its aliases go with it."""
        view = self._view
        aliases = {key: c for key, c in view.by_alias.items() if key[0] != name}
        self._view = _View(view.databases - {name}, view.by_name, aliases)

    def add_collection(self, coll: Collection) -> None:
        view = self._view
        by_name = {**view.by_name, (coll.db_name, coll.name): coll}
        self._view = _View(view.databases, by_name, view.by_alias)

    def drop_collection(self, coll: Collection) -> None:
        """The collection leaves with every alias pointing at it (the catalog cascades)."""
        view = self._view
        by_name = {key: c for key, c in view.by_name.items() if c is not coll}
        by_alias = {key: c for key, c in view.by_alias.items() if c is not coll}
        self._view = _View(view.databases, by_name, by_alias)

    def rename_collection(self, coll: Collection) -> None:
        """``coll`` already carries its new database and name; its aliases stay where they are
        and keep pointing at it (as the catalog's alias rows keep its id)."""
        view = self._view
        by_name = {key: c for key, c in view.by_name.items() if c is not coll}
        by_name[(coll.db_name, coll.name)] = coll
        self._view = _View(view.databases, by_name, view.by_alias)

    def set_alias(self, db: str, alias: str, coll: Collection) -> None:
        """Create or re-point ``alias``."""
        view = self._view
        by_alias = {**view.by_alias, (db, alias): coll}
        self._view = _View(view.databases, view.by_name, by_alias)

    def drop_alias(self, db: str, alias: str) -> None:
        view = self._view
        by_alias = {key: c for key, c in view.by_alias.items() if key != (db, alias)}
        self._view = _View(view.databases, view.by_name, by_alias)
