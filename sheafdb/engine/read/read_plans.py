"""What reads derive from one schema and keep: compiled filters, output plans, vector fields,
parsed index specs. Held by the collection (``Collection.read_plans``) for its current schema,
so it lives and dies with that schema; a schema change starts a new one.

A repeated filter is the same ``Filter`` object, so loaded segments can keep its mask (they
cache masks per filter object). Each cache is bounded and cleared when full: at most
FILTERS_KEPT filters of at most FILTER_TEXT_KEPT characters (longer filters are compiled every
time: ~1 MiB of text and plans at most), OUTPUT_PLANS_KEPT output plans, one spec per index.
Refusals are not kept (they raise again). Params that are not hashable (lists) are compiled
every time.

No lock: dict get/set are atomic under the GIL; two racing readers compute equal values and
one of them is kept (for a filter that only costs one mask).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sheafdb.engine.read.output import OutputPlan, build_output_plan
from sheafdb.expr import Filter, compile_filter
from sheafdb.index import IndexSpec, parse_index_params
from sheafdb.schema import CollectionSchema, FieldSchema
from sheafdb.storage.records import IndexRecord

FILTERS_KEPT = 256
FILTER_TEXT_KEPT = 4096
OUTPUT_PLANS_KEPT = 256
SPECS_KEPT = 64

_FilterKey = tuple[str, tuple[tuple[str, type, Any], ...]]
_PlanKey = tuple[tuple[str, ...], tuple[str, ...], bool]


class ReadPlans:
    """The read-side plans of one schema (see the module docstring)."""

    def __init__(self, schema: CollectionSchema) -> None:
        self.schema = schema
        self.vector_fields: tuple[FieldSchema, ...] = schema.vector_fields
        self._filters: dict[_FilterKey, Filter] = {}
        self._outputs: dict[_PlanKey, OutputPlan] = {}
        # index_id -> (its record, the field, the parsed spec): an index DDL makes a new record.
        self._specs: dict[int, tuple[IndexRecord, FieldSchema, IndexSpec]] = {}

    def filter(self, text: str, params: Mapping[str, Any]) -> Filter:
        if len(text) > FILTER_TEXT_KEPT:
            return compile_filter(text, self.schema, params)
        try:
            key = (text, tuple((name, type(value), value) for name, value in params.items()))
            found = self._filters.get(key)
        except TypeError:  # an unhashable parameter value
            return compile_filter(text, self.schema, params)
        if found is not None:
            return found
        compiled = compile_filter(text, self.schema, params)
        if len(self._filters) >= FILTERS_KEPT:
            self._filters.clear()
        return self._filters.setdefault(key, compiled)

    def output(self, loaded: Sequence[str], requested: Sequence[str], *, dynamic_loaded: bool) -> OutputPlan:
        key = (tuple(loaded), tuple(requested), dynamic_loaded)
        found = self._outputs.get(key)
        if found is not None:
            return found
        plan = build_output_plan(self.schema, loaded, requested, dynamic_loaded=dynamic_loaded)
        if len(self._outputs) >= OUTPUT_PLANS_KEPT:
            self._outputs.clear()
        self._outputs[key] = plan
        return plan

    def index_spec(self, record: IndexRecord, field: FieldSchema) -> IndexSpec:
        entry = self._specs.get(record.index_id)
        if entry is not None and entry[0] is record and entry[1] is field:
            return entry[2]
        spec = parse_index_params(field, record.params)
        if len(self._specs) >= SPECS_KEPT:
            self._specs.clear()
        self._specs[record.index_id] = (record, field, spec)
        return spec
