"""``/v2/sheafdb/memory`` and ``/v2/sheafdb/load_plan``: SheafDB's memory figures as JSON.

``memory`` is the accountant's ledger by name (engine/load/memory_view.py): the budget, what is
used, reserved and free, and per collection its bytes by partition and by field and kind;
memory-mapped fields are kind ``mapped``, counted in ``mappedBytes`` apart from the resident
(budget) bytes.
A caller sees the collections it may read the load state of (the totals stay whole: they say
what the server has left, which is no secret of any collection). ``load_plan`` is what a load
would add, per field and index, and whether it fits; nothing is loaded. ``release`` is
Milvus's release answering the bytes it freed (Milvus's own endpoint keeps Milvus's empty
reply: clients compare it whole).
"""

from __future__ import annotations

from typing import Any

from sheafdb.api.rest.envelope import SHEAFDB_PREFIX, Call, Endpoint
from sheafdb.engine.load.memory import MAPPED
from sheafdb.engine.load.memory_view import MemoryView, ResidentBlock
from sheafdb.errors import PermissionDenied

# The privilege a caller needs on a collection to see its memory.
SEE_MEMORY = "GetLoadState"


def visible_blocks(call: Call, view: MemoryView) -> list[ResidentBlock]:
    """The blocks of the collections this caller may see."""
    allowed: dict[tuple[str, str], bool] = {}
    kept = []
    for block in view.blocks:
        key = (block.db, block.collection)
        if key not in allowed:
            allowed[key] = may_see(call, block.db, block.collection)
        if allowed[key]:
            kept.append(block)
    return kept


def may_see(call: Call, db: str, collection: str) -> bool:
    if call.access is None or call.user is None:
        return True
    try:
        call.access.authorize(call.user, SEE_MEMORY, db, collection)
    except PermissionDenied:
        return False
    return True


def memory_json(view: MemoryView, blocks: list[ResidentBlock]) -> dict[str, Any]:
    partitions: dict[tuple[str, str], dict[str, int]] = {}
    fields: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
    mapped: dict[tuple[str, str], int] = {}
    for block in blocks:
        key = (block.db, block.collection)
        by_partition = partitions.setdefault(key, {})
        if block.kind == MAPPED:  # apart from the resident bytes (the budget does not count them)
            mapped[key] = mapped.get(key, 0) + block.nbytes
            by_partition.setdefault(block.partition, 0)
        else:
            by_partition[block.partition] = by_partition.get(block.partition, 0) + block.nbytes
        by_field = fields.setdefault(key, {})
        by_field[(block.name, block.kind)] = by_field.get((block.name, block.kind), 0) + block.nbytes
    return {
        "budgetBytes": view.budget_bytes,
        "usedBytes": view.used_bytes,
        "reservedBytes": view.reserved_bytes,
        "freeBytes": view.free_bytes,
        "mappedBytes": view.mapped_bytes,
        # ``serve --workers N``: the used bytes of each process (the primary, each worker).
        **(
            {"processes": [{"name": n, "usedBytes": b} for n, b in view.processes.items()]}
            if view.processes
            else {}
        ),
        "collections": [
            {
                "dbName": db,
                "collectionName": name,
                "bytes": sum(by_partition.values()),
                "mappedBytes": mapped.get((db, name), 0),
                "partitions": [{"partitionName": p, "bytes": n} for p, n in by_partition.items()],
                "fields": [
                    {"fieldName": field, "kind": kind, "bytes": n}
                    for (field, kind), n in fields[(db, name)].items()
                ],
            }
            for (db, name), by_partition in partitions.items()
        ],
    }


def memory(call: Call) -> dict[str, Any]:
    view = call.engine.memory_view()
    return memory_json(view, visible_blocks(call, view))


def release(call: Call) -> dict[str, int]:
    """Milvus's release (of the collection, or of ``partitionNames``), answering the bytes freed."""
    name = call.text("collectionName")
    partitions = call.names("partitionNames")
    if partitions:
        return {"freedBytes": call.engine.release_partitions(call.db, name, partitions)}
    return {"freedBytes": call.engine.release_collection(call.db, name)}


def load_plan(call: Call) -> dict[str, Any]:
    preview = call.engine.preview_load(
        call.db,
        call.text("collectionName"),
        partitions=call.names("partitionNames"),
        load_fields=call.names("loadFields"),
        skip_load_dynamic_field=bool(call.get("skipLoadDynamicField", False)),
    )
    return {
        "dbName": preview.db,
        "collectionName": preview.collection,
        "loadFields": list(preview.fields),
        "partitionNames": list(preview.partitions),
        "items": [{"kind": i.kind, "fieldName": i.name, "bytes": i.nbytes} for i in preview.items],
        "totalBytes": preview.total_bytes,
        "freeBytes": preview.free_bytes,
        "budgetBytes": preview.budget_bytes,
        "fits": preview.fits,
    }


ENDPOINTS = (
    Endpoint("memory", memory, prefix=SHEAFDB_PREFIX),
    Endpoint("load_plan", load_plan, SEE_MEMORY, prefix=SHEAFDB_PREFIX),
    Endpoint("release", release, "ReleaseCollection", prefix=SHEAFDB_PREFIX),
)
