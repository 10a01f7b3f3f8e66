"""Milvus's import file formats read into one Arrow table per file group.

A group is what Milvus calls an import file: one row-based JSON file (``[...]`` or
``{"rows": [...]}``), one Parquet file, one CSV file, or a set of NumPy files (one
``<field>.npy`` per field). The table has a column per given field (by name) and ``$meta``
(JSON text) for dynamic keys, in the shapes the write path takes; the write path then checks
every row by the insert rules (types, dims, lengths, nulls). What only an import can get wrong
(a group's format, a missing value in a JSON row, an auto id given) is refused here with
Milvus's import texts.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sheafdb import strict_json
from sheafdb.errors import ImportFailed
from sheafdb.schema import DYNAMIC_FIELD, CollectionSchema, DataType, FieldSchema
from sheafdb.storage.import_files import ImportFiles

FORMATS = {".json": "JSON", ".parquet": "Parquet", ".csv": "CSV", ".npy": "Numpy"}


def file_format(paths: Sequence[str]) -> str:
    """The format of one import file group (Milvus's rules), or ImportFailed."""
    if not paths:
        raise ImportFailed("no file to import")
    exts = [PurePosixPath(p).suffix.lower() for p in paths]
    for path, ext in zip(paths[1:], exts[1:], strict=True):
        if ext != exts[0]:
            raise ImportFailed(f"inconsistency in file types, ({paths[0]}) vs ({path})")
    kind = FORMATS.get(exts[0])
    if kind is None:
        raise ImportFailed(f"unexpect file type, files={list(paths)}")
    if kind != "Numpy" and len(paths) != 1:
        raise ImportFailed(f"for {kind} import, accepts only one file")
    return kind


def read_group(
    files: ImportFiles, paths: Sequence[str], schema: CollectionSchema, options: Mapping[str, str]
) -> pa.Table:
    kind = file_format(paths)
    if kind == "Numpy":
        table = _numpy_table(files, paths, schema)
    else:
        with files.open(paths[0]) as source:
            if kind == "JSON":
                table = _json_table(source.read(), schema)
            elif kind == "Parquet":
                table = _columns_table(pq.read_table(source), schema)
            else:
                table = _csv_table(source.read(), schema, options)
    _refuse_generated(schema, table.column_names)
    return table


def _refuse_generated(schema: CollectionSchema, names: Sequence[str]) -> None:
    pk = schema.primary_field
    if pk.auto_id and pk.name in names:
        raise ImportFailed(f"the primary key '{pk.name}' is auto-generated, no need to provide")
    for f in schema.fields:
        if schema.is_function_output(f.name) and f.name in names:
            raise ImportFailed(f"the field '{f.name}' is output by function, no need to provide")


def _input_fields(schema: CollectionSchema) -> list[FieldSchema]:
    return [f for f in schema.fields if not schema.is_function_output(f.name)]


# -- JSON rows ------------------------------------------------------------------------------


def _json_table(raw: bytes, schema: CollectionSchema) -> pa.Table:
    try:
        document = strict_json.loads(raw)
    except ValueError as err:
        raise ImportFailed(f"failed to parse JSON file: {err}") from None
    rows = document.get("rows") if isinstance(document, dict) else document
    if not isinstance(rows, list):
        raise ImportFailed("invalid JSON format, the content should be started with '['")
    if not all(isinstance(r, dict) for r in rows):
        raise ImportFailed("invalid JSON format, each row should be a key-value map")
    columns: dict[str, pa.Array] = {}
    for f in _input_fields(schema):
        present = [f.name in row for row in rows]
        if f.is_primary and f.auto_id:
            if any(present):
                raise ImportFailed(f"the primary key '{f.name}' is auto-generated, no need to provide")
            continue
        if not all(present) and not (f.nullable or f.default_value is not None):
            raise ImportFailed(f"value of field '{f.name}' is missed")
        if any(present):
            columns[f.name] = _python_column(f, [row.get(f.name) for row in rows])
    if schema.enable_dynamic_field:
        known = {f.name for f in schema.fields}
        metas = []
        for row in rows:
            meta = row.get(DYNAMIC_FIELD) or {}
            if not isinstance(meta, dict):
                raise ImportFailed(f"illegal value for dynamic field, not a JSON object: {meta!r}")
            extra = {k: v for k, v in row.items() if k not in known and k != DYNAMIC_FIELD}
            metas.append(json.dumps({**meta, **extra}))
        columns[DYNAMIC_FIELD] = pa.array(metas, type=pa.string())
    return pa.table(columns)


def _python_column(f: FieldSchema, values: list[Any]) -> pa.Array:
    """JSON values of one field as an Arrow column in the write path's shapes."""
    try:
        dtype = f.dtype
        if dtype is DataType.JSON:
            return pa.array(
                [v if v is None or isinstance(v, str) else json.dumps(v) for v in values], type=pa.string()
            )
        if dtype is DataType.SPARSE_FLOAT_VECTOR:
            return pa.array([_sparse(v) for v in values], type=f.arrow_type())
        if dtype in (DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR, DataType.BINARY_VECTOR):
            return _raw_vectors(f, values)
        if dtype.is_integer and any(isinstance(v, float) for v in values):
            bad = next(v for v in values if isinstance(v, float))
            raise ImportFailed(f"failed to parse value '{bad}' for field '{f.name}': not an integer")
        if dtype is DataType.TIMESTAMPTZ:
            return pa.array(values, type=pa.string())
        if dtype.is_dense_vector:
            return pa.array(values, type=pa.list_(f.arrow_type().value_type))
        return pa.array(values, type=f.arrow_type())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as err:
        raise ImportFailed(f"failed to parse values of field '{f.name}': {err}") from None


def _sparse(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = strict_json.loads(value)
    pairs: list[tuple[Any, Any]]
    if isinstance(value, dict) and set(value) == {"indices", "values"}:
        pairs = list(zip(value["indices"], value["values"], strict=True))
    elif isinstance(value, dict):
        pairs = [(int(k), v) for k, v in value.items()]
    else:
        raise ValueError(f"a sparse vector is a JSON object, got {value!r}")
    return [{"index": int(k), "value": float(v)} for k, v in sorted(pairs)]


def _raw_vectors(f: FieldSchema, values: Sequence[Any], *, raw_bytes: bool = False) -> pa.Array:
    """Binary and half-precision vectors: numbers per row -> the raw bytes the engine stores.

    A binary row is ``dim / 8`` bytes. A half-precision row is ``dim`` floats, or its ``2 * dim``
    raw bytes: a uint8 column holds bytes, and so does a row of ``2 * dim`` numbers in a float
    column (pymilvus's bulk writer mixes the two in one Parquet column when some rows were
    given as numpy half-precision arrays); no other length is a vector of this field."""
    dim = f.dim or 0
    rows: list[bytes | None] = []
    for v in values:
        if v is None:
            rows.append(None)
            continue
        arr = np.asarray(v)
        if f.dtype is DataType.BINARY_VECTOR or raw_bytes or (dim and arr.size == 2 * dim):
            rows.append(_byte_values(f, arr).tobytes())
        elif f.dtype is DataType.FLOAT16_VECTOR:
            rows.append(arr.astype("<f2").tobytes())
        else:
            bits = arr.astype("<f4").view("<u4")
            rows.append(((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2").tobytes())
    return pa.array(rows, type=pa.binary())


def _byte_values(f: FieldSchema, arr: np.ndarray) -> np.ndarray:
    if arr.size and (arr.min() < 0 or arr.max() > 255 or not np.all(np.mod(arr, 1) == 0)):
        raise ImportFailed(f"the bytes of field '{f.name}' must be integers in [0, 255]")
    return arr.astype(np.uint8)


# -- Parquet and CSV: columns by name ---------------------------------------------------------


def _columns_table(source: pa.Table, schema: CollectionSchema) -> pa.Table:
    """A columnar file's columns in the write path's shapes; columns the schema does not know
    are skipped (Milvus 2.6), ``$meta`` is the dynamic field's JSON text."""
    columns: dict[str, pa.Array] = {}
    for f in _input_fields(schema):
        if f.name in source.column_names:
            columns[f.name] = _arrow_column(f, source.column(f.name).combine_chunks())
    if schema.enable_dynamic_field and DYNAMIC_FIELD in source.column_names:
        columns[DYNAMIC_FIELD] = source.column(DYNAMIC_FIELD).combine_chunks()
    return pa.table(columns)


def _arrow_column(f: FieldSchema, col: pa.Array) -> pa.Array:
    dtype = f.dtype
    text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
    if dtype is DataType.SPARSE_FLOAT_VECTOR or (text and (dtype.is_dense_vector or dtype is DataType.ARRAY)):
        return _python_column(f, [None if v is None else strict_json.loads(v) for v in col.to_pylist()])
    if dtype in (DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR, DataType.BINARY_VECTOR):
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            raw = pa.types.is_uint8(col.type.value_type)
            return _raw_vectors(f, col.to_pylist(), raw_bytes=raw)
    return col


def _csv_table(raw: bytes, schema: CollectionSchema, options: Mapping[str, str]) -> pa.Table:
    sep = options.get("sep", ",")
    if len(sep) != 1 or sep in ("\n", "\r", '"'):
        raise ImportFailed(f"unsupported separator {sep!r}: it must be one character")
    nullkey = options.get("nullkey", "")
    try:
        table = pacsv.read_csv(
            io.BytesIO(raw),
            parse_options=pacsv.ParseOptions(delimiter=sep),
            convert_options=pacsv.ConvertOptions(
                null_values=[nullkey], strings_can_be_null=True, quoted_strings_can_be_null=False
            ),
            read_options=pacsv.ReadOptions(autogenerate_column_names=False),
        )
    except pa.ArrowInvalid as err:
        raise ImportFailed(f"failed to read CSV file: {err}") from None
    text_table = pa.table({n: table.column(n).cast(pa.string()) for n in table.column_names})
    columns: dict[str, pa.Array] = {}
    for f in _input_fields(schema):
        if f.name in text_table.column_names:
            columns[f.name] = _csv_column(f, text_table.column(f.name).combine_chunks())
    if schema.enable_dynamic_field and DYNAMIC_FIELD in text_table.column_names:
        columns[DYNAMIC_FIELD] = text_table.column(DYNAMIC_FIELD).combine_chunks()
    return pa.table(columns)


def _csv_column(f: FieldSchema, col: pa.Array) -> pa.Array:
    """CSV cells are text: vectors, arrays, sparse vectors and JSON are JSON text in a cell."""
    dtype = f.dtype
    if dtype in (DataType.VARCHAR, DataType.STRING, DataType.JSON, DataType.TIMESTAMPTZ):
        return col
    if dtype.is_vector or dtype is DataType.ARRAY:
        return _python_column(f, [None if v is None else _json_cell(f, v) for v in col.to_pylist()])
    try:
        if dtype is DataType.BOOL:
            return col.cast(pa.bool_())
        return col.cast(f.arrow_type())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise ImportFailed(f"failed to parse values of field '{f.name}': {err}") from None


def _json_cell(f: FieldSchema, text: str) -> Any:
    try:
        return strict_json.loads(text)
    except ValueError:
        raise ImportFailed(f"failed to parse value '{text}' of field '{f.name}' as JSON") from None


# -- NumPy: one file per field --------------------------------------------------------------


def _numpy_table(files: ImportFiles, paths: Sequence[str], schema: CollectionSchema) -> pa.Table:
    by_name = {PurePosixPath(p).stem: p for p in paths}
    columns: dict[str, pa.Array] = {}
    for f in _input_fields(schema):
        path = by_name.get(f.name)
        if f.is_primary and f.auto_id:
            if path is not None:
                raise ImportFailed(f"the primary key '{f.name}' is auto-generated, no need to provide")
            continue
        if path is None:
            if f.nullable or f.default_value is not None:
                continue
            raise ImportFailed(f"no file for field: {f.name}, files: {list(paths)}")
        columns[f.name] = _numpy_column(f, _load_npy(files, path))
    if schema.enable_dynamic_field and DYNAMIC_FIELD in by_name:
        columns[DYNAMIC_FIELD] = pa.array(_load_npy(files, by_name[DYNAMIC_FIELD]).astype(str).tolist())
    counts = {name: len(col) for name, col in columns.items()}
    if len(set(counts.values())) > 1:
        raise ImportFailed(f"the row count of each numpy file should be equal, got {counts}")
    return pa.table(columns)


def _load_npy(files: ImportFiles, path: str) -> np.ndarray:
    with files.open(path) as source:
        try:
            loaded: np.ndarray = np.load(io.BytesIO(source.read()), allow_pickle=False)
            return loaded
        except ValueError as err:
            raise ImportFailed(f"failed to read numpy file {path}: {err}") from None


def _numpy_column(f: FieldSchema, arr: np.ndarray) -> pa.Array:
    dtype = f.dtype
    if dtype is DataType.SPARSE_FLOAT_VECTOR or dtype is DataType.ARRAY:
        raise ImportFailed(f"numpy files cannot hold the {dtype.name} field '{f.name}'")
    if dtype.is_vector:
        if arr.ndim != 2:
            raise ImportFailed(f"the numpy file of vector field '{f.name}' must be 2-dimensional")
        if dtype in (DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR, DataType.BINARY_VECTOR):
            return _raw_vectors(f, list(arr), raw_bytes=arr.dtype == np.uint8)
        return pa.FixedSizeListArray.from_arrays(pa.array(arr.ravel()), arr.shape[1])
    if arr.ndim != 1:
        raise ImportFailed(f"the numpy file of scalar field '{f.name}' must be 1-dimensional")
    if arr.dtype.kind in ("U", "S", "O"):
        return pa.array(arr.astype(str).tolist(), type=pa.string())
    return pa.array(arr)
