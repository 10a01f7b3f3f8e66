"""The typed filter plan: what the planner builds from a syntax tree and the evaluator runs.

Every name is resolved (schema field, JSON path, dynamic key), every literal has its Arrow
type, and every JSON path says which typed projection of the JSON values it reads, so the
evaluator never has to guess types per row.

Null semantics (Milvus's): a predicate over a nullable field is three-valued and a null
result counts as false at the end (so ``not (x > 1)`` is false where ``x`` is null). A
predicate that reads JSON is two-valued: a missing key or a value of another type makes it
false, except ``!=`` which is then true (``not`` flips it, as Milvus's bitsets do).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pyarrow as pa

JsonPath = tuple[str | int, ...]


class JsonView(enum.Enum):
    """A typed projection of the values at one JSON path (null where the value is not of the type)."""

    NUMBER = "number"  # float64: JSON integers and floats (not booleans)
    STRING = "string"
    BOOL = "bool"
    LIST = "list"  # list<string>: each element as a type-tagged token (see json_column.element_token)
    EXISTS = "exists"  # bool, never null: the key is present and its value is not JSON null


# -- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldColumn:
    """A schema field's column as stored (scalar, ARRAY or whole JSON text)."""

    name: str


@dataclass(frozen=True)
class JsonValue:
    column: str  # a JSON field or "$meta"
    path: JsonPath
    view: JsonView


@dataclass(frozen=True)
class ArrayElement:
    """``arr[i]`` of an ARRAY field; null where the array is shorter."""

    column: str
    index: int


@dataclass(frozen=True)
class ArrayLength:
    source: FieldColumn | JsonValue  # an ARRAY field or a JsonValue with the LIST view


@dataclass(frozen=True)
class Const:
    value: object
    arrow_type: pa.DataType


@dataclass(frozen=True)
class Arithmetic:
    op: str  # + - * / % **
    left: Value
    right: Value


Value = FieldColumn | JsonValue | ArrayElement | ArrayLength | Const | Arithmetic


# -- predicates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    op: str  # == != < <= > >=
    left: Value
    right: Value
    reads_json: bool


@dataclass(frozen=True)
class IsIn:
    operand: Value
    values: tuple[object, ...]
    arrow_type: pa.DataType  # the type both the operand and the values are compared in
    reads_json: bool


@dataclass(frozen=True)
class Like:
    operand: Value
    pattern: str
    reads_json: bool


@dataclass(frozen=True)
class IsNull:
    """``is null`` of a field (or, negated, ``is not null``); JSON paths use JsonView.EXISTS."""

    operand: FieldColumn | JsonValue
    negate: bool


@dataclass(frozen=True)
class Contains:
    """``array_contains`` / ``json_contains`` and their ``_all`` / ``_any`` forms."""

    source: FieldColumn | JsonValue  # an ARRAY field or a JsonValue with the LIST view
    values: tuple[object, ...]
    arrow_type: pa.DataType  # type of the list elements the values are compared with
    mode: str  # "one", "all" or "any"


@dataclass(frozen=True)
class Truth:
    """A boolean value used as a predicate (a BOOL field, or a JSON bool)."""

    operand: Value
    reads_json: bool


@dataclass(frozen=True)
class Constant:
    value: bool


@dataclass(frozen=True)
class And:
    operands: tuple[Predicate, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Predicate, ...]


@dataclass(frozen=True)
class Not:
    operand: Predicate


@dataclass(frozen=True)
class Sample:
    """``random_sample(factor)``: keeps each row with probability ``factor``."""

    factor: float


Predicate = Compare | IsIn | Like | IsNull | Contains | Truth | Constant | And | Or | Not | Sample
