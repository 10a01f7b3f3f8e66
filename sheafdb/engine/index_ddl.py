"""Index definitions: Milvus's rules for create / describe / drop / alter of an index.

``IndexDefinitions`` carries the four operations for the engine facade. It has no lock of its
own: the facade holds its ``_ddl_lock`` around create, drop and alter (metadata changes);
describe reads the collection's current snapshot and takes none.

Vector indexes are validated by ``sheafdb.index.parse_index_params`` and built per sealed
segment in the background (index_builds.py). Scalar indexes (INVERTED, STL_SORT, ...) are
accepted and recorded so that Milvus code creating them runs unchanged; filters scan the
loaded columns, so there is nothing to build and they report Finished at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sheafdb.engine.collection import Collection
from sheafdb.engine.models import IndexInfo, IndexState
from sheafdb.engine.struct_index import struct_index_params, struct_sub_of
from sheafdb.engine.text_rules import with_bm25_metric
from sheafdb.engine.write.data_removal import DataRemoval
from sheafdb.engine.write.index_builds import IndexBuilder
from sheafdb.errors import (
    CollectionAlreadyLoaded,
    FieldNotFound,
    IndexNotFound,
    UnexpectedError,
    invalid,
)
from sheafdb.index import describe_index_params, parse_index_params
from sheafdb.schema import DataType, FieldSchema
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.records import IndexRecord
from sheafdb.storage.timestamps import TimestampOracle

SCALAR_INDEX_TYPES = frozenset({"INVERTED", "STL_SORT", "TRIE", "BITMAP", "AUTOINDEX", "NGRAM", "HYBRID"})


# JSON path indexes (Milvus 2.6): INVERTED or AUTOINDEX over one path, read as one cast type.
JSON_INDEX_TYPES = frozenset({"INVERTED", "AUTOINDEX"})
JSON_CAST_TYPES = frozenset(
    {"BOOL", "DOUBLE", "VARCHAR", "ARRAY_BOOL", "ARRAY_DOUBLE", "ARRAY_VARCHAR", "JSON"}
)


def _normalized_params(field: FieldSchema, params: Mapping[str, str]) -> dict[str, str]:
    """Validate ``params`` for ``field``; returns the params as Milvus describes them."""
    if field.is_vector:
        return describe_index_params(parse_index_params(field, params))
    index_type = str(params.get("index_type", "") or "AUTOINDEX").upper()
    if index_type not in SCALAR_INDEX_TYPES:
        raise invalid(f"invalid index type: {index_type} for scalar field {field.name}")
    if field.dtype is DataType.JSON and "json_cast_type" in params:
        if index_type not in JSON_INDEX_TYPES:
            raise invalid(f"index type {index_type} is not supported for json field {field.name}")
        cast = str(params["json_cast_type"]).upper()
        if cast not in JSON_CAST_TYPES:
            raise invalid(f"json_cast_type {params['json_cast_type']} is not supported")
        path = str(params.get("json_path", "") or field.name)
        if not (path == field.name or path.startswith(f"{field.name}[")):
            raise invalid(f"json_path {path} does not belong to json field {field.name}")
        return {**{k: str(v) for k, v in params.items()}, "index_type": index_type, "json_path": path}
    return {**{k: str(v) for k, v in params.items()}, "index_type": index_type}


def _find_conflict(
    existing: tuple[IndexRecord, ...], field_name: str, index_name: str, params: Mapping[str, str]
) -> IndexRecord | None:
    """The identical index if there is one (idempotent create); raise if the new one clashes."""
    for index in existing:
        same_field = index.field_name == field_name
        same_name = index.index_name == index_name
        if same_field and same_name and dict(index.params) == dict(params):
            return index
        # A JSON field takes one path index per name: the same path may be indexed twice.
        json_paths = "json_path" in params and "json_path" in index.params
        if same_field and not same_name and json_paths:
            continue
        if same_field:
            raise invalid("CreateIndex failed: at most one distinct index is allowed per field")
        if same_name:
            raise invalid(
                f"CreateIndex failed: index already exist, but parameters are inconsistent: {index_name}"
            )
    return None


def _matching(indexes: tuple[IndexRecord, ...], index_name: str, field_name: str) -> list[IndexRecord]:
    return [
        i
        for i in indexes
        if (not index_name or i.index_name == index_name) and (not field_name or i.field_name == field_name)
    ]


def _progress(coll: Collection, index: IndexRecord, builder: IndexBuilder) -> IndexInfo:
    """Progress of one index: Finished once every sealed segment has it (growing rows don't count)."""
    snapshot = coll.snapshot()
    field = coll.schema.field(index.field_name)
    growing = sum(t.num_rows for t in snapshot.growing.values())
    sealed_rows = sum(s.num_rows for s in snapshot.sealed)
    is_vector = field is not None and field.is_vector
    indexed = sum(s.num_rows for s in snapshot.sealed if not is_vector or index.field_name in s.index_files)
    pending = sealed_rows - indexed
    failure = builder.failure(index.index_id)
    if failure is not None and pending:
        state = IndexState.FAILED
    else:
        state = IndexState.FINISHED if pending == 0 else IndexState.IN_PROGRESS
    return IndexInfo(
        index_name=index.index_name,
        field_name=index.field_name,
        index_id=index.index_id,
        params=dict(index.params),
        state=state,
        total_rows=sealed_rows + growing,
        indexed_rows=indexed,
        pending_index_rows=pending,
        fail_reason=(failure or "") if state is IndexState.FAILED else "",
    )


class IndexDefinitions:
    def __init__(
        self,
        catalog: Catalog,
        oracle: TimestampOracle,
        builder: IndexBuilder,
        removal: DataRemoval,
        is_loaded: Callable[[Collection], bool],
    ) -> None:
        self._catalog = catalog
        self._oracle = oracle
        self._builder = builder
        self._removal = removal
        self._is_loaded = is_loaded

    def create(self, coll: Collection, field_name: str, index_name: str, params: Mapping[str, str]) -> bool:
        """Record the index; True when it is a new vector index whose segment builds must start
        (the facade starts them once its DDL lock is released)."""
        field = coll.schema.field(field_name)
        struct_sub = struct_sub_of(coll.schema, field_name)
        if field is None and struct_sub is None:
            raise FieldNotFound(f"cannot create index on non-exist field: {field_name}")
        name = index_name or field_name
        if struct_sub is not None:
            normalized = struct_index_params(*struct_sub, params)
            field = struct_sub[1]
        else:
            assert field is not None
            if field.dtype is DataType.ARRAY_OF_STRUCT:
                raise invalid(
                    f"create index on struct array field {field_name} is not supported, index a sub-field"
                )
            normalized = _normalized_params(field, with_bm25_metric(coll.schema, field, params))
        if _find_conflict(coll.indexes, field_name, name, normalized) is not None:
            return False
        self._catalog.create_index(coll.collection_id, field_name, name, normalized, self._oracle.next())
        coll.set_indexes(tuple(self._catalog.list_indexes(coll.collection_id)))
        # Embedding-list indexes build nothing per segment (struct_index.py).
        return field.is_vector and struct_sub is None

    def describe(self, coll: Collection, index_name: str, field_name: str) -> list[IndexInfo]:
        found = _matching(coll.indexes, index_name, field_name)
        if not found:
            raise IndexNotFound(f"index not found[collection={coll.name}]")
        return [_progress(coll, i, self._builder) for i in found]

    def drop(self, coll: Collection, index_name: str, field_name: str) -> None:
        found = _matching(coll.indexes, index_name, field_name)
        if not found:
            return
        if self._is_loaded(coll):
            raise UnexpectedError("index cannot be dropped, collection is loaded, please release it first")
        for index in found:
            dropped = self._catalog.drop_index(index.index_id)
            coll.forget_index(index.field_name)
            self._removal.discard(dropped)
        coll.set_indexes(tuple(self._catalog.list_indexes(coll.collection_id)))

    def alter(
        self, coll: Collection, index_name: str, params: Mapping[str, str], delete_keys: Sequence[str]
    ) -> None:
        found = _matching(coll.indexes, index_name, "")
        if not found:
            raise IndexNotFound(f"index not found[indexName={index_name}]")
        if self._is_loaded(coll):
            raise CollectionAlreadyLoaded(
                f"collection already loaded[collection={coll.name}]: "
                "can't alter index on loaded collection, please release the collection first"
            )
        merged = {**found[0].params, **{k: str(v) for k, v in params.items()}}
        for key in delete_keys:
            merged.pop(key, None)
        self._catalog.update_index_params(found[0].index_id, merged)
        coll.set_indexes(tuple(self._catalog.list_indexes(coll.collection_id)))
