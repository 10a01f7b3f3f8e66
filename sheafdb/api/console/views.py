"""What the console's pages show, read from the engine: plain frozen records for the templates.

Each function runs in a worker thread (the engine blocks) and reads only through the Engine
facade. The console shows a collection to the users who may read its load state (a privilege
every collection read grant holds): DescribeCollection is open to any login, as in Milvus,
so it would show every collection to everyone.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sheafdb.engine.engine import Engine
from sheafdb.engine.load.memory_view import MemoryView, ResidentBlock
from sheafdb.engine.models import IndexInfo, IndexState, LoadState, PartitionInfo
from sheafdb.errors import CollectionNotLoaded, IndexNotFound, SheafError
from sheafdb.schema import FieldSchema

# (operation, db, collection) -> may the user do it
Allowed = Callable[[str, str, str], bool]

# The privilege a user needs on a collection to see it in the console.
SEE_COLLECTION = "GetLoadState"

STATE_NAMES = {
    LoadState.NOT_EXIST: "NotExist",
    LoadState.NOT_LOAD: "NotLoad",
    LoadState.LOADING: "Loading",
    LoadState.LOADED: "Loaded",
}


@dataclass(frozen=True)
class LoadStatus:
    state: str
    progress: int  # 0..100
    resident_bytes: int
    fields: tuple[str, ...]  # loaded (or loading) fields

    @property
    def loading(self) -> bool:
        return self.state == "Loading"


@dataclass(frozen=True)
class CollectionRow:
    db: str
    name: str
    rows: int
    status: LoadStatus


@dataclass(frozen=True)
class CollectionDetail:
    db: str
    name: str
    collection_id: int
    rows: int
    fields: tuple[FieldSchema, ...]
    dynamic_field: bool
    indexes: tuple[IndexInfo, ...]
    aliases: tuple[str, ...]
    partitions: tuple[tuple[PartitionInfo, int], ...]  # with its row count
    properties: Mapping[str, str]
    status: LoadStatus


@dataclass(frozen=True)
class BarPart:
    label: str
    nbytes: int
    percent: float
    color: str  # CSS


@dataclass(frozen=True)
class CollectionBar:
    db: str
    name: str
    nbytes: int
    share_of_budget: float
    parts: tuple[BarPart, ...]


def load_status(engine: Engine, db: str, name: str, view: MemoryView | None = None) -> LoadStatus:
    state = engine.get_load_state(db, name)
    progress = 0
    if state in (LoadState.LOADING, LoadState.LOADED):
        try:
            progress = engine.get_loading_progress(db, name).progress
        except CollectionNotLoaded:
            state = LoadState.NOT_LOAD  # released meanwhile
    view = view or engine.memory_view()
    fields = engine.loaded_fields(db, name) if state is not LoadState.NOT_LOAD else ()
    return LoadStatus(STATE_NAMES[state], progress, view.collection_bytes(db, name), fields)


def collection_rows(engine: Engine, allowed: Allowed) -> dict[str, list[CollectionRow]]:
    """Every database the user can list, with the collections they may describe."""
    view = engine.memory_view()
    listing: dict[str, list[CollectionRow]] = {}
    for database in engine.list_databases():
        db = database.name
        if not allowed("ShowCollections", db, "*"):
            continue
        rows = []
        for name in engine.list_collections(db):
            if not allowed(SEE_COLLECTION, db, name):
                continue
            try:
                rows.append(
                    CollectionRow(
                        db, name, engine.collection_row_count(db, name), load_status(engine, db, name, view)
                    )
                )
            except SheafError:
                continue  # dropped while listing
        listing[db] = rows
    return listing


def collection_detail(engine: Engine, db: str, name: str) -> CollectionDetail:
    info = engine.describe_collection(db, name)
    try:
        indexes = tuple(engine.describe_indexes(db, info.name))
    except IndexNotFound:
        indexes = ()
    partitions = tuple(
        (p, engine.partition_row_count(db, info.name, p.name)) for p in engine.list_partitions(db, info.name)
    )
    return CollectionDetail(
        db=db,
        name=info.name,
        collection_id=info.collection_id,
        rows=engine.collection_row_count(db, info.name),
        fields=tuple(info.schema.fields),
        dynamic_field=info.schema.enable_dynamic_field,
        indexes=indexes,
        aliases=tuple(info.aliases),
        partitions=partitions,
        properties=dict(info.properties),
        status=load_status(engine, db, info.name),
    )


def index_progress(index: IndexInfo) -> int:
    if index.state is IndexState.FINISHED or index.total_rows == 0:
        return 100 if index.state is IndexState.FINISHED else 0
    return min(100, index.indexed_rows * 100 // index.total_rows)


def memory_bars(view: MemoryView, blocks: Sequence[ResidentBlock]) -> list[CollectionBar]:
    """One bar per collection, split by field and index (partitions summed)."""
    grouped: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
    for block in blocks:
        parts = grouped.setdefault((block.db, block.collection), {})
        parts[(block.name, block.kind)] = parts.get((block.name, block.kind), 0) + block.nbytes
    bars = []
    for (db, name), parts in sorted(grouped.items()):
        total = sum(parts.values())
        bars.append(
            CollectionBar(
                db=db,
                name=name,
                nbytes=total,
                share_of_budget=100.0 * total / view.budget_bytes if view.budget_bytes else 0.0,
                parts=tuple(
                    BarPart(_label(name, kind), n, 100.0 * n / total if total else 0.0, _color(name, kind))
                    for (name, kind), n in sorted(parts.items(), key=lambda item: -item[1])
                ),
            )
        )
    return bars


def _label(name: str, kind: str) -> str:
    return name if kind == "field" else f"{name} ({kind.replace('_', ' ')})"


# Well-separated hues; a field keeps its hue across bars and refreshes, and its kinds differ
# by lightness (an index darker than its column, lookups and caches lighter).
_HUES = (212, 28, 140, 282, 48, 340, 184, 100, 250, 0)
_LIGHTNESS = {"field": 58, "index": 36}


def _color(name: str, kind: str) -> str:
    hue = _HUES[zlib.crc32(name.encode()) % len(_HUES)]
    return f"hsl({hue}, 62%, {_LIGHTNESS.get(kind, 76)}%)"


def human_bytes(nbytes: int | float) -> str:
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
