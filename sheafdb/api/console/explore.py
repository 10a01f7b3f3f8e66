"""The console's data page (a filtered query, page by page) and search page (a vector given as
JSON or taken from an existing row), translated to the engine's requests like REST does
(and with REST's row rendering, ``rest/rows.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sheafdb.api.rest.rows import query_vectors, search_hits, table_to_rows, vector_field
from sheafdb.engine.engine import Engine
from sheafdb.engine.models import QueryRequest, SearchRequest
from sheafdb.errors import invalid
from sheafdb.schema import DataType

PAGE_ROWS = 20
SEARCH_LIMIT = 10
# Longer lists (vectors) show their first values and their length.
CELL_LIST_ITEMS = 6


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _int(params: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(params.get(key) or default), low), high)
    except ValueError:
        return default


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def as_table(rows: list[dict[str, Any]], first: tuple[str, ...] = ()) -> Table:
    columns = list(first)
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    return Table(tuple(columns), tuple(tuple(cell(row.get(c)) for c in columns) for row in rows))


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list) and len(value) > CELL_LIST_ITEMS:
        head = ", ".join(cell(v) for v in value[:CELL_LIST_ITEMS])
        return f"[{head}, … ({len(value)})]"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


@dataclass(frozen=True)
class DataPage:
    db: str
    collection: str
    filter: str
    fields: str
    limit: int
    page: int

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> DataPage:
        return cls(
            db=params.get("db") or "default",
            collection=params.get("collection", ""),
            filter=params.get("filter", ""),
            fields=params.get("fields", ""),
            limit=_int(params, "limit", PAGE_ROWS, 1, 1000),
            page=_int(params, "page", 0, 0, 1_000_000),
        )

    def query(self, **change: Any) -> dict[str, Any]:
        """This page's parameters for a link (``page=`` another page)."""
        values = {
            "db": self.db,
            "collection": self.collection,
            "filter": self.filter,
            "fields": self.fields,
            "limit": self.limit,
            "page": self.page,
        }
        return {**values, **change}


@dataclass(frozen=True)
class DataResult:
    table: Table
    has_next: bool


def read_data(engine: Engine, page: DataPage) -> DataResult:
    schema = engine.collection_schema(page.db, page.collection)
    request = QueryRequest(
        collection=page.collection,
        filter=page.filter,
        output_fields=_names(page.fields) or ("*",),
        limit=page.limit + 1,  # one more says whether a next page exists
        offset=page.page * page.limit,
    )
    result = engine.query(page.db, request)
    rows = table_to_rows(schema, result.table)
    return DataResult(as_table(rows[: page.limit], (schema.primary_field.name,)), len(rows) > page.limit)


@dataclass(frozen=True)
class SearchPage:
    db: str
    collection: str
    anns_field: str
    vector: str  # JSON
    row_id: str  # or the primary key of a row whose vector to search with
    filter: str
    fields: str
    limit: int

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> SearchPage:
        return cls(
            db=params.get("db") or "default",
            collection=params.get("collection", ""),
            anns_field=params.get("anns_field", ""),
            vector=params.get("vector", "").strip(),
            row_id=params.get("row_id", "").strip(),
            filter=params.get("filter", ""),
            fields=params.get("fields", ""),
            limit=_int(params, "limit", SEARCH_LIMIT, 1, 16384),
        )


def run_search(engine: Engine, page: SearchPage) -> Table:
    schema = engine.collection_schema(page.db, page.collection)
    field = vector_field(schema, page.anns_field or None)
    if page.row_id:
        vector = _row_vector(engine, page, field.name)
    else:
        try:
            vector = json.loads(page.vector)
        except ValueError as err:
            raise invalid(f"the vector is not JSON: {err}") from None
    request = SearchRequest(
        collection=page.collection,
        vectors=query_vectors(field, [vector]),
        limit=page.limit,
        anns_field=field.name,
        filter=page.filter,
        output_fields=_names(page.fields),
    )
    hits = search_hits(schema, engine.search(page.db, request))
    return as_table(hits, (schema.primary_field.name, "distance"))


def _row_vector(engine: Engine, page: SearchPage, field_name: str) -> Any:
    schema = engine.collection_schema(page.db, page.collection)
    ids: list[int] | list[str] = [page.row_id]
    if schema.primary_field.dtype is DataType.INT64:
        try:
            ids = [int(page.row_id)]
        except ValueError:
            raise invalid(f"id {page.row_id} does not match the Int64 primary key") from None
    request = QueryRequest(collection=page.collection, ids=ids, output_fields=(field_name,))
    rows = table_to_rows(schema, engine.query(page.db, request).table)
    if not rows:
        raise invalid(f"no row with primary key {page.row_id}")
    return rows[0][field_name]
