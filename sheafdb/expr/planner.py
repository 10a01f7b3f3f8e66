"""Syntax tree + schema + filter params -> typed plan, with Milvus's checks and wording.

Names resolve to schema fields, JSON paths or (when the dynamic field is on) keys of
``$meta``; templates ``{name}`` take their values from the request; literal types are checked
against the fields they meet; constant sub-expressions are folded. Every refusal is a
ParameterInvalid (1100) that quotes the expression and says where.
"""

from __future__ import annotations

import enum
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from sheafdb.errors import ParameterInvalid
from sheafdb.expr import plan, syntax
from sheafdb.expr.arithmetic import apply_arithmetic
from sheafdb.expr.json_column import ViewKey, element_token
from sheafdb.schema import DYNAMIC_FIELD, CollectionSchema, DataType, FieldSchema
from sheafdb.text.analyzer import ANALYZER_PARAMS, ENABLE_MATCH, is_true

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ORDERING = ("<", "<=", ">", ">=")
# random_sample's factor must keep this far from 0 and 1 (Milvus's plan parser).
SAMPLE_EPSILON = 1e-10

_CONTAINS_MODES = {
    "json_contains": "one",
    "array_contains": "one",
    "json_contains_all": "all",
    "array_contains_all": "all",
    "json_contains_any": "any",
    "array_contains_any": "any",
}


class Kind(enum.Enum):
    INT = "Int64"
    FLOAT = "Double"
    STRING = "VarChar"
    BOOL = "Bool"
    JSON = "JSON"
    ARRAY = "Array"
    LIST = "Array"  # a literal list

    @property
    def is_numeric(self) -> bool:
        return self in (Kind.INT, Kind.FLOAT)


_KIND_OF_DTYPE = {
    DataType.BOOL: Kind.BOOL,
    DataType.INT8: Kind.INT,
    DataType.INT16: Kind.INT,
    DataType.INT32: Kind.INT,
    DataType.INT64: Kind.INT,
    DataType.FLOAT: Kind.FLOAT,
    DataType.DOUBLE: Kind.FLOAT,
    DataType.VARCHAR: Kind.STRING,
    DataType.STRING: Kind.STRING,
    DataType.JSON: Kind.JSON,
    DataType.ARRAY: Kind.ARRAY,
    DataType.TIMESTAMPTZ: Kind.INT,  # UTC microseconds; ISO '...' literals are too
}
# Milvus's names for data types in its messages (schemapb.DataType names).
_MILVUS_TYPE_NAME = {
    DataType.BOOL: "Bool",
    DataType.INT8: "Int8",
    DataType.INT16: "Int16",
    DataType.INT32: "Int32",
    DataType.INT64: "Int64",
    DataType.FLOAT: "Float",
    DataType.DOUBLE: "Double",
    DataType.VARCHAR: "VarChar",
    DataType.STRING: "String",
    DataType.JSON: "JSON",
    DataType.ARRAY: "Array",
    DataType.TIMESTAMPTZ: "Timestamptz",
}


@dataclass(frozen=True)
class _Typed:
    """A planned value and what it is. JSON values stay unprojected until their use is known."""

    kind: Kind
    type_name: str
    value: plan.Value | None = None  # every kind except JSON and LIST
    json: tuple[str, plan.JsonPath] | None = None  # JSON: (column, path)
    items: tuple[Any, ...] = ()  # LIST: Python values
    field: FieldSchema | None = None  # set when the value is exactly a field's column
    element: DataType | None = None  # ARRAY: element type
    reads_json: bool = False

    @property
    def const(self) -> plan.Const | None:
        return self.value if isinstance(self.value, plan.Const) else None


@dataclass
class PlannedFilter:
    predicate: plan.Predicate
    fields: frozenset[str]
    dynamic_keys: frozenset[str]
    json_views: Mapping[str, frozenset[ViewKey]]  # column -> projections it reads


def plan_filter(
    text: str, tree: syntax.Node, schema: CollectionSchema, params: Mapping[str, Any] | None
) -> PlannedFilter:
    planner = _Planner(text, schema, params or {})
    predicate = planner.predicate(tree)
    _check_sample_placement(text, predicate)
    return PlannedFilter(
        predicate=predicate,
        fields=frozenset(planner.fields),
        dynamic_keys=frozenset(planner.dynamic_keys),
        json_views={column: frozenset(keys) for column, keys in planner.json_views.items()},
    )


@dataclass
class _Planner:
    text: str
    schema: CollectionSchema
    params: Mapping[str, Any]
    fields: set[str] = field(default_factory=set)
    dynamic_keys: set[str] = field(default_factory=set)
    json_views: dict[str, set[ViewKey]] = field(default_factory=dict)

    def error(self, detail: str, pos: int) -> ParameterInvalid:
        return syntax.expression_error(self.text, detail, pos)

    # -- predicates -------------------------------------------------------------------------
    def predicate(self, node: syntax.Node) -> plan.Predicate:
        match node:
            case syntax.Logical(op):
                parts = tuple(self.predicate(operand) for operand in syntax.logical_chain(node))
                return _and(parts) if op == "and" else _or(parts)
            case syntax.Negation(operand):
                return _not(self.predicate(operand))
            case syntax.Comparison(ops, operands, pos):
                return self._comparison(ops, operands, pos)
            case syntax.Membership(operand, values, negate, pos):
                found = self._membership(self.value(operand), self.value(values), pos)
                return _not(found) if negate else found
            case syntax.Like(operand, pattern, pos):
                return self._like(self.value(operand), self.value(pattern), pos)
            case syntax.NullCheck(operand, negate, pos):
                return self._null_check(self.value(operand), negate, pos)
            case syntax.Exists(operand, pos):
                typed = self.value(operand)
                if typed.kind is not Kind.JSON:
                    raise self.error(f"exists needs a JSON field or dynamic key, got {typed.type_name}", pos)
                return plan.IsNull(self._json_view(typed, plan.JsonView.EXISTS), negate=True)
            case syntax.Call(function, args, pos) if function.lower() in _CONTAINS_MODES:
                return self._contains(function, args, pos)
            case syntax.Call(function, args, pos) if function.lower() in ("text_match", "phrase_match"):
                return self._text_match(function.lower(), args, pos)
            case syntax.Call(function, args, pos) if function.lower() == "random_sample":
                return self._sample(args, pos)
        return self._truth(self.value(node), _node_pos(node))

    def _sample(self, args: tuple[syntax.Node, ...], pos: int) -> plan.Predicate:
        if len(args) != 1:
            raise self.error(f"random_sample takes 1 argument, got {len(args)}", pos)
        typed = self.value(args[0])
        const = typed.const
        if const is None or not typed.kind.is_numeric:
            raise self.error('"float factor" should be a const float expression', pos)
        factor = float(const.value)
        if not SAMPLE_EPSILON < factor < 1 - SAMPLE_EPSILON:
            raise self.error(
                "the sample factor should be between 0 and 1 and not too close to 0 or 1(the difference "
                f"should be larger than 1e-10), but got {factor:g}",
                pos,
            )
        return plan.Sample(factor)

    def _truth(self, typed: _Typed, pos: int) -> plan.Predicate:
        if typed.kind is Kind.JSON:
            return plan.Truth(self._json_view(typed, plan.JsonView.BOOL), reads_json=True)
        if typed.kind is not Kind.BOOL:
            raise self.error(f"the filter must be a boolean expression, got {typed.type_name}", pos)
        if typed.const is not None:
            return plan.Constant(bool(typed.const.value))
        assert typed.value is not None
        return plan.Truth(typed.value, reads_json=typed.reads_json)

    def _comparison(
        self, ops: tuple[str, ...], operands: tuple[syntax.Node, ...], pos: int
    ) -> plan.Predicate:
        if len(ops) > 1 and not (
            all(op in ("<", "<=") for op in ops) or all(op in (">", ">=") for op in ops)
        ):
            raise self.error(f"invalid range {' '.join(ops)}: a chained range needs < / <= or > / >=", pos)
        typed = [self.value(node) for node in operands]
        return _and(tuple(self._compare(op, typed[i], typed[i + 1], pos) for i, op in enumerate(ops)))

    def _compare(self, op: str, left: _Typed, right: _Typed, pos: int) -> plan.Predicate:
        if left.kind is Kind.JSON and right.kind is Kind.JSON:
            raise self.error("comparisons between two JSON values are not supported", pos)
        if left.kind is Kind.JSON:
            left = self._json_as(left, right, pos)
        if right.kind is Kind.JSON:
            right = self._json_as(right, left, pos)
        compatible = (
            (left.kind.is_numeric and right.kind.is_numeric)
            or (left.kind is right.kind is Kind.STRING)
            or (left.kind is right.kind is Kind.BOOL and op in ("==", "!="))
        )
        if left.kind is right.kind is Kind.BOOL and not compatible:
            raise self.error(f"operator {op} is not supported on Bool", pos)
        if not compatible:
            raise self.error(
                f"comparisons between {left.type_name} and {right.type_name} are not supported", pos
            )
        lv, rv = _match_const(left, right), _match_const(right, left)
        if isinstance(lv, plan.Const) and isinstance(rv, plan.Const):
            return plan.Constant(_python_compare(op, lv.value, rv.value))
        return plan.Compare(op, lv, rv, reads_json=left.reads_json or right.reads_json)

    def _json_as(self, json_value: _Typed, other: _Typed, pos: int) -> _Typed:
        """Project a JSON value to the type of what it is compared with."""
        if other.kind.is_numeric:
            view, kind = plan.JsonView.NUMBER, Kind.FLOAT
        elif other.kind is Kind.STRING:
            view, kind = plan.JsonView.STRING, Kind.STRING
        elif other.kind is Kind.BOOL:
            view, kind = plan.JsonView.BOOL, Kind.BOOL
        else:
            raise self.error(f"comparisons between JSON and {other.type_name} are not supported", pos)
        return _Typed(kind, "JSON", value=self._json_view(json_value, view), reads_json=True)

    def _membership(self, operand: _Typed, values: _Typed, pos: int) -> plan.Predicate:
        if values.kind is not Kind.LIST:
            raise self.error(f"the right side of 'in' must be a list, got {values.type_name}", pos)
        if operand.kind is Kind.JSON:
            return self._json_membership(operand, values.items, pos)
        if operand.kind in (Kind.ARRAY, Kind.LIST):
            raise self.error(f"'in' is not supported on {operand.type_name}", pos)
        arrow_type = _compare_type(operand)
        cast = tuple(self._cast(v, operand, pos) for v in values.items)
        if operand.const is not None:
            return plan.Constant(operand.const.value in cast)
        assert operand.value is not None
        return plan.IsIn(operand.value, cast, arrow_type, reads_json=operand.reads_json)

    def _json_membership(self, operand: _Typed, items: tuple[Any, ...], pos: int) -> plan.Predicate:
        groups: dict[plan.JsonView, list[Any]] = {}
        for item in items:
            if isinstance(item, bool):
                groups.setdefault(plan.JsonView.BOOL, []).append(item)
            elif isinstance(item, int | float):
                groups.setdefault(plan.JsonView.NUMBER, []).append(float(item))
            elif isinstance(item, str):
                groups.setdefault(plan.JsonView.STRING, []).append(item)
            else:
                raise self.error("'in' on JSON takes a list of scalar values", pos)
        arrow_types = {
            plan.JsonView.BOOL: pa.bool_(),
            plan.JsonView.NUMBER: pa.float64(),
            plan.JsonView.STRING: pa.string(),
        }
        return _or(
            tuple(
                plan.IsIn(self._json_view(operand, view), tuple(vals), arrow_types[view], reads_json=True)
                for view, vals in groups.items()
            )
        )

    def _like(self, operand: _Typed, pattern: _Typed, pos: int) -> plan.Predicate:
        if pattern.kind is not Kind.STRING or pattern.const is None:
            raise self.error("the pattern of 'like' must be a string literal", pos)
        if operand.kind is Kind.JSON:
            return plan.Like(self._json_view(operand, plan.JsonView.STRING), str(pattern.const.value), True)
        if operand.kind is not Kind.STRING or operand.value is None:
            raise self.error(f"like operation on non-string field is unsupported: {operand.type_name}", pos)
        return plan.Like(operand.value, str(pattern.const.value), operand.reads_json)

    def _null_check(self, operand: _Typed, negate: bool, pos: int) -> plan.Predicate:
        if operand.field is not None:
            return plan.IsNull(plan.FieldColumn(operand.field.name), negate)
        if operand.kind is Kind.JSON:
            # A missing key counts as null, like a JSON null.
            return plan.IsNull(self._json_view(operand, plan.JsonView.EXISTS), negate)
        raise self.error("is null needs a field, a JSON path or a dynamic key", pos)

    def _contains(self, function: str, args: tuple[syntax.Node, ...], pos: int) -> plan.Predicate:
        mode = _CONTAINS_MODES[function.lower()]
        if len(args) != 2:
            raise self.error(f"{function} takes 2 arguments, got {len(args)}", pos)
        source, target = self.value(args[0]), self.value(args[1])
        if mode != "one" and target.kind is not Kind.LIST:
            raise self.error(f"the second argument of {function} must be a list", pos)
        if target.kind is not Kind.LIST and target.const is None:
            raise self.error(f"the second argument of {function} must be a literal", pos)
        wanted = target.items if mode != "one" else (_literal_value(target),)
        if source.kind is Kind.JSON:
            tokens = tuple(element_token(v) for v in wanted)
            lists = self._json_view(source, plan.JsonView.LIST)
            return plan.Contains(lists, tokens, pa.string(), mode)
        if source.kind is not Kind.ARRAY or source.field is None:
            raise self.error(f"{function} needs an array or JSON field, got {source.type_name}", pos)
        assert source.element is not None
        element = _Typed(_KIND_OF_DTYPE[source.element], _MILVUS_TYPE_NAME[source.element])
        values = tuple(self._cast(v, element, pos) for v in wanted)
        arrow_type = pa.float32() if source.element is DataType.FLOAT else _kind_arrow_type(element.kind)
        return plan.Contains(plan.FieldColumn(source.field.name), values, arrow_type, mode)

    def _text_match(self, function: str, args: tuple[syntax.Node, ...], pos: int) -> plan.Predicate:
        """Milvus's match functions: a VARCHAR field with ``enable_match``, a string literal and,
        for PHRASE_MATCH, an optional non-negative integer slop."""
        phrase = function == "phrase_match"
        keywords = {a.name.lower(): a for a in args if isinstance(a, syntax.Keyword)}
        args = tuple(a for a in args if not isinstance(a, syntax.Keyword))
        minimum = 1
        for name, keyword in keywords.items():
            if phrase or name != "minimum_should_match":
                raise self.error(f"{function.upper()} does not take the argument {keyword.name}", keyword.pos)
            value = self.value(keyword.value).const
            minimum = value.value if value is not None else -1
            if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 1:
                raise self.error("minimum_should_match should be a positive integer", keyword.pos)
        if len(args) not in ((2, 3) if phrase else (2,)):
            raise self.error(f"{function.upper()} takes {'2 or 3' if phrase else '2'} arguments", pos)
        source = self.value(args[0])
        field = source.field
        if field is None or field.dtype is not DataType.VARCHAR:
            raise self.error(f"{function.upper()} needs a VARCHAR field, got {source.type_name}", pos)
        if not is_true(field.type_params.get(ENABLE_MATCH)):
            raise self.error(f'field "{field.name}" does not enable match', pos)
        query = self.value(args[1])
        if query.const is None or not isinstance(query.const.value, str):
            raise self.error(f"the second argument of {function.upper()} must be a string literal", pos)
        slop: int | None = None
        if phrase:
            slop_arg = self.value(args[2]) if len(args) == 3 else None
            slop = 0 if slop_arg is None or slop_arg.const is None else slop_arg.const.value
            if not isinstance(slop, int) or isinstance(slop, bool) or slop < 0:
                raise self.error("slop should be a non-negative integer", pos)
        params = field.type_params.get(ANALYZER_PARAMS, "")
        return plan.TextMatch(field.name, query.const.value, params, slop, minimum)

    # -- values -----------------------------------------------------------------------------
    def value(self, node: syntax.Node) -> _Typed:
        match node:
            case syntax.Keyword(name, _, pos):
                raise self.error(f"unexpected argument {name}=", pos)
            case syntax.Literal(value, pos):
                return self._python_value(value, pos, "literal")
            case syntax.ListLiteral(items, pos):
                return self._list([self.value(item) for item in items], pos)
            case syntax.Template(name, pos):
                if name not in self.params:
                    raise self.error(
                        f"the value of expression template variable name {name} is not found", pos
                    )
                return self._python_value(self.params[name], pos, f"template variable {name}")
            case syntax.Name(name, pos):
                return self._name(name, (), pos)
            case syntax.Access(name, path, pos):
                return self._name(name, path, pos)
            case syntax.Unary("-", syntax.Literal(value), pos) if isinstance(value, int | float) and not (
                isinstance(value, bool)
            ):
                return self._python_value(-value, pos, "literal")  # so that -2**63 fits
            case syntax.Unary(op, operand, pos):
                typed = self._numeric(self.value(operand), op, pos)
                if op == "+":
                    return typed
                zero = _Typed(Kind.INT, "Int64", value=plan.Const(0, pa.int64()))
                return self._arithmetic("-", zero, typed, pos)
            case syntax.Arithmetic(op, left, right, pos):
                return self._arithmetic(op, self.value(left), self.value(right), pos)
            case syntax.Call(function, args, pos):
                return self._call_value(function, args, pos)
        raise self.error("a boolean expression cannot be used as a value", _node_pos(node))

    def _python_value(self, value: Any, pos: int, what: str) -> _Typed:
        if isinstance(value, bool):
            return _Typed(Kind.BOOL, "Bool", value=plan.Const(value, pa.bool_()))
        if isinstance(value, numbers.Integral):
            number = int(value)
            if not _INT64_MIN <= number <= _INT64_MAX:
                raise self.error(f"integer {number} is out of range of Int64", pos)
            return _Typed(Kind.INT, "Int64", value=plan.Const(number, pa.int64()))
        if isinstance(value, numbers.Real):
            return _Typed(Kind.FLOAT, "Double", value=plan.Const(float(value), pa.float64()))
        if isinstance(value, str):
            return _Typed(Kind.STRING, "VarChar", value=plan.Const(value, pa.string()))
        if isinstance(value, list | tuple):
            return self._list([self._python_value(v, pos, what) for v in value], pos)
        raise self.error(f"unsupported value type {type(value).__name__} for {what}", pos)

    def _list(self, items: list[_Typed], pos: int) -> _Typed:
        values = []
        for item in items:
            if item.kind is not Kind.LIST and item.const is None:
                raise self.error("list elements must be literals", pos)
            values.append(_literal_value(item))
        return _Typed(Kind.LIST, "Array", items=tuple(values))

    def _name(self, name: str, path: plan.JsonPath, pos: int) -> _Typed:
        if name == DYNAMIC_FIELD:
            if not self.schema.enable_dynamic_field:
                raise self.error(f"field {name} not exist", pos)
            if path and isinstance(path[0], str):
                self.dynamic_keys.add(path[0])
            return _Typed(Kind.JSON, "JSON", json=(DYNAMIC_FIELD, path))
        schema_field = self.schema.field(name)
        if schema_field is None:
            if not self.schema.enable_dynamic_field:
                raise self.error(f"field {name} not exist", pos)
            self.dynamic_keys.add(name)
            return _Typed(Kind.JSON, "JSON", json=(DYNAMIC_FIELD, (name, *path)))
        if schema_field.is_vector:
            raise self.error(f"vector field {name} cannot be used in a filter", pos)
        if schema_field.dtype is DataType.ARRAY_OF_STRUCT:
            # Milvus 2.6: no Array of Structs, nor any field inside it, in a filter expression.
            raise self.error(f"struct array field {name} cannot be used in a filter expression", pos)
        self.fields.add(name)
        kind = _KIND_OF_DTYPE[schema_field.dtype]
        type_name = _MILVUS_TYPE_NAME[schema_field.dtype]
        if kind is Kind.JSON:
            return _Typed(Kind.JSON, "JSON", json=(name, path), field=None if path else schema_field)
        if kind is Kind.ARRAY and schema_field.element_type is not None:
            element = schema_field.element_type
            if not path:
                return _Typed(
                    Kind.ARRAY, "Array", value=plan.FieldColumn(name), field=schema_field, element=element
                )
            if len(path) != 1 or not isinstance(path[0], int):
                raise self.error(f"array field {name} takes one integer index", pos)
            return _Typed(
                _KIND_OF_DTYPE[element], _MILVUS_TYPE_NAME[element], value=plan.ArrayElement(name, path[0])
            )
        if path:
            raise self.error(f"field {name} of type {type_name} cannot be indexed", pos)
        return _Typed(kind, type_name, value=plan.FieldColumn(name), field=schema_field)

    def _numeric(self, typed: _Typed, op: str, pos: int) -> _Typed:
        if typed.kind is Kind.JSON:
            view = self._json_view(typed, plan.JsonView.NUMBER)
            return _Typed(Kind.FLOAT, "JSON", value=view, reads_json=True)
        if not typed.kind.is_numeric:
            raise self.error(f"operator {op} needs numbers, got {typed.type_name}", pos)
        return typed

    def _arithmetic(self, op: str, left: _Typed, right: _Typed, pos: int) -> _Typed:
        left, right = self._numeric(left, op, pos), self._numeric(right, op, pos)
        assert left.value is not None and right.value is not None
        if op in ("/", "%") and right.const is not None and right.const.value == 0:
            raise self.error("division by zero", pos)
        kind = Kind.FLOAT if op == "**" or Kind.FLOAT in (left.kind, right.kind) else Kind.INT
        reads_json = left.reads_json or right.reads_json
        if left.const is not None and right.const is not None:
            try:
                folded = apply_arithmetic(
                    op, pa.scalar(left.const.value), pa.scalar(right.const.value), checked=True
                )
            except pa.ArrowInvalid as e:
                raise self.error(f"constant arithmetic failed: {e}", pos) from None
            result = folded.as_py()
            if result is None:
                raise self.error("invalid constant arithmetic", pos)
            return self._python_value(result, pos, "constant")
        node = plan.Arithmetic(op, left.value, right.value)
        return _Typed(kind, kind.value, value=node, reads_json=reads_json)

    def _call_value(self, function: str, args: tuple[syntax.Node, ...], pos: int) -> _Typed:
        name = function.lower()
        if name in _CONTAINS_MODES:
            raise self.error(f"{function} is a boolean expression, not a value", pos)
        if name != "array_length":
            raise self.error(f"function {function} is not supported", pos)
        if len(args) != 1:
            raise self.error(f"{function} takes 1 argument, got {len(args)}", pos)
        source = self.value(args[0])
        if source.kind is Kind.JSON:
            lists = self._json_view(source, plan.JsonView.LIST)
            return _Typed(Kind.INT, "Int64", value=plan.ArrayLength(lists), reads_json=True)
        if source.kind is Kind.ARRAY and source.field is not None:
            return _Typed(Kind.INT, "Int64", value=plan.ArrayLength(plan.FieldColumn(source.field.name)))
        raise self.error(f"{function} needs an array or JSON field, got {source.type_name}", pos)

    def _json_view(self, typed: _Typed, view: plan.JsonView) -> plan.JsonValue:
        assert typed.json is not None
        column, path = typed.json
        self.json_views.setdefault(column, set()).add((path, view))
        return plan.JsonValue(column, path, view)

    def _cast(self, value: Any, target: _Typed, pos: int) -> Any:
        """A list element as the type of what it is matched against (Milvus's castValue)."""
        ok = (
            (target.kind is Kind.INT and isinstance(value, int) and not isinstance(value, bool))
            or (target.kind is Kind.FLOAT and isinstance(value, int | float) and not isinstance(value, bool))
            or (target.kind is Kind.STRING and isinstance(value, str))
            or (target.kind is Kind.BOOL and isinstance(value, bool))
        )
        if not ok:
            raise self.error(f"cannot cast value {value!r} to {target.type_name}", pos)
        return float(value) if target.kind is Kind.FLOAT else value


def _literal_value(typed: _Typed) -> Any:
    if typed.kind is Kind.LIST:
        return list(typed.items)
    assert typed.const is not None
    return typed.const.value


def _kind_arrow_type(kind: Kind) -> pa.DataType:
    return {
        Kind.INT: pa.int64(),
        Kind.FLOAT: pa.float64(),
        Kind.STRING: pa.string(),
        Kind.BOOL: pa.bool_(),
    }[kind]


def _compare_type(typed: _Typed) -> pa.DataType:
    # A FLOAT field's literals are rounded to float32, as Milvus casts them to the field type.
    if typed.field is not None and typed.field.dtype is DataType.FLOAT:
        return pa.float32()
    return _kind_arrow_type(typed.kind)


def _match_const(typed: _Typed, other: _Typed) -> plan.Value:
    assert typed.value is not None
    const = typed.const
    if const is not None and other.field is not None and other.field.dtype is DataType.FLOAT:
        return plan.Const(const.value, pa.float32())
    return typed.value


def _python_compare(op: str, left: Any, right: Any) -> bool:
    return {
        "==": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]


def _node_pos(node: syntax.Node) -> int:
    return node.pos


def _check_sample_placement(text: str, predicate: plan.Predicate) -> None:
    """random_sample samples the rows the rest of the filter keeps: it may be the whole filter
    or one operand of the outermost AND, nowhere else (Milvus)."""
    top = predicate.operands if isinstance(predicate, plan.And) else (predicate,)
    nested = [part for part in top if not isinstance(part, plan.Sample)]
    if any(_holds_sample(part) for part in nested):
        raise syntax.expression_error(
            text, "random_sample can only be the whole filter or be combined with it by &&"
        )


def _holds_sample(predicate: plan.Predicate) -> bool:
    if isinstance(predicate, plan.Sample):
        return True
    if isinstance(predicate, plan.And | plan.Or):
        return any(_holds_sample(part) for part in predicate.operands)
    if isinstance(predicate, plan.Not):
        return _holds_sample(predicate.operand)
    return False


def _and(parts: tuple[plan.Predicate, ...]) -> plan.Predicate:
    flat: list[plan.Predicate] = []
    for part in parts:
        if isinstance(part, plan.Constant):
            if not part.value:
                return part
            continue
        flat.extend(part.operands if isinstance(part, plan.And) else (part,))
    if not flat:
        return plan.Constant(True)
    return flat[0] if len(flat) == 1 else plan.And(tuple(flat))


def _or(parts: tuple[plan.Predicate, ...]) -> plan.Predicate:
    flat: list[plan.Predicate] = []
    for part in parts:
        if isinstance(part, plan.Constant):
            if part.value:
                return part
            continue
        flat.extend(part.operands if isinstance(part, plan.Or) else (part,))
    if not flat:
        return plan.Constant(False)
    return flat[0] if len(flat) == 1 else plan.Or(tuple(flat))


def _not(part: plan.Predicate) -> plan.Predicate:
    if isinstance(part, plan.Constant):
        return plan.Constant(not part.value)
    if isinstance(part, plan.Not):
        return part.operand
    return plan.Not(part)
