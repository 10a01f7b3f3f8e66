"""Milvus's rules for analyzers and functions in a schema, checked before the catalog.

``enable_analyzer`` / ``enable_match`` only on VARCHAR fields, analyzer params that build; a
BM25 function reads one analyzer-enabled VARCHAR field and writes one sparse vector field that
is not a key and not nullable. Text embedding, rerank and MinHash functions need services
SheafDB does not run: refused as such.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from sheafdb.errors import ParameterMissing, Unsupported, invalid
from sheafdb.schema import CollectionSchema, DataType, FieldSchema
from sheafdb.schema_functions import FUNCTION_TYPE_NAMES, FunctionSchema, FunctionType, bm25_output_names
from sheafdb.text.analyzer import (
    ANALYZER_PARAMS,
    ENABLE_ANALYZER,
    ENABLE_MATCH,
    analyzer_enabled,
    analyzer_for_field,
    is_true,
)


def check_text_fields(schema: CollectionSchema) -> None:
    for field in schema.fields:
        check_text_field(field)


def check_text_field(field: FieldSchema) -> None:
    params = field.type_params
    wants_text = is_true(params.get(ENABLE_ANALYZER)) or is_true(params.get(ENABLE_MATCH))
    if wants_text and field.dtype is not DataType.VARCHAR:
        raise invalid(f"field {field.name} is not varchar, can not enable analyzer or match")
    if wants_text or ANALYZER_PARAMS in params:
        analyzer_for_field(field)  # raises Milvus's error when the params do not build


def check_functions(schema: CollectionSchema) -> None:
    names: set[str] = set()
    outputs: dict[str, str] = {}
    for function in schema.functions:
        if not function.name:
            raise ParameterMissing("function name cannot be empty: missing parameter")
        if function.name in names:
            raise invalid(f"duplicate function name: {function.name}")
        names.add(function.name)
        check_function(schema, function)
        for name in function.output_field_names:
            if name in outputs:
                raise invalid(
                    f"output field {name!r} is produced by both {outputs[name]!r} and {function.name!r}"
                )
            outputs[name] = function.name


def check_function(schema: CollectionSchema, function: FunctionSchema) -> None:
    if function.type is not FunctionType.BM25:
        kind = FUNCTION_TYPE_NAMES.get(function.type, str(int(function.type)))
        raise Unsupported.feature(f"{kind} functions (they call a model service)")
    if not function.input_field_names:
        raise ParameterMissing(
            f"function input field names cannot be empty, function: {function.name}: missing parameter"
        )
    inputs = [_field(schema, function, name, "input") for name in function.input_field_names]
    outputs = [_field(schema, function, name, "output") for name in function.output_field_names]
    for name in function.output_field_names:
        if name in function.input_field_names:
            raise invalid(
                "a single field cannot be both input and output in the same function, "
                f"function: {function.name}, field: {name}"
            )
    for field in outputs:
        if field.is_primary:
            raise invalid(
                f"function output field cannot be primary key: function {function.name}, field {field.name}"
            )
        if field.is_partition_key or field.is_clustering_key:
            raise invalid(
                "function output field cannot be partition key or clustering key: "
                f"function {function.name}, field {field.name}"
            )
        if field.nullable:
            raise invalid(
                f"function output field cannot be nullable: function {function.name}, field {field.name}"
            )
    if function.params:
        raise invalid("BM25 function accepts no params")
    if len(inputs) != 1 or inputs[0].dtype is not DataType.VARCHAR:
        raise invalid("BM25 function input field must be a VARCHAR/TEXT field")
    if not analyzer_enabled(inputs[0]):
        raise invalid("BM25 function input field must set enable_analyzer to true")
    if len(outputs) != 1 or outputs[0].dtype is not DataType.SPARSE_FLOAT_VECTOR:
        got = outputs[0].dtype.name if outputs else "none"
        raise invalid(f"BM25 function output field must be a SparseFloatVector field, but got {got}")


def _field(schema: CollectionSchema, function: FunctionSchema, name: str, role: str) -> FieldSchema:
    field = schema.field(name)
    if field is None:
        raise invalid(f"function {role} field not found: {name}, function: {function.name}")
    return field


def check_text_schema(schema: CollectionSchema) -> None:
    check_text_fields(schema)
    check_functions(schema)


def with_bm25_metric(
    schema: CollectionSchema, field: FieldSchema, params: Mapping[str, str]
) -> dict[str, str]:
    """CreateIndex params with Milvus's BM25 rule: a BM25 output field is indexed with metric
    BM25 (the default there), and only such a field may be."""
    merged = dict(params)
    nested = merged.get("params")
    inner = json.loads(nested) if isinstance(nested, str) and nested.strip().startswith("{") else {}
    metric = str(merged.get("metric_type") or inner.get("metric_type") or "").upper()
    if field.name in bm25_output_names(schema.functions):
        if not metric:
            merged["metric_type"] = "BM25"
        elif metric != "BM25":
            raise invalid(f"BM25 function output field only supports BM25 metric type, but got {metric}")
    elif metric == "BM25":
        raise invalid("only BM25 Function output field support BM25 metric type")
    return merged
