"""Changes to an existing collection's properties and fields (Milvus's AlterCollection,
DropCollectionProperties, AlterCollectionField, AddCollectionField).

Each change is written to the catalog first and then installed on the live ``Collection``
(``set_record`` / ``add_field``), so a crash leaves the catalog as the truth. No lock of its
own: the engine facade holds its ``_ddl_lock`` around every call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from sheafdb.engine.collection import Collection
from sheafdb.engine.ddl_rules import check_added_field
from sheafdb.engine.load.load_plan import changes_online
from sheafdb.engine.load.residency import residency_policy
from sheafdb.engine.read.expiry import check_ttl_properties
from sheafdb.errors import CollectionAlreadyLoaded, FieldNotFound
from sheafdb.schema import FieldSchema
from sheafdb.storage.catalog import Catalog

# Properties that change how a collection is loaded: Milvus refuses them while it is loaded.
LOADED_ONLY_PROPERTIES = ("mmap.enabled", "warmup")


class CollectionAlterations:
    def __init__(
        self, catalog: Catalog, is_loaded: Callable[[Collection], bool], clock: Callable[[], int]
    ) -> None:
        """``clock``: the timestamp oracle, stamping each change (describe's update_timestamp)."""
        self._catalog = catalog
        self._is_loaded = is_loaded
        self._clock = clock

    def alter_properties(self, coll: Collection, properties: Mapping[str, str]) -> None:
        self._refuse_if_loaded_property(coll, properties)
        merged = {**coll.record.properties, **{k: str(v) for k, v in properties.items()}}
        residency_policy(merged)  # a wrong sheafdb.* policy value: 1100 naming it
        check_ttl_properties(coll.schema, merged)
        coll.set_record(self._catalog.update_collection(coll.collection_id, properties=merged))
        coll.updated_ts = self._clock()

    def drop_properties(self, coll: Collection, keys: Sequence[str]) -> None:
        self._refuse_if_loaded_property(coll, dict.fromkeys(keys, ""))
        kept = {k: v for k, v in coll.record.properties.items() if k not in set(keys)}
        coll.set_record(self._catalog.update_collection(coll.collection_id, properties=kept))
        coll.updated_ts = self._clock()

    def alter_field(self, coll: Collection, field_name: str, params: Mapping[str, str]) -> None:
        """``max_length`` changes the field's limit; every other key is a type param."""
        field = coll.schema.field(field_name)
        if field is None:
            raise FieldNotFound(f"field not found[field={field_name}]")
        self._refuse_if_loaded_property(coll, params)
        changed = dict(field.type_params)
        max_length = field.max_length
        for key, value in params.items():
            if key == "max_length":
                max_length = int(value)
            else:
                changed[key] = str(value)
        new_field = replace(field, type_params=changed, max_length=max_length)
        schema = replace(
            coll.schema,
            fields=tuple(new_field if f.name == field_name else f for f in coll.schema.fields),
        )
        coll.set_record(self._catalog.update_collection(coll.collection_id, schema=schema))
        coll.updated_ts = self._clock()

    def add_field(self, coll: Collection, field: FieldSchema) -> None:
        new_field = check_added_field(coll.schema, field)
        record = self._catalog.update_collection(coll.collection_id, schema=coll.schema.with_field(new_field))
        coll.add_field(record, new_field)
        coll.updated_ts = self._clock()

    def _refuse_if_loaded_property(self, coll: Collection, properties: Mapping[str, str]) -> None:
        if changes_online(coll.record.properties):
            return  # the next load_collection applies it while the collection serves
        for key in properties:
            if key.startswith(LOADED_ONLY_PROPERTIES) and self._is_loaded(coll):
                what = "mmap" if key.startswith("mmap") else "warmup"
                raise CollectionAlreadyLoaded(
                    f"collection already loaded[collection={coll.name}]: can not alter {what} properties if "
                    "collection loaded"
                )
