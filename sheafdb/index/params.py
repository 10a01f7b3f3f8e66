"""Index and search parameters: Milvus's wire strings -> a validated, typed ``IndexSpec``.

pymilvus sends build parameters as string key/values, flattened (``{"index_type": "HNSW",
"metric_type": "L2", "M": "16"}``) or with a ``"params"`` JSON object; both are accepted and
merged (JSON keys win, as in Milvus's proxy). The spec keeps what the user asked for, typed;
defaults are filled in at build time, so ``describe_index_params`` reports the user's params
as Milvus's DescribeIndex does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sheafdb import strict_json
from sheafdb.errors import ParameterInvalid, UnexpectedError
from sheafdb.index import metrics
from sheafdb.schema import DataType, FieldSchema

AUTOINDEX = "AUTOINDEX"
FLOAT_INDEX_TYPES = ("FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW", "HNSW_SQ", "HNSW_PQ")
BINARY_INDEX_TYPES = ("BIN_FLAT", "BIN_IVF_FLAT")
SPARSE_INDEX_TYPES = ("SPARSE_INVERTED_INDEX", "SPARSE_WAND")

# What AUTOINDEX builds: Milvus's own autoindex defaults (HNSW M=18 efConstruction=240 for
# dense vectors), exact BIN_FLAT for binary vectors (segments are small enough that exact
# hamming beats IVF training) and the inverted index for sparse vectors.
AUTOINDEX_DENSE = ("HNSW", {"M": 18, "efConstruction": 240})
AUTOINDEX_BINARY = ("BIN_FLAT", {})
AUTOINDEX_SPARSE = ("SPARSE_INVERTED_INDEX", {})

# Build defaults when the user leaves a parameter out (knowhere's defaults).
BUILD_DEFAULTS: Mapping[str, Any] = {
    "nlist": 128,
    "M": 30,
    "efConstruction": 360,
    "nbits": 8,
    "sq_type": "SQ8",
    "drop_ratio_build": 0.0,
}
DEFAULT_NPROBE = 8
MIN_DEFAULT_EF = 16
INT32_MAX = 2**31 - 1

_DENSE_FLOAT_TYPES = frozenset(
    {DataType.FLOAT_VECTOR, DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR, DataType.INT8_VECTOR}
)
# Milvus's schemapb names, used in its messages.
_TYPE_NAMES = {
    DataType.FLOAT_VECTOR: "FloatVector",
    DataType.FLOAT16_VECTOR: "Float16Vector",
    DataType.BFLOAT16_VECTOR: "BFloat16Vector",
    DataType.INT8_VECTOR: "Int8Vector",
    DataType.BINARY_VECTOR: "BinaryVector",
    DataType.SPARSE_FLOAT_VECTOR: "SparseFloatVector",
}
# Keys Milvus strips from index params (they belong to the field's type params).
_TYPE_PARAM_KEYS = frozenset({"dim", "max_length"})


@dataclass(frozen=True)
class _Param:
    """One build or search parameter: its type and the values Milvus accepts."""

    name: str
    kind: type  # int, float, str or bool
    low: float | None = None
    high: float | None = None
    high_inclusive: bool = True
    choices: tuple[str, ...] = ()

    def coerce(self, raw: Any) -> Any:
        if self.kind is bool:
            return _as_bool(self.name, raw)
        if self.kind is str:
            text = str(raw)
            if self.choices and text.upper() not in self.choices:
                raise _invalid_params(f"param '{self.name}' ({text}) should be one of {list(self.choices)}")
            return text.upper() if self.choices else text
        value = _as_number(self.name, raw, integer=self.kind is int)
        too_high = self.high is not None and (
            value > self.high if self.high_inclusive else value >= self.high
        )
        if (self.low is not None and value < self.low) or too_high:
            closing = "]" if self.high_inclusive else ")"
            low, high = _fmt(self.low), _fmt(self.high)
            raise _invalid_params(f"param '{self.name}' ({raw}) should be in range [{low}, {high}{closing}")
        return value


_NLIST = _Param("nlist", int, 1, 65536)
_M = _Param("M", int, 2, 2048)
_EF_CONSTRUCTION = _Param("efConstruction", int, 1, INT32_MAX)
_PQ_M = _Param("m", int, 1, 65536)
_NBITS = _Param("nbits", int, 1, 16)
_SQ_TYPE = _Param("sq_type", str, choices=("SQ4U", "SQ6", "SQ8", "BF16", "FP16"))
# Accepted for compatibility and reported back; faiss searches the quantized codes unrefined.
_REFINE = _Param("refine", bool)
_REFINE_TYPE = _Param("refine_type", str, choices=("SQ6", "SQ8", "BF16", "FP16", "FLAT"))
_DROP_RATIO_BUILD = _Param("drop_ratio_build", float, 0.0, 1.0, high_inclusive=False)
_INVERTED_ALGO = _Param("inverted_index_algo", str, choices=("TAAT_NAIVE", "DAAT_WAND", "DAAT_MAXSCORE"))

_BUILD_PARAMS: Mapping[str, tuple[_Param, ...]] = {
    "FLAT": (),
    "IVF_FLAT": (_NLIST,),
    "IVF_SQ8": (_NLIST,),
    "IVF_PQ": (_NLIST, _PQ_M, _NBITS),
    "HNSW": (_M, _EF_CONSTRUCTION),
    "HNSW_SQ": (_M, _EF_CONSTRUCTION, _SQ_TYPE, _REFINE, _REFINE_TYPE),
    "HNSW_PQ": (_M, _EF_CONSTRUCTION, _PQ_M, _NBITS, _REFINE, _REFINE_TYPE),
    "BIN_FLAT": (),
    "BIN_IVF_FLAT": (_NLIST,),
    "SPARSE_INVERTED_INDEX": (_DROP_RATIO_BUILD, _INVERTED_ALGO),
    "SPARSE_WAND": (_DROP_RATIO_BUILD, _INVERTED_ALGO),
    AUTOINDEX: (),
}

_EF = _Param("ef", int, 1, INT32_MAX)
_NPROBE = _Param("nprobe", int, 1, 65536)
_RADIUS = _Param("radius", float)
_RANGE_FILTER = _Param("range_filter", float)
_DROP_RATIO_SEARCH = _Param("drop_ratio_search", float, 0.0, 1.0, high_inclusive=False)


@dataclass(frozen=True)
class IndexSpec:
    """A validated index definition. ``params`` holds the user's build params, typed."""

    index_type: str
    metric_type: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchParams:
    """Search-time knobs, validated; ``None`` means "not given"."""

    ef: int | None = None
    nprobe: int = DEFAULT_NPROBE
    radius: float | None = None
    range_filter: float | None = None
    drop_ratio_search: float = 0.0

    def ef_for(self, k: int) -> int:
        """HNSW's beam width: knowhere defaults it to max(k, 16) and rejects ef < k."""
        if self.ef is None:
            return max(k, MIN_DEFAULT_EF)
        if self.ef < k:
            raise UnexpectedError(f"ef({self.ef}) should be larger than k({k})")
        return self.ef


def parse_index_params(field_schema: FieldSchema, params: Mapping[str, str]) -> IndexSpec:
    """Validate CreateIndex params for ``field_schema``; raise ParameterInvalid as Milvus does."""
    merged = _flatten(params)
    index_type = str(merged.pop("index_type", "") or AUTOINDEX).upper()
    metric_raw = merged.pop("metric_type", None)
    if index_type not in _BUILD_PARAMS:
        raise ParameterInvalid(
            f"invalid index type: {index_type}: invalid parameter"
            f"[expected=valid index][actual=invalid index type: {index_type}]"
        )
    dtype = field_schema.dtype
    if not dtype.is_vector:
        raise _invalid_params(f"data type {dtype.name} can't build with this index {index_type}")
    _check_data_type(dtype, index_type)
    metric = str(metric_raw).upper() if metric_raw not in (None, "") else _default_metric(dtype)
    _check_metric(dtype, index_type, metric)
    if index_type == AUTOINDEX and merged:
        raise _invalid_params("only metric type can be passed when use AutoIndex")
    known = {p.name: p for p in _BUILD_PARAMS[index_type]}
    typed: dict[str, Any] = {}
    for key, raw in merged.items():
        typed[key] = known[key].coerce(raw) if key in known else str(raw)
    if "m" in typed and index_type in ("IVF_PQ", "HNSW_PQ"):
        dim = field_schema.dim or 0
        if dim % typed["m"] != 0:
            raise _invalid_params(
                f"dimension must be able to be divided by `m`, dimension: {dim}, m: {typed['m']}"
            )
    return IndexSpec(index_type=index_type, metric_type=metric, params=typed)


def describe_index_params(spec: IndexSpec) -> dict[str, str]:
    """What DescribeIndex reports: index_type, metric_type and the user's params, as strings."""
    described = {"index_type": spec.index_type, "metric_type": spec.metric_type}
    for key, value in spec.params.items():
        described[key] = _to_wire(value)
    return described


def resolve_build(spec: IndexSpec, dtype_family: str) -> tuple[str, dict[str, Any]]:
    """The concrete index type and full build params (defaults filled) that a spec builds."""
    if spec.index_type == AUTOINDEX:
        base_type, base = {
            "dense": AUTOINDEX_DENSE,
            "binary": AUTOINDEX_BINARY,
            "sparse": AUTOINDEX_SPARSE,
        }[dtype_family]
        return base_type, {**BUILD_DEFAULTS, **base}
    return spec.index_type, {**BUILD_DEFAULTS, **spec.params}


# Requests repeat the same few params: their parse is kept by the params' items and types
# (True == 1, but only 1 is a valid ef) when hashable (a nested dict is not: parsed every
# time). SearchParams is frozen, so readers share it. No lock: dict get/set are atomic under
# the GIL and two racing parses of one key store equal values. Bounded: cleared when full.
_SEARCH_PARAMS_CACHE: dict[tuple[tuple[str, type, Any], ...], SearchParams] = {}
_SEARCH_PARAMS_CACHE_SIZE = 256


def parse_search_params(params: Mapping[str, Any]) -> SearchParams:
    """Typed search params from a request's (already JSON-decoded) params; unknown keys ignored."""
    try:
        key = tuple((name, type(value), value) for name, value in params.items())
        cached = _SEARCH_PARAMS_CACHE.get(key)
    except TypeError:  # an unhashable value (a nested dict)
        return _parse_search_params(params)
    if cached is None:
        cached = _parse_search_params(params)
        if len(_SEARCH_PARAMS_CACHE) >= _SEARCH_PARAMS_CACHE_SIZE:
            _SEARCH_PARAMS_CACHE.clear()
        _SEARCH_PARAMS_CACHE[key] = cached
    return cached


def _parse_search_params(params: Mapping[str, Any]) -> SearchParams:
    flat = _flatten(params)

    def get(p: _Param) -> Any:
        raw = flat.get(p.name)
        return None if raw is None or raw == "" else p.coerce(raw)

    nprobe = get(_NPROBE)
    drop = get(_DROP_RATIO_SEARCH)
    return SearchParams(
        ef=get(_EF),
        nprobe=DEFAULT_NPROBE if nprobe is None else nprobe,
        radius=get(_RADIUS),
        range_filter=get(_RANGE_FILTER),
        drop_ratio_search=0.0 if drop is None else drop,
    )


def family_of(dtype: DataType) -> str:
    """'dense', 'binary' or 'sparse': which index types and metrics a vector type takes."""
    if dtype in _DENSE_FLOAT_TYPES:
        return "dense"
    if dtype is DataType.BINARY_VECTOR:
        return "binary"
    if dtype is DataType.SPARSE_FLOAT_VECTOR:
        return "sparse"
    raise _invalid_params(f"data type {dtype.name} is not a vector type")


def family_of_spec(spec: IndexSpec) -> str:
    """The vector family a spec was validated for (AUTOINDEX: read from its metric)."""
    if spec.index_type in BINARY_INDEX_TYPES or spec.metric_type in metrics.BINARY_METRICS:
        return "binary"
    if spec.index_type in SPARSE_INDEX_TYPES:
        return "sparse"
    return "dense"


def _check_data_type(dtype: DataType, index_type: str) -> None:
    allowed = {
        "dense": FLOAT_INDEX_TYPES,
        "binary": BINARY_INDEX_TYPES,
        "sparse": SPARSE_INDEX_TYPES,
    }[family_of(dtype)]
    if index_type != AUTOINDEX and index_type not in allowed:
        raise _invalid_params(f"data type {_TYPE_NAMES[dtype]} can't build with this index {index_type}")


def _check_metric(dtype: DataType, index_type: str, metric: str) -> None:
    family = family_of(dtype)
    if family == "sparse":
        if metric not in metrics.SPARSE_METRICS:
            raise _invalid_params("only IP is the supported metric type for sparse index")
        return
    if family == "dense":
        supported = metrics.FLOAT_METRICS
    elif index_type == "BIN_IVF_FLAT":
        supported = metrics.BIN_IVF_METRICS  # Milvus: the structure metrics are BIN_FLAT's alone
    else:
        supported = metrics.BINARY_METRICS
    if metric not in supported:
        listed = " ".join(supported)
        raise _invalid_params(f"metric type {metric} not found or not supported, supported: [{listed}]")


def _default_metric(dtype: DataType) -> str:
    # Milvus's SetDefaultMetricTypeIfNotExist: COSINE for dense (and int8), IP sparse, HAMMING binary.
    return {"dense": metrics.COSINE, "binary": metrics.HAMMING, "sparse": metrics.IP}[family_of(dtype)]


def _flatten(params: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a ``"params"`` JSON object (or dict) into the flat keys; drop type params."""
    merged: dict[str, Any] = {}
    nested: Any = None
    for key, value in params.items():
        if key == "params":
            nested = value
        elif key not in _TYPE_PARAM_KEYS:
            merged[key] = value
    if isinstance(nested, str) and nested.strip():
        try:
            nested = strict_json.loads_bounded(nested)
        except strict_json.JsonRefused as exc:
            raise ParameterInvalid(f"params is not valid JSON: {exc}: invalid parameter") from None
    if isinstance(nested, Mapping):
        merged.update({k: v for k, v in nested.items() if k not in _TYPE_PARAM_KEYS})
    return merged


def _as_number(name: str, raw: Any, *, integer: bool) -> int | float:
    if isinstance(raw, bool):
        raise _invalid_params(f"param '{name}' ({raw}) should be a number")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        kind = "integer" if integer else "number"
        raise _invalid_params(f"wrong data type in json, param '{name}' ({raw}) should be {kind}") from None
    if not integer:
        return value
    if not value.is_integer():
        raise _invalid_params(f"wrong data type in json, param '{name}' ({raw}) should be integer")
    return int(value)


def _as_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise _invalid_params(f"wrong data type in json, param '{name}' ({raw}) should be boolean")


def _to_wire(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _fmt(bound: float | None) -> str:
    if bound is None:
        return "inf"
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _invalid_params(detail: str) -> ParameterInvalid:
    """Milvus's wrap of a build-param check failure (proxy ``checkTrain``)."""
    return ParameterInvalid(
        f"{detail}: invalid parameter[expected=valid index params][actual=invalid index params]"
    )
