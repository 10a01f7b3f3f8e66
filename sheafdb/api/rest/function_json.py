"""Schema functions (BM25) as REST v2 writes and reads them.

Create: ``schema.functions: [{name, type: "BM25", inputFieldNames, outputFieldNames, params,
description}]``. Describe: the same names plus the field ids, params as ``[{key, value}]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sheafdb.errors import ParameterInvalid
from sheafdb.schema import CollectionSchema
from sheafdb.schema_functions import FUNCTION_TYPE_NAMES, FunctionSchema, FunctionType

_TYPES_BY_NAME = {name.lower(): kind for kind, name in FUNCTION_TYPE_NAMES.items()}


def function_from_json(spec: Mapping[str, Any]) -> FunctionSchema:
    raw_type = spec.get("type", spec.get("functionType"))
    kind = _TYPES_BY_NAME.get(str(raw_type).lower())
    if kind is None or kind is FunctionType.UNKNOWN:
        raise ParameterInvalid(f"invalid parameter, function type {raw_type} is invalid")
    params = spec.get("params") or {}
    return FunctionSchema(
        name=str(spec.get("name", "")),
        type=kind,
        input_field_names=tuple(str(n) for n in spec.get("inputFieldNames") or ()),
        output_field_names=tuple(str(n) for n in spec.get("outputFieldNames") or ()),
        description=str(spec.get("description", "")),
        params={str(k): str(v) for k, v in params.items()},
    )


def functions_from_json(specs: Sequence[Mapping[str, Any]] | None) -> tuple[FunctionSchema, ...]:
    return tuple(function_from_json(spec) for spec in specs or ())


def functions_json(schema: CollectionSchema) -> list[dict[str, Any]]:
    def ids(names: tuple[str, ...]) -> list[int]:
        return [f.field_id for name in names if (f := schema.field(name)) is not None]

    return [
        {
            "name": f.name,
            "id": f.function_id,
            "description": f.description,
            "type": FUNCTION_TYPE_NAMES[f.type],
            "inputFieldNames": list(f.input_field_names),
            "inputFieldIds": ids(f.input_field_names),
            "outputFieldNames": list(f.output_field_names),
            "outputFieldIds": ids(f.output_field_names),
            "params": [{"key": k, "value": v} for k, v in f.params.items()],
        }
        for f in schema.functions
    ]
