"""A loaded segment's scalar and JSON path indexes, found by what a filter reads.

``SegmentScalarIndexes`` is the ``ScalarLookup`` a sealed segment offers ``Filter.evaluate``
(sheafdb.expr.indexed): a plain field's indexes by field name, a JSON path index by (JSON
column, path, the typed view its cast type reads). It is immutable: adding an index (the loader
installing one built after the load) makes a new one, which the segment swaps in at once, so
a read sees either the old set or the new one.

Only indexes of loaded fields are loaded (a partial load without the field leaves its index on
disk); each is accounted as its own kind, ``scalar_index``, named by the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sheafdb.engine.scalar_index_rules import json_view
from sheafdb.engine.snapshot import SealedSegment, SegmentIndexFile
from sheafdb.expr import JsonPath, JsonView
from sheafdb.expr.indexed import IndexedColumn
from sheafdb.index.scalar import ScalarIndex, load_scalar_index
from sheafdb.schema import CollectionSchema, DataType
from sheafdb.storage.object_store import ObjectStore

# The memory accountant's kind for these structures.
SCALAR_INDEX_KIND = "scalar_index"


@dataclass(frozen=True)
class SegmentScalarIndexes:
    # Index name -> (its file, the loaded structure).
    loaded: Mapping[str, tuple[SegmentIndexFile, ScalarIndex]] = field(default_factory=dict)
    _by_field: Mapping[str, tuple[IndexedColumn, ...]] = field(default_factory=dict)
    _by_json: Mapping[tuple[str, JsonPath, JsonView], tuple[IndexedColumn, ...]] = field(default_factory=dict)

    def for_field(self, name: str) -> Sequence[IndexedColumn]:
        return self._by_field.get(name, ())

    def for_json(self, column: str, path: JsonPath, view: JsonView) -> Sequence[IndexedColumn]:
        return self._by_json.get((column, path, view), ())

    def with_indexes(
        self, schema: CollectionSchema, added: Iterable[tuple[SegmentIndexFile, ScalarIndex]]
    ) -> SegmentScalarIndexes:
        loaded = dict(self.loaded)
        by_field = {k: list(v) for k, v in self._by_field.items()}
        by_json = {k: list(v) for k, v in self._by_json.items()}
        for index_file, structure in added:
            loaded[index_file.index_name] = (index_file, structure)
            schema_field = schema.field(index_file.field_name)
            if schema_field is None:
                continue
            if schema_field.dtype is DataType.JSON:
                located = json_view(schema_field, index_file.params)
                if located is not None:
                    by_json.setdefault(located, []).append(structure)
            else:
                by_field.setdefault(index_file.field_name, []).append(structure)
        return SegmentScalarIndexes(
            loaded,
            {k: tuple(v) for k, v in by_field.items()},
            {k: tuple(v) for k, v in by_json.items()},
        )

    def footprint(self) -> dict[tuple[str, str], int]:
        return {(SCALAR_INDEX_KIND, name): int(s.nbytes) for name, (_, s) in self.loaded.items()}

    def __bool__(self) -> bool:
        return bool(self.loaded)


def wanted_files(segment: SealedSegment, fields: Sequence[str]) -> list[SegmentIndexFile]:
    """The scalar index files of ``segment`` a load of ``fields`` reads."""
    return [f for f in segment.scalar_index_files.values() if f.field_name in fields]


def load_scalar_indexes(
    store: ObjectStore,
    files: Iterable[SegmentIndexFile],
    *,
    cancelled: Callable[[], bool],
    on_bytes: Callable[[int], None],
    cancel: Callable[[], Exception],
) -> list[tuple[SegmentIndexFile, ScalarIndex]]:
    out = []
    for index_file in files:
        if cancelled():
            raise cancel()
        out.append((index_file, load_scalar_index(store, index_file.path)))
        on_bytes(index_file.nbytes)
    return out
