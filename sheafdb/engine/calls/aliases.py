"""Engine calls on aliases: create, drop (a missing one succeeds, as in Milvus), alter,
describe, list."""

from __future__ import annotations

from sheafdb.engine.calls.parts import EngineParts
from sheafdb.engine.models import AliasInfo
from sheafdb.engine.name_rules import check_alias, check_collection_name
from sheafdb.errors import AliasNotFound


class AliasCalls(EngineParts):
    def create_alias(self, db: str, collection: str, alias: str) -> None:
        check_alias(alias)
        check_collection_name(collection)
        with self._ddl_lock:
            coll = self._names.get(db, collection)
            self._catalog.create_alias(db, alias, coll.collection_id)
            self._names.set_alias(db, alias, coll)

    def drop_alias(self, db: str, alias: str) -> None:
        """Dropping an alias that does not exist succeeds (Milvus)."""
        check_alias(alias)
        with self._ddl_lock:
            try:
                self._catalog.drop_alias(db, alias)
            except AliasNotFound:
                return
            self._names.drop_alias(db, alias)

    def alter_alias(self, db: str, collection: str, alias: str) -> None:
        check_alias(alias)
        check_collection_name(collection)
        with self._ddl_lock:
            coll = self._names.get(db, collection)
            self._catalog.alter_alias(db, alias, coll.collection_id)
            self._names.set_alias(db, alias, coll)

    def describe_alias(self, db: str, alias: str) -> AliasInfo:
        check_alias(alias)
        coll = self._names.alias_target(db, alias)
        if coll is None:
            raise AliasNotFound(f"alias not found[database={db}][alias={alias}]")
        return AliasInfo(alias, db, coll.name)

    def list_aliases(self, db: str, collection: str = "") -> list[AliasInfo]:
        cid = self._resolve(db, collection).collection_id if collection else None
        names = {r.collection_id: r.name for r in self._catalog.list_collections(db)}
        return [
            AliasInfo(a.alias, a.db_name, names.get(a.collection_id, ""))
            for a in self._catalog.list_aliases(db, cid)
        ]
