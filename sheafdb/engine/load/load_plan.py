"""What a load request means: which fields, whether the indexes allow it, and what it will cost.

The checks follow Milvus's proxy (milvus-behaviour.md §2.3-2.4) word for word, because SDK
users and Milvus's own tests match on those messages. The plan lists every file a load will
read, with its size, before anything is read: the budget check refuses a load that cannot fit
at once (code 3) instead of running out of memory half-way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sheafdb.engine.snapshot import SealedSegment
from sheafdb.errors import FieldNotFound, IndexNotFound, UnexpectedError, invalid
from sheafdb.schema import DYNAMIC_FIELD, TIMESTAMP_COLUMN, CollectionSchema, struct_path
from sheafdb.storage.records import IndexRecord

# A type param that excludes a field from a default (empty load_fields) load, as in Milvus.
SKIP_LOAD_PARAM = "field.skipLoad"
# Estimated bytes per row of an integer primary-key lookup (sorted keys + row order, int64 each).
PK_LOOKUP_BYTES_PER_ROW = 16
# Milvus's property (collection level, or a field's type param): map the field files instead of
# reading them into the heap.
MMAP_PROPERTY = "mmap.enabled"
# The collection property that lets a loaded collection change its field list (or mmap) while
# it serves (load_manager.py); without it Milvus's rule holds: release first.
ONLINE_LOAD_CHANGE = "sheafdb.online_load_change"


def changes_online(properties: Mapping[str, str]) -> bool:
    """``sheafdb.online_load_change=true``: a loaded collection may change what it holds."""
    return str(properties.get(ONLINE_LOAD_CHANGE, "false")).lower() == "true"


def _go_list(names: Iterable[str]) -> str:
    """Go's ``%v`` of a string slice: ``[a b c]``."""
    return "[" + " ".join(names) + "]"


def resolve_load_fields(
    schema: CollectionSchema, load_fields: Sequence[str], skip_load_dynamic_field: bool
) -> tuple[str, ...]:
    """The columns a load holds, in schema order (``$meta`` last); Milvus's validation errors."""
    dynamic = schema.enable_dynamic_field and not skip_load_dynamic_field
    if not load_fields:
        names = [f.name for f in schema.fields if f.type_params.get(SKIP_LOAD_PARAM, "").lower() != "true"]
        return (*names, DYNAMIC_FIELD) if dynamic else tuple(names)
    asked = [name for name in load_fields if name != DYNAMIC_FIELD]
    for name in asked:
        if schema.field(name) is None:
            raise FieldNotFound(f"field not found[field={name}]")
    listed = _go_list(load_fields)
    wanted = set(asked)
    primary = schema.primary_field
    if primary.name not in wanted:
        raise invalid(f"load field list {listed} does not contain primary key field {primary.name}")
    if schema.vector_fields and not any(f.name in wanted for f in schema.vector_fields):
        raise invalid(f"load field list {listed} does not contain vector field")
    partition_key = schema.partition_key_field
    if partition_key is not None and partition_key.name not in wanted:
        raise invalid(f"load field list {listed} does not contain partition key field {partition_key.name}")
    clustering_key = schema.clustering_key_field
    if clustering_key is not None and clustering_key.name not in wanted:
        raise invalid(f"load field list {listed} does not contain clustering key field {clustering_key.name}")
    names = [f.name for f in schema.fields if f.name in wanted]
    return (*names, DYNAMIC_FIELD) if dynamic else tuple(names)


def check_indexes(
    collection_name: str,
    schema: CollectionSchema,
    indexes: Sequence[IndexRecord],
    fields: Sequence[str],
    *,
    for_partitions: bool,
) -> None:
    """Milvus refuses to load vectors it cannot search through an index (a collection without
    vector fields needs none)."""
    if not schema.vector_fields and not schema.struct_vector_paths:
        return
    indexed = {ix.field_name for ix in indexes}
    vector_indexed = indexed & {f.name for f in schema.vector_fields}
    # No index at all: Milvus's DescribeIndex answers "index not found", for partitions too.
    if not indexed:
        raise IndexNotFound(f"index not found[collection={collection_name}]")
    if for_partitions and not vector_indexed:
        raise UnexpectedError(
            f"there is no vector index on collection: {collection_name}, please create index firstly"
        )
    loaded_vectors = [f.name for f in schema.vector_fields if f.name in fields]
    # A loaded struct array field's vector sub-fields (``chunks[emb]``) need theirs too.
    loaded_vectors += [
        struct_path(f.name, s.name)
        for f in schema.fields
        if f.name in fields
        for s in f.struct_fields
        if s.is_vector
    ]
    unindexed = [name for name in loaded_vectors if name not in indexed]
    if unindexed:
        raise UnexpectedError(
            f"there is no vector index on field: {_go_list(unindexed)}, please create index firstly"
        )


def mapped_fields(
    schema: CollectionSchema, properties: Mapping[str, str], *, everything: bool = False
) -> frozenset[str]:
    """Fields whose files a load maps (``mmap.enabled``: a field's own setting wins over the
    collection's, as in Milvus). ``everything``: all of them (``serve --workers N`` shares
    the mapped pages between its processes)."""
    collection_wide = everything or str(properties.get(MMAP_PROPERTY, "false")).lower() == "true"
    mapped = set()
    for field in schema.fields:
        own = None if everything else field.type_params.get(MMAP_PROPERTY)
        if (own.lower() == "true") if own is not None else collection_wide:
            mapped.add(field.name)
    if collection_wide:
        mapped.add(DYNAMIC_FIELD)
    return frozenset(mapped)


@dataclass(frozen=True)
class PlanItem:
    """One structure a load will hold: a column file (read, or mapped), an index file, or a
    primary-key lookup."""

    segment_id: int
    partition_id: int
    kind: str  # "field" | "mapped" | "index" | "scalar_index" | "pk_lookup"
    name: str
    nbytes: int


@dataclass(frozen=True)
class LoadPlan:
    items: tuple[PlanItem, ...]

    @property
    def total_bytes(self) -> int:
        """The bytes the load puts in memory (mapped files are the page cache's, not counted)."""
        return sum(item.nbytes for item in self.items if item.kind != "mapped")

    @property
    def mapped_bytes(self) -> int:
        return sum(item.nbytes for item in self.items if item.kind == "mapped")

    def bytes_by_partition(self) -> dict[int, int]:
        totals: dict[int, int] = {}
        for item in self.items:
            if item.kind == "mapped":
                continue
            totals[item.partition_id] = totals.get(item.partition_id, 0) + item.nbytes
        return totals

    def bytes_by_segment(self) -> dict[int, int]:
        totals: dict[int, int] = {}
        for item in self.items:
            totals[item.segment_id] = totals.get(item.segment_id, 0) + item.nbytes
        return totals


def segment_plan(
    segment: SealedSegment, fields: Sequence[str], primary_key: str, mapped: frozenset[str] = frozenset()
) -> list[PlanItem]:
    """What loading ``fields`` of one segment costs: columns read into memory (or mapped),
    indexes, pk lookup."""
    items = []
    for name in (*fields, TIMESTAMP_COLUMN):
        column = segment.columns.get(name)
        if column is not None:
            kind = "mapped" if name in mapped else "field"
            items.append(PlanItem(segment.segment_id, segment.partition_id, kind, name, column.nbytes))
    for name in fields:
        index_file = segment.index_files.get(name)
        if index_file is not None:
            items.append(PlanItem(segment.segment_id, segment.partition_id, "index", name, index_file.nbytes))
    for scalar in segment.scalar_index_files.values():
        if scalar.field_name in fields:
            items.append(
                PlanItem(
                    segment.segment_id, segment.partition_id, "scalar_index", scalar.index_name, scalar.nbytes
                )
            )
    pk_column = segment.columns.get(primary_key)
    pk_bytes = segment.num_rows * PK_LOOKUP_BYTES_PER_ROW + (pk_column.nbytes if pk_column else 0)
    items.append(PlanItem(segment.segment_id, segment.partition_id, "pk_lookup", primary_key, pk_bytes))
    return items


def plan_load(
    segments: Iterable[SealedSegment],
    partition_ids: frozenset[int],
    fields: Sequence[str],
    primary_key: str,
    mapped: frozenset[str] = frozenset(),
) -> LoadPlan:
    items: list[PlanItem] = []
    for segment in segments:
        if segment.partition_id in partition_ids:
            items.extend(segment_plan(segment, fields, primary_key, mapped))
    return LoadPlan(tuple(items))
