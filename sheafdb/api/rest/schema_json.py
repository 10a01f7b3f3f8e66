"""Collection schemas and index parameters as REST v2 writes and reads them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sheafdb.api.rest.function_json import functions_from_json, functions_json
from sheafdb.engine.models import CollectionInfo, ConsistencyLevel, IndexInfo, LoadState
from sheafdb.errors import ParameterInvalid, RestParameterMissing
from sheafdb.schema import CollectionSchema, DataType, FieldSchema

# Milvus's proto enum names, case-sensitive on the wire.
TYPE_NAMES: Mapping[DataType, str] = {
    DataType.BOOL: "Bool",
    DataType.INT8: "Int8",
    DataType.INT16: "Int16",
    DataType.INT32: "Int32",
    DataType.INT64: "Int64",
    DataType.FLOAT: "Float",
    DataType.DOUBLE: "Double",
    DataType.STRING: "String",
    DataType.VARCHAR: "VarChar",
    DataType.ARRAY: "Array",
    DataType.JSON: "JSON",
    DataType.TIMESTAMPTZ: "Timestamptz",
    DataType.BINARY_VECTOR: "BinaryVector",
    DataType.FLOAT_VECTOR: "FloatVector",
    DataType.FLOAT16_VECTOR: "Float16Vector",
    DataType.BFLOAT16_VECTOR: "BFloat16Vector",
    DataType.SPARSE_FLOAT_VECTOR: "SparseFloatVector",
    DataType.INT8_VECTOR: "Int8Vector",
}
_TYPES_BY_NAME = {name: dtype for dtype, name in TYPE_NAMES.items()}

LOAD_STATE_NAMES: Mapping[LoadState, str] = {
    LoadState.NOT_EXIST: "LoadStateNotExist",
    LoadState.NOT_LOAD: "LoadStateNotLoad",
    LoadState.LOADING: "LoadStateLoading",
    LoadState.LOADED: "LoadStateLoaded",
}

CONSISTENCY_NAMES: Mapping[str, ConsistencyLevel] = {
    level.name.capitalize(): level for level in ConsistencyLevel
}

# Type params that become FieldSchema attributes; the rest pass through as strings.
_TYPED_PARAMS = ("dim", "max_length", "max_capacity")


def consistency_level(name: str | None) -> ConsistencyLevel:
    if not name:
        return ConsistencyLevel.BOUNDED
    level = CONSISTENCY_NAMES.get(name)
    if level is None:
        raise ParameterInvalid(
            "consistencyLevel can only be [Strong, Session, Bounded, Eventually, Customized], "
            "default: Bounded, "
            f"err:{name} is not a valid consistency level"
        )
    return level


def data_type(name: Any) -> DataType:
    dtype = _TYPES_BY_NAME.get(str(name))
    if dtype is None:
        raise ParameterInvalid(f"invalid parameter, data type {name} is invalid(case sensitive).")
    return dtype


def _int_param(params: Mapping[str, Any], key: str) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ParameterInvalid(f"{key} must be an integer, got {value!r}: invalid parameter") from None


def field_from_json(spec: Mapping[str, Any], auto_id: bool) -> FieldSchema:
    name = spec.get("fieldName")
    if not name or spec.get("dataType") is None:
        raise RestParameterMissing("missing required parameters, error: fieldName and dataType are required")
    params = dict(spec.get("elementTypeParams") or {})
    if spec["dataType"] == STRUCT_ARRAY_TYPE or (
        spec["dataType"] == "Array" and spec.get("elementDataType") == STRUCT_ELEMENT_TYPE
    ):
        return _struct_from_json(str(name), spec, params)
    is_primary = bool(spec.get("isPrimary", False))
    element = spec.get("elementDataType")
    return FieldSchema(
        name=str(name),
        dtype=data_type(spec["dataType"]),
        description=str(spec.get("description", "")),
        is_primary=is_primary,
        auto_id=auto_id and is_primary,
        dim=_int_param(params, "dim"),
        max_length=_int_param(params, "max_length"),
        element_type=None if element is None else data_type(element),
        max_capacity=_int_param(params, "max_capacity"),
        nullable=bool(spec.get("nullable", False)),
        default_value=spec.get("defaultValue"),
        is_partition_key=bool(spec.get("isPartitionKey", False)),
        is_clustering_key=bool(spec.get("isClusteringKey", False)),
        type_params={k: _text(v) for k, v in params.items() if k not in _TYPED_PARAMS},
    )


# A struct array field: ``Array`` of ``Struct`` (or ``ArrayOfStruct``) with its sub-fields
# under ``fields``, ``max_capacity`` in ``elementTypeParams`` (or ``typeParams``).
STRUCT_ARRAY_TYPE = "ArrayOfStruct"
STRUCT_ELEMENT_TYPE = "Struct"


def _struct_from_json(name: str, spec: Mapping[str, Any], params: Mapping[str, Any]) -> FieldSchema:
    subs = spec.get("fields", spec.get("structFields"))
    if not isinstance(subs, list):
        raise RestParameterMissing(f"missing required parameters, error: fields of struct array field {name}")
    merged = {**dict(spec.get("typeParams") or {}), **params}
    return FieldSchema(
        name=name,
        dtype=DataType.ARRAY_OF_STRUCT,
        description=str(spec.get("description", "")),
        max_capacity=_int_param(merged, "max_capacity"),
        nullable=bool(spec.get("nullable", False)),
        default_value=spec.get("defaultValue"),
        struct_fields=tuple(field_from_json(sub, False) for sub in subs if isinstance(sub, Mapping)),
    )


def schema_from_json(spec: Mapping[str, Any], params: Mapping[str, Any]) -> CollectionSchema:
    auto_id = bool(spec.get("autoID", spec.get("autoId", False)))
    fields = spec.get("fields")
    if not isinstance(fields, list) or not fields:
        raise RestParameterMissing("missing required parameters, error: schema.fields is required")
    dynamic = spec.get("enableDynamicField", params.get("enableDynamicField", False))
    return CollectionSchema(
        fields=tuple(field_from_json(f, auto_id) for f in fields),
        description=str(spec.get("description", "")),
        enable_dynamic_field=_truthy(dynamic),
        functions=functions_from_json(spec.get("functions")),
    )


def quick_schema(body: Mapping[str, Any], params: Mapping[str, Any]) -> CollectionSchema:
    """Quick mode: a primary key, one float vector and (by default) the dynamic field."""
    dimension = body.get("dimension")
    if not dimension:
        raise ParameterInvalid(
            "dimension is required for quickly create collection(default metric type: COSINE)"
        )
    id_type = body.get("idType") or "Int64"
    if id_type not in ("Int64", "VarChar"):
        raise ParameterInvalid("idType can only be [Int64, VarChar], default: Int64")
    max_length = _int_param(params, "max_length") or 65535 if id_type == "VarChar" else None
    pk = FieldSchema(
        name=str(body.get("primaryFieldName") or "id"),
        dtype=data_type(id_type),
        is_primary=True,
        auto_id=bool(body.get("autoID", body.get("autoId", False))),
        max_length=max_length,
    )
    vector = FieldSchema(
        name=str(body.get("vectorFieldName") or "vector"), dtype=DataType.FLOAT_VECTOR, dim=int(dimension)
    )
    return CollectionSchema(
        fields=(pk, vector),
        description=str(body.get("description", "")),
        enable_dynamic_field=_truthy(params.get("enableDynamicField", True)),
    )


def index_params(spec: Mapping[str, Any]) -> dict[str, str]:
    """One ``indexParams`` entry as the key/value pairs pymilvus sends to CreateIndex."""
    build = dict(spec.get("params") or {})
    index_type = spec.get("indexType") or build.pop("index_type", None) or "AUTOINDEX"
    build.pop("index_type", None)
    metric = spec.get("metricType") or build.pop("metric_type", None)
    build.pop("metric_type", None)
    params = {"index_type": str(index_type)}
    if metric:
        params["metric_type"] = str(metric)
    if build:
        params["params"] = json.dumps(build)
    return params


def describe_json(info: CollectionInfo, indexes: list[IndexInfo], load: LoadState) -> dict[str, Any]:
    return {
        "collectionName": info.name,
        "collectionID": info.collection_id,
        "description": info.schema.description,
        "autoId": info.schema.auto_id,
        "fields": [_field_json(f, info.schema.is_function_output(f.name)) for f in info.schema.fields],
        "functions": functions_json(info.schema),
        "aliases": list(info.aliases),
        "indexes": [
            {
                "fieldName": i.field_name,
                "indexName": i.index_name,
                "metricType": i.params.get("metric_type", ""),
            }
            for i in indexes
        ],
        "load": LOAD_STATE_NAMES[load],
        "shardsNum": info.shards_num,
        "partitionsNum": info.num_partitions,
        "consistencyLevel": info.consistency_level.name.capitalize(),
        "enableDynamicField": info.schema.enable_dynamic_field,
        "properties": [{"key": k, "value": v} for k, v in info.properties.items()],
    }


def _field_json(f: FieldSchema, is_function_output: bool) -> dict[str, Any]:
    typed = (("dim", f.dim), ("max_length", f.max_length), ("max_capacity", f.max_capacity))
    params = [{"key": k, "value": str(v)} for k, v in typed if v is not None]
    params += [{"key": k, "value": v} for k, v in f.type_params.items()]
    if f.dtype is DataType.ARRAY_OF_STRUCT:
        return {
            "name": f.name,
            "id": f.field_id,
            "type": "Array",
            "elementType": STRUCT_ELEMENT_TYPE,
            "nullable": f.nullable,
            "description": f.description,
            "params": params,
            "fields": [_field_json(sub, False) for sub in f.struct_fields],
        }
    out: dict[str, Any] = {
        "name": f.name,
        "id": f.field_id,
        "type": TYPE_NAMES[f.dtype],
        "primaryKey": f.is_primary,
        "partitionKey": f.is_partition_key,
        "clusteringKey": f.is_clustering_key,
        "autoId": f.auto_id,
        "nullable": f.nullable,
        "description": f.description,
        "params": params,
    }
    if f.element_type is not None:
        out["elementType"] = TYPE_NAMES[f.element_type]
    if f.default_value is not None:
        out["defaultValue"] = f.default_value
    if is_function_output:
        out["isFunctionOutput"] = True
    return out


def index_json(i: IndexInfo) -> dict[str, Any]:
    return {
        "indexName": i.index_name,
        "fieldName": i.field_name,
        "indexType": i.params.get("index_type", ""),
        "metricType": i.params.get("metric_type", ""),
        "totalRows": i.total_rows,
        "pendingRows": i.pending_index_rows,
        "indexedRows": i.indexed_rows,
        "indexState": i.state.name.title().replace("_", ""),
        "failReason": i.fail_reason,
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)
