"""Turning a client's batch into rows the collection can store, or refusing all of it.

``prepare_rows`` checks the WHOLE batch before anything is written (unknown, missing and
mistyped fields, vector dims, VARCHAR byte lengths, array capacities, nulls, JSON text, size),
fills defaults and nulls, and returns a table laid out exactly as ``schema.arrow_schema()``
minus the ``__ts`` column that the write path adds with the batch's timestamp. Every refusal is
ParameterInvalid (1100). Checks are column-wise with pyarrow compute; JSON texts are parsed in
one Arrow call per column (a per-value parse only when that fast path cannot decide).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, tzinfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from sheafdb import strict_json
from sheafdb.engine.finite_vectors import check_vector_column
from sheafdb.engine.write.struct_columns import check_struct_column
from sheafdb.errors import invalid
from sheafdb.schema import DYNAMIC_FIELD, TIMESTAMP_COLUMN, CollectionSchema, DataType, FieldSchema
from sheafdb.strict_json import MAX_JSON_DEPTH
from sheafdb.timestamptz import parse_time, times_from_text

# The collection property that lets an insert carry its own keys into an auto_id collection.
ALLOW_INSERT_AUTO_ID = "allow_insert_auto_id"

# Milvus refuses insert requests above proxy.maxInsertSize (64 MiB by default).
MAX_BATCH_BYTES = 64 * 1024 * 1024
# Milvus's common.JSONMaxLength: one JSON value may be at most 64 KiB.
MAX_JSON_BYTES = 64 * 1024


def prepare_rows(
    schema: CollectionSchema,
    data: pa.Table,
    *,
    primary_keys_given: bool,
    generate_ids: Callable[[int], pa.Array],
    default_zone: tzinfo = UTC,
) -> pa.Table:
    """Validate ``data`` and return it in the stored layout (without ``__ts``).

    ``primary_keys_given``: whether the client must pass the primary key even though it is
    auto_id (upsert does; insert must not, unless the collection sets ``allow_insert_auto_id``).
    ``generate_ids(n)`` makes auto ids when needed. ``default_zone``: the zone of TIMESTAMPTZ text
    without an offset (the collection's ``timezone``).
    """
    num_rows = data.num_rows
    if data.nbytes > MAX_BATCH_BYTES:
        raise invalid(f"insert data is {data.nbytes} bytes, more than the limit of {MAX_BATCH_BYTES} bytes")
    names = list(data.column_names)
    if len(set(names)) != len(names):
        raise invalid(f"duplicated field names in insert data: {names}")
    pk = schema.primary_field
    known = {f.name for f in schema.fields}
    unknown = [n for n in names if n not in known and n != DYNAMIC_FIELD]
    if unknown:
        if not schema.enable_dynamic_field:
            raise invalid(
                f"field {unknown[0]} does not exist in the collection schema "
                "and the dynamic field is not enabled"
            )
    if DYNAMIC_FIELD in names and not schema.enable_dynamic_field:
        raise invalid(f"field {DYNAMIC_FIELD} cannot be inserted: the dynamic field is not enabled")

    columns: list[pa.Array | pa.ChunkedArray] = []
    for f in schema.fields:
        if f.is_primary and f.auto_id and not primary_keys_given:
            if f.name in names:
                raise invalid(
                    "can not assign primary field data when auto id enabled and "
                    f"allow_insert_auto_id is false {f.name}"
                )
            columns.append(generate_ids(num_rows))
            continue
        if f.name not in names:
            columns.append(_missing_column(f, num_rows, default_zone))
            continue
        columns.append(_checked_column(f, data.column(f.name), default_zone))
    out_fields = [pa.field(f.name, f.arrow_type(), nullable=True) for f in schema.fields]
    if schema.enable_dynamic_field:
        columns.append(_dynamic_column(schema, data, unknown))
        out_fields.append(pa.field(DYNAMIC_FIELD, pa.string()))
    table = pa.Table.from_arrays(columns, schema=pa.schema(out_fields))
    if table.column(pk.name).null_count:
        raise invalid(f"primary key field {pk.name} must not contain null values")
    return table.combine_chunks()


def allows_insert_auto_id(properties: Mapping[str, str]) -> bool:
    return properties.get(ALLOW_INSERT_AUTO_ID, "false").strip().lower() == "true"


def with_timestamp(table: pa.Table, timestamp: int) -> pa.Table:
    stamps = pa.repeat(pa.scalar(timestamp, pa.uint64()), table.num_rows)
    return table.append_column(pa.field(TIMESTAMP_COLUMN, pa.uint64(), nullable=False), stamps)


def _missing_column(f: FieldSchema, num_rows: int, default_zone: tzinfo = UTC) -> pa.Array:
    if f.default_value is not None:
        return default_column(f, num_rows, default_zone)
    if f.nullable:
        return pa.nulls(num_rows, type=f.arrow_type())
    raise invalid(
        f"Insert missed an field `{f.name}` to collection without set nullable==true or set default_value"
    )


def default_column(f: FieldSchema, num_rows: int, default_zone: tzinfo = UTC) -> pa.Array:
    """``num_rows`` copies of the field's default value, in its stored layout."""
    value = f.default_value
    if f.dtype is DataType.JSON and not isinstance(value, str):
        value = json.dumps(value)
    if f.dtype is DataType.TIMESTAMPTZ and isinstance(value, str):
        value = parse_time(value, default_zone)
    return pa.repeat(pa.scalar(value, type=f.arrow_type()), num_rows)


def _checked_column(f: FieldSchema, column: pa.ChunkedArray, default_zone: tzinfo) -> pa.Array:
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if f.dtype is DataType.ARRAY_OF_STRUCT:
        col = check_struct_column(f, col)
    elif f.is_vector:
        col = _vector_column(f, col)
        check_vector_column(f.dtype, col)
    elif f.dtype is DataType.TIMESTAMPTZ:
        col = _timestamptz_column(f, col, default_zone)
    else:
        col = _scalar_column(f, col)
    if col.null_count:
        if f.default_value is not None:
            default = default_column(f, 1, default_zone)[0].as_py()
            col = pc.fill_null(col, pa.scalar(default, type=f.arrow_type()))
        elif not f.nullable:
            raise invalid(f"the field {f.name} is not nullable but contains null values")
    return col


def _cast(f: FieldSchema, col: pa.Array) -> pa.Array:
    try:
        return col.cast(f.arrow_type(), safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise invalid(
            f"the data type of field {f.name} should be {f.dtype.name}, but got {col.type} ({e})"
        ) from None


def _timestamptz_column(f: FieldSchema, col: pa.Array, default_zone: tzinfo) -> pa.Array:
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        try:
            return times_from_text(col, default_zone)
        except ValueError as e:
            raise invalid(f"field {f.name}: {e}") from None
    if pa.types.is_integer(col.type) or pa.types.is_null(col.type):
        return _cast(f, col)
    raise invalid(f"the data type of field {f.name} should be Timestamptz, but got {col.type}")


def _scalar_column(f: FieldSchema, col: pa.Array) -> pa.Array:
    if f.dtype in (DataType.VARCHAR, DataType.STRING, DataType.JSON) and not (
        pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_null(col.type)
    ):
        raise invalid(f"the data type of field {f.name} should be {f.dtype.name}, but got {col.type}")
    if f.dtype is DataType.BOOL and not (pa.types.is_boolean(col.type) or pa.types.is_null(col.type)):
        raise invalid(f"the data type of field {f.name} should be BOOL, but got {col.type}")
    if f.dtype.is_integer and (pa.types.is_floating(col.type) or pa.types.is_string(col.type)):
        raise invalid(f"the data type of field {f.name} should be {f.dtype.name}, but got {col.type}")
    col = _cast(f, col)
    if f.dtype is DataType.VARCHAR and f.max_length is not None:
        _check_lengths(f, pc.binary_length(col), f.max_length, "length of varchar field", "max length")
    elif f.dtype is DataType.JSON:
        _check_json(f.name, col, require_object=False)
    elif f.dtype is DataType.ARRAY:
        if f.max_capacity is not None:
            _check_lengths(
                f, pc.list_value_length(col), f.max_capacity, "length of array field", "max capacity"
            )
        if f.element_type is DataType.VARCHAR and f.max_length is not None:
            flat = pc.list_flatten(col)
            _check_lengths(
                f,
                pc.binary_length(flat),
                f.max_length,
                "length of varchar element in array field",
                "max length",
            )
    return col


def _check_lengths(f: FieldSchema, lengths: pa.Array, limit: int, what: str, limit_name: str) -> None:
    over = pc.greater(lengths, limit)
    if pc.any(over).as_py():
        row = pc.index(over, True).as_py()
        raise invalid(
            f"{what} {f.name} exceeds {limit_name}, row number: {row}, length: {lengths[row].as_py()}, "
            f"{limit_name}: {limit}"
        )


def _check_json(name: str, col: pa.Array, *, require_object: bool) -> None:
    lengths = pc.binary_length(col)
    over = pc.greater(lengths, MAX_JSON_BYTES)
    if pc.any(over).as_py():
        row = pc.index(over, True).as_py()
        raise invalid(f"json value of field {name} at row {row} is longer than {MAX_JSON_BYTES} bytes")
    if _all_json_objects(col.drop_null()):
        _check_json_suspects(name, col)
        return
    # Slow path, one parse per row: values that are not all one-line objects, or a batch the
    # vectorised parse refused (then this finds the bad row and names it).
    for row, text in enumerate(col.to_pylist()):
        if text is None:
            continue
        value = _strict_json(name, row, text)
        if require_object and not isinstance(value, dict):
            raise invalid(f"dynamic field at row {row} must be a JSON object, got {text[:64]!r}")


def _strict_json(name: str, row: int, text: str) -> object:
    try:
        return strict_json.loads_bounded(text)
    except strict_json.JsonRefused as err:
        raise invalid(f"field {name} at row {row} is not valid JSON: {err}: {text[:64]!r}") from None


def _check_json_suspects(name: str, col: pa.Array) -> None:
    """Arrow's parser accepts ``NaN`` and any depth: the rows that may hold either (found in
    one vectorised pass) are parsed again strictly."""
    brackets = pc.add(pc.count_substring(col, "["), pc.count_substring(col, "{"))
    suspect = pc.or_(pc.match_substring_regex(col, "NaN|Infinity"), pc.greater(brackets, MAX_JSON_DEPTH))
    if not pc.any(suspect).as_py():
        return
    texts = col.to_pylist()
    for row in pc.indices_nonzero(pc.fill_null(suspect, False)).to_pylist():
        _strict_json(name, row, texts[row])


# Parse only for syntax: with no field wanted, Arrow neither builds columns nor infers types
# (so keys whose value types differ from row to row are fine), but still validates every value.
_SYNTAX_ONLY = pa_json.ParseOptions(explicit_schema=pa.schema([]), unexpected_field_behavior="ignore")


def _all_json_objects(texts: pa.Array) -> bool:
    """True if every text is exactly one valid JSON object, checked in one Arrow parse.

    The texts are joined by newlines and parsed as newline-delimited JSON; the row count must
    equal the number of texts. Texts containing a line break, or not starting with '{' and
    ending with '}', are left to the slow path: with those excluded, a boundary between two
    texts can only fall between two top-level objects (after a value's closing '}', a '{' is
    valid nowhere else), so no two invalid texts can join into valid ones. The guard is also a
    safety one: pyarrow 26's reader crashes the process on a document starting with ``null``.
    """
    if len(texts) == 0:
        return True
    trimmed = pc.utf8_trim_whitespace(texts)
    shaped = pc.and_(pc.starts_with(trimmed, "{"), pc.ends_with(trimmed, "}"))
    if not pc.all(shaped).as_py() or pc.any(pc.match_substring_regex(texts, "[\\r\\n]")).as_py():
        return False
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(texts)], pa.int32()), texts), "\n")
    try:
        parsed = pa_json.read_json(pa.BufferReader(joined[0].as_buffer()), parse_options=_SYNTAX_ONLY)
    except pa.ArrowInvalid:
        return False
    return bool(parsed.num_rows == len(texts))


def _vector_column(f: FieldSchema, col: pa.Array) -> pa.Array:
    dim = f.dim or 0
    target = f.arrow_type()
    t = col.type
    if f.dtype is DataType.SPARSE_FLOAT_VECTOR:
        return _cast(f, col)
    if pa.types.is_fixed_size_binary(target):
        width = target.byte_width
        if pa.types.is_fixed_size_binary(t) and t.byte_width != width:
            raise _dim_error(f, _dim_of_bytes(f, t.byte_width))
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            lengths = pc.binary_length(col)
            bad = pc.not_equal(lengths, width)
            if pc.any(bad).as_py():
                raise _dim_error(f, _dim_of_bytes(f, lengths[pc.index(bad, True).as_py()].as_py()))
        return _cast(f, col)
    # Dense numeric vectors: FixedSizeList<value, dim> in storage.
    if pa.types.is_fixed_size_list(t):
        if t.list_size != dim:
            raise _dim_error(f, t.list_size)
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = pc.list_value_length(col)
        bad = pc.not_equal(lengths, dim)
        if pc.any(bad).as_py():
            raise _dim_error(f, lengths[pc.index(bad, True).as_py()].as_py())
        if col.null_count == 0:
            col = pa.FixedSizeListArray.from_arrays(col.flatten(), dim)
    else:
        raise invalid(f"the data type of field {f.name} should be {f.dtype.name}, but got {t}")
    return _cast(f, col)


def _dim_of_bytes(f: FieldSchema, nbytes: int) -> int:
    # Binary vectors pack 8 dimensions per byte; float16 / bfloat16 take 2 bytes each.
    return nbytes * 8 if f.dtype is DataType.BINARY_VECTOR else nbytes // 2


def _dim_error(f: FieldSchema, got: int | None) -> Exception:
    return invalid(f"the dim ({got}) of field data({f.name}) is not equal to schema dim ({f.dim})")


def _dynamic_column(schema: CollectionSchema, data: pa.Table, unknown: list[str]) -> pa.Array:
    """``$meta`` as JSON objects; columns not in the schema are folded into it by key."""
    n = data.num_rows
    if DYNAMIC_FIELD in data.column_names:
        meta = data.column(DYNAMIC_FIELD).combine_chunks()
        if not (
            pa.types.is_string(meta.type)
            or pa.types.is_large_string(meta.type)
            or pa.types.is_null(meta.type)
        ):
            raise invalid(f"the dynamic field {DYNAMIC_FIELD} must be JSON text, got {meta.type}")
        meta = meta.cast(pa.string())
        _check_json(DYNAMIC_FIELD, meta, require_object=True)
    else:
        meta = None
    if not unknown:
        return meta if meta is not None else pa.array(["{}"] * n, type=pa.string())
    objects = (
        [json.loads(t) if t else {} for t in meta.to_pylist()] if meta is not None else [{} for _ in range(n)]
    )
    for name in unknown:
        for obj, value in zip(objects, data.column(name).to_pylist(), strict=True):
            obj[name] = value
    static = {f.name for f in schema.fields}
    for obj in objects:
        clash = static.intersection(obj)
        if clash:
            raise invalid(f"dynamic key {sorted(clash)[0]} has the name of a field of the collection schema")
    return pa.array([json.dumps(o, separators=(",", ":")) for o in objects], type=pa.string())
