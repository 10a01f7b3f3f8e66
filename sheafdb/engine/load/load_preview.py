"""What a load would add, priced before anything is read (the REST ``load_plan``, the console's
and the CLI's plan): the same validation and the same plan as a real load, and no reservation.

Partitions already loaded (or loading) add nothing. The plan prices sealed segments, as the
load's own budget check does; growing rows are held by the write path either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sheafdb.engine.collection import Collection
from sheafdb.engine.load.load_manager import LoadManager
from sheafdb.engine.load.load_plan import check_indexes, plan_load, resolve_load_fields
from sheafdb.engine.load.load_requests import partition_id
from sheafdb.engine.models import LoadState


@dataclass(frozen=True)
class PlannedBytes:
    """Bytes a load would add for one structure: ``kind`` ``field``, ``index`` or ``pk_lookup``."""

    kind: str
    name: str
    nbytes: int


@dataclass(frozen=True)
class LoadPreview:
    db: str
    collection: str
    fields: tuple[str, ...]
    partitions: tuple[str, ...]  # the partitions the load would read (not loaded yet)
    items: tuple[PlannedBytes, ...]
    free_bytes: int
    budget_bytes: int

    @property
    def total_bytes(self) -> int:
        return sum(item.nbytes for item in self.items)

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.free_bytes


def preview_load(
    coll: Collection,
    loads: LoadManager,
    *,
    partitions: Sequence[str],
    load_fields: Sequence[str],
    skip_load_dynamic_field: bool,
) -> LoadPreview:
    """The load's checks (Milvus's messages), then its plan; raises what the load would raise."""
    schema = coll.schema
    fields = resolve_load_fields(schema, load_fields, skip_load_dynamic_field)
    check_indexes(coll.name, schema, coll.indexes, fields, for_partitions=bool(partitions))
    loads.check_fields(coll, fields, skip_load_dynamic_field)
    for name in partitions:
        partition_id(coll, name)
    names = tuple(partitions) or tuple(coll.partitions)
    missing = [name for name in names if loads.state(coll, (name,)) is LoadState.NOT_LOAD]
    plan = plan_load(
        coll.snapshot().sealed,
        frozenset(coll.partitions[name] for name in missing),
        fields,
        schema.primary_field.name,
    )
    totals: dict[tuple[str, str], int] = {}
    for item in plan.items:
        totals[(item.kind, item.name)] = totals.get((item.kind, item.name), 0) + item.nbytes
    accountant = loads.accountant
    return LoadPreview(
        db=coll.db_name,
        collection=coll.name,
        fields=fields,
        partitions=tuple(missing),
        items=tuple(PlannedBytes(kind, name, nbytes) for (kind, name), nbytes in totals.items()),
        free_bytes=max(accountant.available_bytes, 0),
        budget_bytes=accountant.budget_bytes,
    )
