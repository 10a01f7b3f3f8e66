"""Milvus's rules for indexes on scalar fields, and what each builds per sealed segment.

``check_scalar_index`` validates a CreateIndex on a scalar (or JSON) field as Milvus 2.6's
proxy does (its checkers' texts, wrapped as Milvus wraps a failed param check, code 1100) and
returns the params as DescribeIndex shows them. ``scalar_structure`` says which structure an
index builds (sheafdb.index.scalar), or None for one that is recorded but not built (filters
on it scan): JSON indexes cast to JSON, and JSON indexes with a ``json_cast_function`` (their
converted values would answer differently from a scan). A JSON path cast to ARRAY_DOUBLE,
ARRAY_VARCHAR or ARRAY_BOOL posts the path's list elements of that kind, which answer
``json_contains`` / ``_any`` / ``_all`` on the path with values of that kind.
INVERTED, BITMAP and AUTOINDEX on an ARRAY field of bool, integers, float, double or varchar
build the elements' postings, which answer ``array_contains`` / ``_any`` / ``_all``
(``arr[i] == v`` scans). An INVERTED or AUTOINDEX index on a JSON field needs a
``json_cast_type`` (Milvus's "json index must specify cast type"); ``json_path`` defaults to
the field.

Per field type (Milvus's index checkers):
INVERTED  bool, integers, float, double, varchar, array, JSON (with a cast type)
STL_SORT  integers, float, double, varchar, timestamptz
TRIE      varchar
BITMAP    bool, integers, varchar, arrays of those; never the primary key
NGRAM     varchar, JSON (cast VARCHAR); ``min_gram`` <= ``max_gram``, both positive
AUTOINDEX bool -> BITMAP; integers, varchar -> HYBRID (bitmap for few values per segment,
          else sorted); float, double, timestamptz, JSON paths -> INVERTED; arrays -> element
          postings (as INVERTED and BITMAP on arrays)
"""

from __future__ import annotations

from collections.abc import Mapping

from sheafdb.engine.ddl_rules import milvus_type_name
from sheafdb.errors import ParameterInvalid, invalid
from sheafdb.expr import JsonPath, JsonView, syntax
from sheafdb.index.scalar import ScalarIndexSpec
from sheafdb.schema import DataType, FieldSchema

SCALAR_INDEX_TYPES = frozenset({"INVERTED", "STL_SORT", "TRIE", "BITMAP", "AUTOINDEX", "NGRAM", "HYBRID"})
# JSON path indexes (Milvus 2.6): one path, read as one cast type.
JSON_INDEX_TYPES = frozenset({"INVERTED", "AUTOINDEX", "NGRAM"})
JSON_CAST_TYPES = frozenset(
    {"BOOL", "DOUBLE", "VARCHAR", "ARRAY_BOOL", "ARRAY_DOUBLE", "ARRAY_VARCHAR", "JSON"}
)
JSON_CAST_FUNCTIONS = frozenset({"STRING_TO_DOUBLE"})
# The projection of a JSON path a cast type reads (the filter language's typed views).
CAST_VIEWS = {
    "DOUBLE": JsonView.NUMBER,
    "VARCHAR": JsonView.STRING,
    "BOOL": JsonView.BOOL,
    "ARRAY_DOUBLE": JsonView.LIST,
    "ARRAY_VARCHAR": JsonView.LIST,
    "ARRAY_BOOL": JsonView.LIST,
}
# An ARRAY_* cast posts the list view's elements of one kind (expr.json_column's token tags).
_ELEMENT_TOKENS = {"ARRAY_DOUBLE": "n:", "ARRAY_VARCHAR": "s:", "ARRAY_BOOL": "b:"}
# Milvus's bitmap_cardinality_limit bounds.
_CARDINALITY_LIMIT = (1, 1000)

_INTEGERS = frozenset({DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64})
_NUMBERS = _INTEGERS | {DataType.FLOAT, DataType.DOUBLE}
_TEXT = frozenset({DataType.VARCHAR, DataType.STRING})
# ARRAY element types whose elements an index posts (the filter language compares them).
_ELEMENTS = _NUMBERS | _TEXT | {DataType.BOOL}


def _refused(detail: str) -> ParameterInvalid:
    """Milvus's wrap of a failed index check (proxy: checkTrain / CheckValidDataType)."""
    return ParameterInvalid(
        f"{detail}: invalid parameter[expected=valid index params][actual=invalid index params]"
    )


def check_scalar_index(field: FieldSchema, params: Mapping[str, str]) -> dict[str, str]:
    """Validate an index on a scalar field; the params as DescribeIndex reports them."""
    index_type = str(params.get("index_type", "") or "AUTOINDEX").upper()
    if index_type not in SCALAR_INDEX_TYPES:
        raise invalid(f"invalid index type: {index_type} for scalar field {field.name}")
    _check_data_type(index_type, field)
    described = {**{k: str(v) for k, v in params.items()}, "index_type": index_type}
    if (
        field.dtype is DataType.JSON
        and index_type in ("INVERTED", "AUTOINDEX")
        and "json_cast_type" not in params
    ):
        # Milvus's INVERTEDChecker (AUTOINDEX on JSON resolves to INVERTED), a missing parameter.
        raise _refused("json index must specify cast type: missing parameter[missing_param=json_cast_type]")
    if field.dtype is DataType.JSON and ("json_cast_type" in params or index_type == "NGRAM"):
        described.update(_check_json(field, index_type, params))
    if index_type == "NGRAM":
        _check_grams(params)
    if "bitmap_cardinality_limit" in params:
        low, high = _CARDINALITY_LIMIT
        raw = str(params["bitmap_cardinality_limit"])
        if not raw.lstrip("-").isdigit() or not low <= int(raw) <= high:
            raise _refused(
                f"failed to check bitmap cardinality limit, should be larger than 0 and smaller than {high}"
            )
    return described


def _check_data_type(index_type: str, field: FieldSchema) -> None:
    dtype, name = field.dtype, milvus_type_name(field.dtype)
    if index_type == "INVERTED":
        if dtype not in (*_NUMBERS, *_TEXT, DataType.BOOL, DataType.ARRAY, DataType.JSON):
            raise _refused(f"INVERTED are not supported on {name} field")
    elif index_type == "STL_SORT":
        if dtype not in (*_NUMBERS, *_TEXT, DataType.TIMESTAMPTZ):
            raise _refused(
                f"STL_SORT are only supported on numeric, varchar or timestamptz field, got {name}"
            )
    elif index_type == "TRIE":
        if dtype not in _TEXT:
            raise _refused("TRIE are only supported on varchar field")
    elif index_type == "BITMAP":
        if field.is_primary:
            raise _refused("create bitmap index on primary key not supported")
        plain = (*_INTEGERS, *_TEXT, DataType.BOOL)
        if dtype not in (*plain, DataType.ARRAY):
            raise _refused("bitmap index are only supported on bool, int, string and array field")
        if dtype is DataType.ARRAY and field.element_type not in plain:
            raise _refused("bitmap index are only supported on bool, int, string for array field")
    elif index_type == "NGRAM":
        if dtype not in (*_TEXT, DataType.JSON):
            raise _refused("ngram index can only be created on VARCHAR or JSON field")


def _check_json(field: FieldSchema, index_type: str, params: Mapping[str, str]) -> dict[str, str]:
    if index_type not in JSON_INDEX_TYPES:
        raise invalid(f"index type {index_type} is not supported for json field {field.name}")
    if "json_cast_type" not in params:
        raise _refused("JSON field with ngram index must specify json_cast_type")
    cast = str(params["json_cast_type"]).strip().upper()
    if cast not in JSON_CAST_TYPES:
        raise invalid(f"json_cast_type {params['json_cast_type']} is not supported")
    if index_type == "NGRAM" and cast != "VARCHAR":
        raise _refused(f"JSON field with ngram index only supports VARCHAR cast type, got: {cast}")
    function = params.get("json_cast_function")
    if function is not None:
        upper = str(function).strip().upper()
        if upper not in JSON_CAST_FUNCTIONS:
            raise _refused(f"json_cast_function {function} is not supported")
        if cast != "DOUBLE":
            raise _refused(f"json_cast_function {function} is not supported for json_cast_type {cast}")
    path = str(params.get("json_path", "") or field.name)
    parsed = parse_json_path(path)
    if parsed is None or parsed[0] != field.name:
        raise invalid(f"json_path {path} does not belong to json field {field.name}")
    return {"json_path": path}


def _check_grams(params: Mapping[str, str]) -> None:
    if "min_gram" not in params or "max_gram" not in params:
        raise _refused("Ngram index must specify both min_gram and max_gram")
    grams = []
    for key in ("min_gram", "max_gram"):
        raw = str(params[key]).strip()
        if not raw.lstrip("-").isdigit():
            raise _refused(f"{key} for Ngram index must be an integer, got: {params[key]}")
        grams.append(int(raw))
    low, high = grams
    if low <= 0 or high <= 0 or low > high:
        raise _refused(
            f"invalid min_gram or max_gram value for Ngram index, min_gram: {low}, max_gram: {high}"
        )


def parse_json_path(text: str) -> tuple[str, JsonPath] | None:
    """``meta["a"][0]`` -> ("meta", ("a", 0)) with the filter language's parser; None if not a path."""
    try:
        node = syntax.parse(text)
    except ParameterInvalid:
        return None
    if isinstance(node, syntax.Name):
        return node.name, ()
    if isinstance(node, syntax.Access):
        return node.name, node.path
    return None


def scalar_structure(field: FieldSchema, params: Mapping[str, str]) -> ScalarIndexSpec | None:
    """The structure a (validated) scalar index builds per segment; None: recorded, not built."""
    index_type = str(params.get("index_type", "AUTOINDEX")).upper()
    dtype = field.dtype
    if dtype is DataType.ARRAY:
        return ScalarIndexSpec("elements") if field.element_type in _ELEMENTS else None
    if dtype is DataType.JSON:
        if json_view(field, params) is None or "json_cast_function" in params:
            return None
        cast = str(params.get("json_cast_type", "")).strip().upper()
        if cast in _ELEMENT_TOKENS:
            return ScalarIndexSpec("elements", token_prefix=_ELEMENT_TOKENS[cast])
    if index_type == "NGRAM":
        return ScalarIndexSpec("ngram", int(params["min_gram"]), int(params["max_gram"]))
    if index_type == "BITMAP":
        return ScalarIndexSpec("bitmap")
    if index_type in ("AUTOINDEX", "HYBRID"):
        if dtype is DataType.BOOL:
            return ScalarIndexSpec("bitmap")
        if dtype in _INTEGERS or dtype in _TEXT:
            return ScalarIndexSpec("hybrid")
    return ScalarIndexSpec("sorted")


def json_view(field: FieldSchema, params: Mapping[str, str]) -> tuple[str, JsonPath, JsonView] | None:
    """A JSON path index's (column, path, typed view), when its cast type has a view."""
    view = CAST_VIEWS.get(str(params.get("json_cast_type", "")).strip().upper())
    parsed = parse_json_path(str(params.get("json_path", "") or field.name))
    if view is None or parsed is None:
        return None
    return parsed[0], parsed[1], view
