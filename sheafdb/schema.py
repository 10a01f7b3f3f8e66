"""The collection schema: Milvus's data types and how each one is laid out in Arrow.

This is the one model of a schema that every layer shares: the API layers translate protobuf
and JSON into it, the catalog stores it (``to_dict``/``from_dict``), segment files and
in-memory batches use ``arrow_type`` for their columns.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from sheafdb.schema_functions import FunctionSchema, function_output_names

# The dynamic field: a JSON column holding every key that the schema does not define.
DYNAMIC_FIELD = "$meta"
# Hidden per-row column: the hybrid timestamp at which the row was inserted.
TIMESTAMP_COLUMN = "__ts"


class DataType(enum.IntEnum):
    """Milvus's ``schema.DataType`` numbers (identical on the wire)."""

    NONE = 0
    BOOL = 1
    INT8 = 2
    INT16 = 3
    INT32 = 4
    INT64 = 5
    FLOAT = 10
    DOUBLE = 11
    STRING = 20
    VARCHAR = 21
    ARRAY = 22
    JSON = 23
    # An absolute time, stored as int64 UTC microseconds (ISO 8601 text on the wire).
    TIMESTAMPTZ = 26
    BINARY_VECTOR = 100
    FLOAT_VECTOR = 101
    FLOAT16_VECTOR = 102
    BFLOAT16_VECTOR = 103
    SPARSE_FLOAT_VECTOR = 104
    INT8_VECTOR = 105
    # An ARRAY of STRUCT (a "struct array" field): its sub-fields are in ``struct_fields``.
    ARRAY_OF_STRUCT = 200

    @property
    def is_vector(self) -> bool:
        return 100 <= self.value < 200

    @property
    def is_dense_vector(self) -> bool:
        return self.is_vector and self is not DataType.SPARSE_FLOAT_VECTOR

    @property
    def is_integer(self) -> bool:
        return self in (DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64)

    @property
    def is_scalar(self) -> bool:
        return not self.is_vector


# Element types an ARRAY field may hold.
ARRAY_ELEMENT_TYPES = frozenset(
    {
        DataType.BOOL,
        DataType.INT8,
        DataType.INT16,
        DataType.INT32,
        DataType.INT64,
        DataType.FLOAT,
        DataType.DOUBLE,
        DataType.VARCHAR,
    }
)

_SCALAR_ARROW: dict[DataType, pa.DataType] = {
    DataType.BOOL: pa.bool_(),
    DataType.INT8: pa.int8(),
    DataType.INT16: pa.int16(),
    DataType.INT32: pa.int32(),
    DataType.INT64: pa.int64(),
    DataType.FLOAT: pa.float32(),
    DataType.DOUBLE: pa.float64(),
    DataType.VARCHAR: pa.string(),
    DataType.STRING: pa.string(),
    # JSON is kept as its UTF-8 text; filters parse it once per load, not per request.
    DataType.JSON: pa.string(),
    DataType.TIMESTAMPTZ: pa.int64(),
}

# A sparse vector: the non-zero (index, value) pairs of one row.
SPARSE_ARROW_TYPE = pa.list_(pa.struct([("index", pa.uint32()), ("value", pa.float32())]))


@dataclass(frozen=True)
class FieldSchema:
    name: str
    dtype: DataType
    field_id: int = 0
    description: str = ""
    is_primary: bool = False
    auto_id: bool = False
    # Vector dimension (dense vectors only).
    dim: int | None = None
    # VARCHAR (and ARRAY of VARCHAR) maximum length in bytes.
    max_length: int | None = None
    element_type: DataType | None = None
    max_capacity: int | None = None
    nullable: bool = False
    # A Python value of the field's type; ``None`` means no default.
    default_value: Any = None
    is_partition_key: bool = False
    is_clustering_key: bool = False
    # Any other type params Milvus passes through (``mmap.enabled``, analyzers ...), as strings.
    type_params: Mapping[str, str] = field(default_factory=dict)
    # ARRAY_OF_STRUCT only: the struct's sub-fields, each with its element type (a scalar or
    # FLOAT_VECTOR) as ``dtype``; the field's ``max_capacity`` bounds the elements per row.
    struct_fields: tuple[FieldSchema, ...] = ()

    @property
    def is_vector(self) -> bool:
        return self.dtype.is_vector

    def arrow_type(self) -> pa.DataType:
        """The Arrow type of this field's column in batches and segment files."""
        dtype = self.dtype
        if dtype in _SCALAR_ARROW:
            return _SCALAR_ARROW[dtype]
        if dtype is DataType.ARRAY:
            assert self.element_type is not None
            return pa.list_(_SCALAR_ARROW[self.element_type])
        if dtype is DataType.ARRAY_OF_STRUCT:
            # One list of struct elements per row: every sub-field is a child of the struct.
            return pa.list_(pa.struct([pa.field(s.name, s.arrow_type()) for s in self.struct_fields]))
        if dtype is DataType.FLOAT_VECTOR:
            return pa.list_(pa.float32(), self._require_dim())
        if dtype is DataType.INT8_VECTOR:
            return pa.list_(pa.int8(), self._require_dim())
        if dtype in (DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR):
            # Raw little-endian 16-bit values; numpy views them without a copy.
            return pa.binary(2 * self._require_dim())
        if dtype is DataType.BINARY_VECTOR:
            return pa.binary(self._require_dim() // 8)
        if dtype is DataType.SPARSE_FLOAT_VECTOR:
            return SPARSE_ARROW_TYPE
        raise ValueError(f"no Arrow layout for data type {dtype.name}")

    def _require_dim(self) -> int:
        if self.dim is None:
            raise ValueError(f"vector field {self.name} has no dim")
        return self.dim

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": int(self.dtype),
            "field_id": self.field_id,
            "description": self.description,
            "is_primary": self.is_primary,
            "auto_id": self.auto_id,
            "dim": self.dim,
            "max_length": self.max_length,
            "element_type": None if self.element_type is None else int(self.element_type),
            "max_capacity": self.max_capacity,
            "nullable": self.nullable,
            "default_value": self.default_value,
            "is_partition_key": self.is_partition_key,
            "is_clustering_key": self.is_clustering_key,
            "type_params": dict(self.type_params),
            **({"struct_fields": [s.to_dict() for s in self.struct_fields]} if self.struct_fields else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FieldSchema:
        element = d.get("element_type")
        return cls(
            name=d["name"],
            dtype=DataType(d["dtype"]),
            field_id=d.get("field_id", 0),
            description=d.get("description", ""),
            is_primary=d.get("is_primary", False),
            auto_id=d.get("auto_id", False),
            dim=d.get("dim"),
            max_length=d.get("max_length"),
            element_type=None if element is None else DataType(element),
            max_capacity=d.get("max_capacity"),
            nullable=d.get("nullable", False),
            default_value=d.get("default_value"),
            is_partition_key=d.get("is_partition_key", False),
            is_clustering_key=d.get("is_clustering_key", False),
            type_params=dict(d.get("type_params", {})),
            struct_fields=tuple(cls.from_dict(s) for s in d.get("struct_fields", ())),
        )


def struct_path(struct_name: str, sub_name: str) -> str:
    """A struct array sub-field as Milvus names it in indexes, searches and outputs."""
    return f"{struct_name}[{sub_name}]"


def split_struct_path(name: str) -> tuple[str, str] | None:
    """``("chunks", "emb")`` for ``"chunks[emb]"``; None for any other name."""
    if not name.endswith("]") or "[" not in name:
        return None
    struct_name, _, sub = name[:-1].partition("[")
    return (struct_name, sub) if struct_name and sub and "[" not in sub else None


@dataclass(frozen=True)
class CollectionSchema:
    """A collection's fields in declaration order (``$meta`` is not among them)."""

    fields: tuple[FieldSchema, ...]
    description: str = ""
    enable_dynamic_field: bool = False
    # Functions the server runs (BM25): see schema_functions.py.
    functions: tuple[FunctionSchema, ...] = ()

    @property
    def primary_field(self) -> FieldSchema:
        for f in self.fields:
            if f.is_primary:
                return f
        raise ValueError("schema has no primary key")

    @property
    def auto_id(self) -> bool:
        return self.primary_field.auto_id

    @property
    def vector_fields(self) -> tuple[FieldSchema, ...]:
        return tuple(f for f in self.fields if f.is_vector)

    @property
    def partition_key_field(self) -> FieldSchema | None:
        return next((f for f in self.fields if f.is_partition_key), None)

    @property
    def clustering_key_field(self) -> FieldSchema | None:
        return next((f for f in self.fields if f.is_clustering_key), None)

    def field(self, name: str) -> FieldSchema | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def struct_vector_paths(self) -> tuple[str, ...]:
        """The vector sub-fields of struct array fields, as Milvus names them: ``struct[sub]``."""
        return tuple(struct_path(f.name, s.name) for f in self.fields for s in f.struct_fields if s.is_vector)

    def field_by_id(self, field_id: int) -> FieldSchema | None:
        return next((f for f in self.fields if f.field_id == field_id), None)

    def is_function_output(self, name: str) -> bool:
        return name in function_output_names(self.functions)

    def with_field(self, new_field: FieldSchema) -> CollectionSchema:
        return replace(self, fields=(*self.fields, new_field))

    def arrow_schema(self) -> pa.Schema:
        """Columns of a stored batch: every field, ``$meta`` if dynamic, then the row timestamp."""
        columns = [pa.field(f.name, f.arrow_type(), nullable=True) for f in self.fields]
        if self.enable_dynamic_field:
            columns.append(pa.field(DYNAMIC_FIELD, pa.string()))
        columns.append(pa.field(TIMESTAMP_COLUMN, pa.uint64(), nullable=False))
        return pa.schema(columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "enable_dynamic_field": self.enable_dynamic_field,
            "fields": [f.to_dict() for f in self.fields],
            **({"functions": [f.to_dict() for f in self.functions]} if self.functions else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CollectionSchema:
        return cls(
            fields=tuple(FieldSchema.from_dict(f) for f in d["fields"]),
            description=d.get("description", ""),
            enable_dynamic_field=d.get("enable_dynamic_field", False),
            functions=tuple(FunctionSchema.from_dict(f) for f in d.get("functions", ())),
        )
