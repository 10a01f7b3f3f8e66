"""Index definitions: Milvus's rules for create / describe / drop / alter of an index.

Vector indexes are validated by ``sheafdb.index.parse_index_params`` and built per sealed
segment in the background (index_builds.py). Scalar indexes (INVERTED, STL_SORT, ...) are
accepted and recorded so that Milvus code creating them runs unchanged; filters scan the
loaded columns, so there is nothing to build and they report Finished at once.
"""

from __future__ import annotations

from collections.abc import Mapping

from sheafdb.engine.collection import Collection
from sheafdb.engine.index_builds import IndexBuilder
from sheafdb.engine.models import IndexInfo, IndexState
from sheafdb.errors import invalid
from sheafdb.index import describe_index_params, parse_index_params
from sheafdb.schema import FieldSchema
from sheafdb.storage.records import IndexRecord

SCALAR_INDEX_TYPES = frozenset({"INVERTED", "STL_SORT", "TRIE", "BITMAP", "AUTOINDEX", "NGRAM", "HYBRID"})


def normalized_params(field: FieldSchema, params: Mapping[str, str]) -> dict[str, str]:
    """Validate ``params`` for ``field``; returns the params as Milvus describes them."""
    if field.is_vector:
        return describe_index_params(parse_index_params(field, params))
    index_type = str(params.get("index_type", "") or "AUTOINDEX").upper()
    if index_type not in SCALAR_INDEX_TYPES:
        raise invalid(f"invalid index type: {index_type} for scalar field {field.name}")
    return {**{k: str(v) for k, v in params.items()}, "index_type": index_type}


def find_conflict(
    existing: tuple[IndexRecord, ...], field_name: str, index_name: str, params: Mapping[str, str]
) -> IndexRecord | None:
    """The identical index if there is one (idempotent create); raise if the new one clashes."""
    for index in existing:
        same_field = index.field_name == field_name
        same_name = index.index_name == index_name
        if same_field and same_name and dict(index.params) == dict(params):
            return index
        if same_field:
            raise invalid("CreateIndex failed: at most one distinct index is allowed per field")
        if same_name:
            raise invalid(
                f"CreateIndex failed: index already exist, but parameters are inconsistent: {index_name}"
            )
    return None


def matching(indexes: tuple[IndexRecord, ...], index_name: str, field_name: str) -> list[IndexRecord]:
    return [
        i
        for i in indexes
        if (not index_name or i.index_name == index_name) and (not field_name or i.field_name == field_name)
    ]


def describe(coll: Collection, index: IndexRecord, builder: IndexBuilder) -> IndexInfo:
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
