"""The rows a read can see: loaded sealed segments and growing tables, behind one shape.

A ``LoadedSegment`` holds the loaded columns of one sealed segment in the heap (read, not
memory-mapped: a load must put the data in memory, its bytes are then exact, and a release
really frees them), its vector indexes, and a primary-key lookup. A ``GrowingRows`` wraps a
growing table from the snapshot; it is never loaded or accounted: the write path owns it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sheafdb.engine.load.scalar_indexes import SegmentScalarIndexes, load_scalar_indexes, wanted_files
from sheafdb.engine.read.growing_json import GrowingJsonCache
from sheafdb.engine.read.visibility import hidden_mask
from sheafdb.engine.snapshot import SealedSegment, SegmentIndexFile
from sheafdb.engine.write.added_fields import backfill
from sheafdb.expr import Filter, JsonColumn, JsonProjections
from sheafdb.expr.indexed import ScalarLookup
from sheafdb.index import SparseMatrix, VectorIndex, load_index, parse_index_params, vectors_from_arrow
from sheafdb.index.scalar import ScalarIndex
from sheafdb.schema import DYNAMIC_FIELD, TIMESTAMP_COLUMN, CollectionSchema, DataType
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.segment_files import read_column
from sheafdb.text.match_index import MatchIndexes

# Vector types whose numpy view shares the loaded Arrow buffer (caching it costs no memory).
_ZERO_COPY_VECTORS = frozenset({DataType.FLOAT_VECTOR, DataType.BINARY_VECTOR})


class LoadCancelled(Exception):
    """A release cancelled the load between two structures (never reaches a client)."""


# How many allowed-row masks (one per filter, None for no filter) a loaded segment keeps:
# one byte per row each, freed with the segment.
ALLOWED_MASKS_KEPT = 8
# The footprint entry of those masks and the deletes' hidden mask (registered after reads).
MASKS_FOOTPRINT = ("masks", "filter masks")

# VARCHAR keys are indexed by at most this many leading UTF-8 bytes: one long key must not
# widen every entry (fixed-width arrays), and longer keys sharing a prefix are told apart by
# the exact check against the Arrow column.
PK_PREFIX_BYTES = 64


class PkLookup:
    """Primary key -> row positions: the keys sorted (numpy, searchsorted) and each one's row.

    Integer keys are kept as int64. VARCHAR keys as fixed-width UTF-8 bytes (numpy ``S``, at most
    PK_PREFIX_BYTES wide: 1 byte per ASCII character, where ``<U`` took 4); a match of the bytes
    is confirmed against ``column`` (the loaded key column itself, shared, not copied), which
    also tells apart keys that differ only in trailing NULs or past the prefix. Rows are int32
    below 2**31. A lookup is O(k log n) plus the candidate rows.
    """

    def __init__(self, pks: pa.Array) -> None:
        self._column = pks
        if pa.types.is_integer(pks.type):
            keys = np.asarray(pks.to_numpy(zero_copy_only=False), dtype=np.int64)
            self._width = 0
        else:
            self._width = _prefix_width(pks)
            keys = _encode(pks.to_pylist(), self._width)
        order = np.argsort(keys, kind="stable")
        self._order = order.astype(np.int32) if len(order) < 2**31 else order
        self._sorted = keys[order]

    @property
    def nbytes(self) -> int:
        """Bytes this lookup adds (the key column itself is the loaded field's)."""
        return int(self._order.nbytes + self._sorted.nbytes)

    def rows_of(self, keys: Sequence[int] | Sequence[str]) -> np.ndarray:
        """Rows holding any of ``keys`` (every row with such a key, once), in ascending order."""
        if len(self._sorted) == 0 or len(keys) == 0:
            return np.empty(0, dtype=np.int64)
        # unique: a key asked twice (or two keys with one prefix) yields its rows once.
        if self._width == 0:
            wanted = np.unique(np.asarray(keys, dtype=np.int64))
        else:
            wanted = np.unique(_encode([str(k) for k in keys], self._width))
        left = np.searchsorted(self._sorted, wanted, "left")
        right = np.searchsorted(self._sorted, wanted, "right")
        counts = right - left
        starts = np.repeat(left, counts)
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        rows = np.sort(self._order[starts + within]).astype(np.int64)
        if self._width == 0 or len(rows) == 0:
            return rows
        exact = pc.is_in(self._column.take(pa.array(rows)), value_set=pa.array(list(keys), self._column.type))
        kept: np.ndarray = rows[np.asarray(exact.to_numpy(zero_copy_only=False), dtype=bool)]
        return kept


def _prefix_width(pks: pa.Array) -> int:
    if len(pks) == 0:
        return 1
    longest = pc.max(pc.binary_length(pks)).as_py() or 0
    return max(1, min(int(longest), PK_PREFIX_BYTES))


def _encode(texts: Sequence[str], width: int) -> np.ndarray:
    """UTF-8 bytes cut to ``width`` (a cut inside a character is fine: only bytes are compared)."""
    return np.array([t.encode() for t in texts], dtype=f"S{width}")


class RowSource(Protocol):
    """Rows of one partition a search or query reads: a loaded segment or a growing table."""

    @property
    def partition_id(self) -> int: ...
    @property
    def table(self) -> pa.Table: ...  # the loaded columns and "__ts"

    @property
    def num_rows(self) -> int: ...
    def index(self, field_name: str) -> VectorIndex | None: ...
    def vectors(self, schema: CollectionSchema, field_name: str) -> np.ndarray | SparseMatrix: ...
    def hidden(self, primary_key: str, latest_deletes: pa.Table) -> np.ndarray | None: ...
    def allowed(
        self, flt: Filter | None, primary_key: str, latest_deletes: pa.Table
    ) -> np.ndarray | None: ...
    def rows_of(self, primary_key: str, keys: Sequence[int] | Sequence[str]) -> np.ndarray: ...
    def json_columns(self) -> Mapping[str, JsonProjections]: ...
    def numeric_column(self, name: str) -> np.ndarray | None: ...
    def scalar_lookup(self) -> ScalarLookup | None: ...
    def match_indexes(self) -> MatchIndexes | None: ...  # kept text match indexes, if any


def json_column_names(schema: CollectionSchema, table: pa.Table) -> list[str]:
    """The JSON text columns of ``table`` a filter may read: JSON fields and ``$meta``."""
    names = [f.name for f in schema.fields if f.dtype is DataType.JSON and f.name in table.column_names]
    return [*names, DYNAMIC_FIELD] if DYNAMIC_FIELD in table.column_names else names


@dataclass(eq=False)
class LoadedSegment:
    source: SealedSegment
    table: pa.Table
    pk_lookup: PkLookup
    indexes: dict[str, VectorIndex] = field(default_factory=dict)
    # Bytes held, by (kind, name): what the manager registers with the accountant.
    footprint: dict[tuple[str, str], int] = field(default_factory=dict)
    # _cache_lock guards the four caches: concurrent searches fill them.
    _cache_lock: threading.Lock = field(default_factory=threading.Lock)
    _vectors: dict[str, np.ndarray | SparseMatrix] = field(default_factory=dict)
    # Zero-copy numpy views of integer / float columns without nulls (None: no such view).
    _numeric: dict[str, np.ndarray | None] = field(default_factory=dict)
    _hidden: tuple[pa.Table, np.ndarray | None] | None = None
    # Bumped whenever a mask is stored or evicted; with the JSON projection counts it tells
    # caches_changed() whether cache_growth() has anything new, without summing sizes.
    _mask_generation: int = 0
    _reported: tuple[int, ...] = ()
    # Filter (None: no filter) -> (the deletes it was built against, its allowed mask), most
    # recent last. The table is immutable, so a mask changes only with the deletes; masks are
    # read-only and keep their identity, which lets the index keep its selector for them.
    _allowed: OrderedDict[Filter | None, tuple[pa.Table, np.ndarray | None]] = field(
        default_factory=OrderedDict
    )
    # Prepared once per JSON column at load (nothing parsed until a filter asks for a path);
    # each JsonColumn locks itself, so this dict is only written before the segment is shared.
    prepared_json: dict[str, JsonColumn] = field(default_factory=dict)
    # The loaded scalar / JSON path indexes; replaced whole (never changed) when one is added.
    scalar: SegmentScalarIndexes = field(default_factory=SegmentScalarIndexes)
    # TEXT_MATCH / PHRASE_MATCH indexes of the text columns, built by the first read that needs one.
    text_indexes: MatchIndexes = field(default_factory=MatchIndexes)

    @property
    def segment_id(self) -> int:
        return self.source.segment_id

    @property
    def partition_id(self) -> int:
        return self.source.partition_id

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    def index(self, field_name: str) -> VectorIndex | None:
        return self.indexes.get(field_name)

    def vectors(self, schema: CollectionSchema, field_name: str) -> np.ndarray | SparseMatrix:
        field_schema = schema.field(field_name)
        assert field_schema is not None
        if field_schema.dtype not in _ZERO_COPY_VECTORS:
            # Half-precision and sparse vectors convert with a copy: not kept, never unaccounted.
            return vectors_from_arrow(field_schema, self.table.column(field_name))
        with self._cache_lock:
            cached = self._vectors.get(field_name)
        if cached is None:
            cached = vectors_from_arrow(field_schema, self.table.column(field_name))
            with self._cache_lock:
                self._vectors[field_name] = cached
        return cached

    def hidden(self, primary_key: str, latest_deletes: pa.Table) -> np.ndarray | None:
        # Snapshots share their deletes table until a delete arrives: one mask per table.
        with self._cache_lock:
            if self._hidden is not None and self._hidden[0] is latest_deletes:
                return self._hidden[1]
        mask = _hidden(self.table, primary_key, latest_deletes)
        with self._cache_lock:
            self._hidden = (latest_deletes, mask)
            self._mask_generation += 1
        return mask

    def allowed(self, flt: Filter | None, primary_key: str, latest_deletes: pa.Table) -> np.ndarray | None:
        """Rows ``flt`` keeps and no delete hides (None = every row); kept per filter object."""
        with self._cache_lock:
            entry = self._allowed.get(flt)
            if entry is not None and entry[0] is latest_deletes:
                self._allowed.move_to_end(flt)
                return entry[1]
        mask = _allowed(self, flt, primary_key, latest_deletes)
        if mask is not None:
            # Owned and frozen: the index keeps a selector per such mask (by identity).
            mask = np.array(mask, dtype=bool) if mask.base is not None or mask.dtype != np.bool_ else mask
            mask.flags.writeable = False
        with self._cache_lock:
            self._allowed[flt] = (latest_deletes, mask)
            self._allowed.move_to_end(flt)
            while len(self._allowed) > ALLOWED_MASKS_KEPT:
                self._allowed.popitem(last=False)
            self._mask_generation += 1
        return mask

    def rows_of(self, primary_key: str, keys: Sequence[int] | Sequence[str]) -> np.ndarray:
        return self.pk_lookup.rows_of(keys)

    def json_columns(self) -> Mapping[str, JsonProjections]:
        return self.prepared_json

    def scalar_lookup(self) -> ScalarLookup | None:
        return self.scalar if self.scalar else None

    def add_scalar_indexes(
        self, schema: CollectionSchema, added: Sequence[tuple[SegmentIndexFile, ScalarIndex]]
    ) -> None:
        """Install more loaded scalar indexes (reads see the old set or the new one)."""
        self.scalar = self.scalar.with_indexes(schema, added)
        self.footprint.update(self.scalar.footprint())

    def match_indexes(self) -> MatchIndexes | None:
        return self.text_indexes

    def numeric_column(self, name: str) -> np.ndarray | None:
        """A zero-copy numpy view of an integer or float column without nulls, else None.

        Output gathering indexes it with numpy, cheaper than an Arrow ``take`` for a few rows.
        """
        with self._cache_lock:
            if name in self._numeric:
                return self._numeric[name]
        view = _numeric_view(self.table, name)
        with self._cache_lock:
            self._numeric[name] = view
        return view

    def caches_changed(self) -> bool:
        """Whether a read stored a mask or a JSON projection since cache_growth() last ran
        (cheap: no sizes summed, no lock; a stale answer only defers the report to a later read)."""
        return self._cache_state() != self._reported

    def _cache_state(self) -> tuple[int, ...]:
        return (
            self._mask_generation,
            self.text_indexes.generation,
            *(c.projections_built for c in self.prepared_json.values()),
        )

    def cache_growth(self) -> dict[tuple[str, str], int]:
        """Footprint entries of read caches whose bytes changed since last asked (updated).

        Reads fill JSON projections and filter masks lazily, so the owner re-reads this after
        reads and registers the new sizes with the memory accountant.
        """
        with self._cache_lock:
            self._reported = self._cache_state()
            sizes = {("json", name): column.nbytes for name, column in self.prepared_json.items()}
            masks = {id(m): m.nbytes for _, m in self._allowed.values() if m is not None}
            if self._hidden is not None and self._hidden[1] is not None:
                masks[id(self._hidden[1])] = self._hidden[1].nbytes
            sizes[MASKS_FOOTPRINT] = sum(masks.values())
            for name, nbytes in self.text_indexes.nbytes_by_column().items():
                sizes[("match", name)] = nbytes
            changed = {key: n for key, n in sizes.items() if self.footprint.get(key, 0) != n}
            self.footprint.update(changed)
        return changed

    def add_index(self, field_name: str, index: VectorIndex) -> None:
        self.indexes[field_name] = index
        self.footprint[("index", field_name)] = int(index.nbytes)


@dataclass(eq=False)
class GrowingRows:
    partition_id: int
    table: pa.Table
    # The collection's cache of parsed growing JSON batches; None parses per read.
    json_cache: GrowingJsonCache | None = None
    schema: CollectionSchema | None = None

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    def index(self, field_name: str) -> VectorIndex | None:
        return None  # growing rows are always searched exactly

    def vectors(self, schema: CollectionSchema, field_name: str) -> np.ndarray | SparseMatrix:
        field_schema = schema.field(field_name)
        assert field_schema is not None
        return vectors_from_arrow(field_schema, self.table.column(field_name))

    def hidden(self, primary_key: str, latest_deletes: pa.Table) -> np.ndarray | None:
        return _hidden(self.table, primary_key, latest_deletes)

    def allowed(self, flt: Filter | None, primary_key: str, latest_deletes: pa.Table) -> np.ndarray | None:
        return _allowed(self, flt, primary_key, latest_deletes)  # the table changes: nothing kept

    def rows_of(self, primary_key: str, keys: Sequence[int] | Sequence[str]) -> np.ndarray:
        column = self.table.column(primary_key)
        value_set = pa.array(list(keys), type=column.type)
        return np.flatnonzero(
            np.asarray(pc.is_in(column, value_set=value_set).to_numpy(zero_copy_only=False))
        )

    def numeric_column(self, name: str) -> np.ndarray | None:
        return None  # a growing table is new on every read: a view would not be reused

    def scalar_lookup(self) -> ScalarLookup | None:
        return None  # growing rows are scanned

    def match_indexes(self) -> MatchIndexes | None:
        return None  # likewise: a match index of growing rows is built per read

    def json_columns(self) -> Mapping[str, JsonProjections]:
        if self.json_cache is None or self.schema is None:
            return {}
        names = json_column_names(self.schema, self.table)
        return {name: self.json_cache.column(self.table.column(name)) for name in names}


def _numeric_view(table: pa.Table, name: str) -> np.ndarray | None:
    if name not in table.column_names:
        return None
    column = table.column(name)
    kind = column.type
    if (
        column.num_chunks != 1
        or column.null_count
        or not (pa.types.is_integer(kind) or pa.types.is_floating(kind))
    ):
        return None
    view: np.ndarray = column.chunk(0).to_numpy(zero_copy_only=True)
    return view


def _allowed(
    source: RowSource, flt: Filter | None, primary_key: str, latest_deletes: pa.Table
) -> np.ndarray | None:
    mask = (
        flt.evaluate(source.table, source.json_columns(), source.scalar_lookup(), source.match_indexes())
        if flt is not None
        else None
    )
    hidden = source.hidden(primary_key, latest_deletes)
    if hidden is not None:
        mask = ~hidden if mask is None else mask & ~hidden
    return mask


def _hidden(table: pa.Table, primary_key: str, latest_deletes: pa.Table) -> np.ndarray | None:
    """Mask of the rows the deletes hide, or None when they hide none (the common case)."""
    if latest_deletes.num_rows == 0 or table.num_rows == 0:
        return None
    mask = hidden_mask(table.column(primary_key), table.column(TIMESTAMP_COLUMN), latest_deletes)
    return mask if mask.any() else None


def load_segment(
    store: ObjectStore,
    schema: CollectionSchema,
    segment: SealedSegment,
    fields: Sequence[str],
    mapped: frozenset[str] = frozenset(),
    *,
    cancelled: Callable[[], bool],
    on_bytes: Callable[[int], None],
    map_indexes: bool = False,
) -> LoadedSegment:
    """Read ``fields`` (and "__ts") of a segment into memory, with their indexes and a pk lookup.

    Fields in ``mapped`` (``mmap.enabled``) are memory-mapped instead: their footprint kind is
    "mapped" (the page cache's, counted apart), and dropping the segment unmaps them.
    ``map_indexes`` maps the faiss index files too (still accounted as "index").

    ``cancelled`` is asked between structures: a release stops the load there, and everything
    read so far is dropped with the half-built segment. ``on_bytes`` reports progress.
    """
    footprint: dict[tuple[str, str], int] = {}
    columns: dict[str, pa.Array] = {}
    for name in (*fields, TIMESTAMP_COLUMN):
        column_file = segment.columns.get(name)
        if column_file is None:
            added = schema.field(name)
            if added is not None:
                # Added after this segment was sealed: its rows hold the default (or null).
                columns[name] = backfill(added, segment.num_rows)
                footprint[("field", name)] = columns[name].nbytes
            continue
        if cancelled():
            raise LoadCancelled
        # mmap=False: one heap copy of the file; the arrays point into it (no second copy).
        # mmap=True: the arrays point into the mapping (one chunk per file: no copy either).
        column = read_column(store, column_file.path, mmap=name in mapped)
        columns[name] = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        footprint[("mapped" if name in mapped else "field", name)] = column_file.nbytes
        on_bytes(column_file.nbytes)
    table = pa.table(columns)
    primary = schema.primary_field.name
    if cancelled():
        raise LoadCancelled
    # The loaded key array itself (one chunk): the lookup keeps it without a copy.
    lookup = PkLookup(columns[primary])
    footprint[("pk_lookup", primary)] = lookup.nbytes
    on_bytes(lookup.nbytes)
    loaded = LoadedSegment(source=segment, table=table, pk_lookup=lookup, footprint=footprint)
    for name in json_column_names(schema, table):
        loaded.prepared_json[name] = JsonColumn(table.column(name))
    for name in fields:
        index_file = segment.index_files.get(name)
        if index_file is None:
            continue
        if cancelled():
            raise LoadCancelled
        loaded.add_index(
            name, open_index(store, schema, name, index_file.path, index_file.params, mmap=map_indexes)
        )
        on_bytes(index_file.nbytes)
    scalars = load_scalar_indexes(
        store, wanted_files(segment, fields), cancelled=cancelled, on_bytes=on_bytes, cancel=LoadCancelled
    )
    loaded.add_scalar_indexes(schema, scalars)
    return loaded


def reshape_segment(
    store: ObjectStore,
    schema: CollectionSchema,
    old: LoadedSegment,
    segment: SealedSegment,
    fields: Sequence[str],
    mapped: frozenset[str],
) -> LoadedSegment:
    """``old`` holding ``fields`` instead (an online load change): the columns and indexes it
    keeps are shared, not copied; only added fields (or ones whose mapping changed) are read."""
    footprint: dict[tuple[str, str], int] = {}
    columns: dict[str, pa.Array] = {}
    for name in (*fields, TIMESTAMP_COLUMN):
        column_file = segment.columns.get(name)
        if column_file is None:
            continue
        kind = "mapped" if name in mapped else "field"
        if (kind, name) in old.footprint:
            columns[name] = old.table.column(name).chunk(0)
        else:
            column = read_column(store, column_file.path, mmap=name in mapped)
            columns[name] = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        footprint[(kind, name)] = column_file.nbytes
    primary = schema.primary_field.name
    footprint[("pk_lookup", primary)] = old.pk_lookup.nbytes
    table = pa.table(columns)
    reshaped = LoadedSegment(source=segment, table=table, pk_lookup=old.pk_lookup, footprint=footprint)
    for name in json_column_names(schema, table):
        kept = old.prepared_json.get(name)
        reshaped.prepared_json[name] = kept if kept is not None else JsonColumn(table.column(name))
    for name in fields:
        index = old.index(name)
        index_file = segment.index_files.get(name)
        if index is None and index_file is not None:
            index = open_index(store, schema, name, index_file.path, index_file.params)
        if index is not None:
            reshaped.add_index(name, index)
    kept_scalars = [
        old.scalar.loaded[f.index_name]
        for f in wanted_files(segment, fields)
        if f.index_name in old.scalar.loaded
    ]
    added = [f for f in wanted_files(segment, fields) if f.index_name not in old.scalar.loaded]
    read = load_scalar_indexes(
        store, added, cancelled=lambda: False, on_bytes=lambda _: None, cancel=LoadCancelled
    )
    reshaped.add_scalar_indexes(schema, [*kept_scalars, *read])
    return reshaped


def added_bytes(
    old: LoadedSegment, segment: SealedSegment, fields: Sequence[str], mapped: frozenset[str]
) -> int:
    """The resident bytes ``reshape_segment`` would read anew."""
    total = 0
    for name in (*fields, TIMESTAMP_COLUMN):
        column_file = segment.columns.get(name)
        kind = "mapped" if name in mapped else "field"
        if column_file is not None and (kind, name) not in old.footprint and kind == "field":
            total += column_file.nbytes
    for name in fields:
        index_file = segment.index_files.get(name)
        if index_file is not None and old.index(name) is None:
            total += index_file.nbytes
    total += sum(f.nbytes for f in wanted_files(segment, fields) if f.index_name not in old.scalar.loaded)
    return total


def open_index(
    store: ObjectStore,
    schema: CollectionSchema,
    field_name: str,
    path: str,
    params: Mapping[str, str],
    *,
    mmap: bool = False,
) -> VectorIndex:
    field_schema = schema.field(field_name)
    assert field_schema is not None
    return load_index(store, path, parse_index_params(field_schema, params), mmap=mmap)
