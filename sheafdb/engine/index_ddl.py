"""Index definitions: Milvus's rules for create / describe / drop / alter of an index.

``IndexDefinitions`` carries the four operations for the engine facade. It has no lock of its
own: the facade holds its ``_ddl_lock`` around create, drop and alter (metadata changes);
describe reads the collection's current snapshot and takes none.

Vector indexes are validated by ``sheafdb.index.parse_index_params``, scalar and JSON path
indexes by scalar_index_rules.py; both are built per sealed segment in the background
(index_builds.py). A scalar index that builds nothing (scalar_structure is None: filters on
it scan) reports Finished at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sheafdb.engine.collection import Collection
from sheafdb.engine.models import IndexInfo, IndexState
from sheafdb.engine.scalar_index_rules import check_scalar_index, scalar_structure
from sheafdb.engine.struct_index import struct_index_params, struct_sub_of
from sheafdb.engine.text_rules import with_bm25_metric
from sheafdb.engine.write.data_removal import DataRemoval
from sheafdb.engine.write.index_builds import IndexBuilder
from sheafdb.engine.write.scalar_index_builds import builds_files, has_file
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


def _normalized_params(field: FieldSchema, params: Mapping[str, str]) -> dict[str, str]:
    """Validate ``params`` for ``field``; returns the params as Milvus describes them."""
    if field.is_vector:
        return describe_index_params(parse_index_params(field, params))
    return check_scalar_index(field, params)


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
    built = builds_files(field, index)
    indexed = sum(
        s.num_rows for s in snapshot.sealed if not built or (field is not None and has_file(s, field, index))
    )
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
        """Record the index; True when it is a new index whose segment builds must start (the
        facade starts them once its DDL lock is released)."""
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
        if struct_sub is not None:
            return False  # embedding-list indexes build nothing per segment (struct_index.py)
        return field.is_vector or scalar_structure(field, normalized) is not None

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
            coll.forget_index(index.field_name, index.index_name)
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
