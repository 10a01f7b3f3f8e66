"""Engine calls on databases: create, drop, list, describe, alter (properties)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sheafdb.engine.calls.parts import EngineParts
from sheafdb.engine.models import DatabaseInfo
from sheafdb.engine.name_rules import check_database_name


class DatabaseCalls(EngineParts):
    def create_database(self, name: str, properties: Mapping[str, str] | None = None) -> None:
        check_database_name(name)
        with self._ddl_lock:
            self._catalog.create_database(name, dict(properties or {}), self._oracle.next())
            self._names.add_database(name)

    def drop_database(self, name: str) -> None:
        check_database_name(name)
        with self._ddl_lock:
            self._catalog.drop_database(name)
            self._names.drop_database(name)

    def list_databases(self) -> list[DatabaseInfo]:
        return [
            DatabaseInfo(d.name, d.database_id, d.created_ts, dict(d.properties))
            for d in self._catalog.list_databases()
        ]

    def describe_database(self, name: str) -> DatabaseInfo:
        check_database_name(name)
        d = self._catalog.get_database(name)
        return DatabaseInfo(d.name, d.database_id, d.created_ts, dict(d.properties))

    def alter_database(
        self, name: str, properties: Mapping[str, str], delete_keys: Sequence[str] = ()
    ) -> None:
        check_database_name(name)
        with self._ddl_lock:
            current = dict(self._catalog.get_database(name).properties)
            current.update(properties)
            for key in delete_keys:
                current.pop(key, None)
            self._catalog.set_database_properties(name, current)
