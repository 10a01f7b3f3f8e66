"""Filter text -> syntax tree: the lark grammar (``filter.lark``) and the nodes it produces.

The tree is untyped: names are not resolved and literals are plain Python values. The planner
(``planner.py``) checks it against a schema. Every node keeps ``pos``, its 0-based offset in
the text, so that errors can say where they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from sheafdb.errors import ParameterInvalid, invalid
from sheafdb.timestamptz import parse_duration, parse_time


@dataclass(frozen=True)
class Literal:
    value: int | float | str | bool
    pos: int


@dataclass(frozen=True)
class ListLiteral:
    items: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Template:
    """``{name}``: a value from the request's filter params."""

    name: str
    pos: int


@dataclass(frozen=True)
class Name:
    name: str
    pos: int


@dataclass(frozen=True)
class Access:
    """``name["key"][0]``: a JSON path or an array element."""

    name: str
    path: tuple[str | int, ...]
    pos: int


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Keyword:
    """``name=value`` among a call's arguments."""

    name: str
    value: Node
    pos: int


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "+"
    operand: Node
    pos: int


@dataclass(frozen=True)
class Arithmetic:
    op: str  # + - * / % **
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True)
class Comparison:
    """``a < b`` or a chain ``a < b <= c`` (len(operands) == len(ops) + 1)."""

    ops: tuple[str, ...]
    operands: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Membership:
    operand: Node
    values: Node
    negate: bool
    pos: int


@dataclass(frozen=True)
class Like:
    operand: Node
    pattern: Node
    pos: int


@dataclass(frozen=True)
class NullCheck:
    operand: Node
    negate: bool  # True for ``is not null``
    pos: int


@dataclass(frozen=True)
class Exists:
    operand: Node
    pos: int


@dataclass(frozen=True)
class Logical:
    op: str  # "and" or "or"
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True)
class Negation:
    operand: Node
    pos: int


Node = (
    Literal
    | ListLiteral
    | Template
    | Name
    | Access
    | Call
    | Keyword
    | Unary
    | Arithmetic
    | Comparison
    | Membership
    | Like
    | NullCheck
    | Exists
    | Logical
    | Negation
)


# How deeply a filter may nest (parentheses, `not`, unary signs, arithmetic), as Milvus bounds
# it (proxy.maxExpressionDepth): the planner and evaluator walk the tree recursively, so the
# bound keeps them far from the interpreter's recursion limit. A chain of one logical operator
# (`a or b or c ...`) is one level however long: it is planned and evaluated flat.
MAX_EXPRESSION_DEPTH = 200
# How long a filter may be, in characters. Milvus documents no such bound (its gRPC message
# limit of 512 MiB is the only one), but parsing costs time in proportion to the text: this
# bound keeps a hostile filter from holding a worker for minutes, while a filter of 100,000
# primary keys (``id in [...]``, as pymilvus's delete by ids writes it) still fits.
MAX_EXPRESSION_LENGTH = 4 * 1024 * 1024
# Longer filters are parsed again each time rather than kept (with their trees) in the cache.
CACHED_EXPRESSION_LENGTH = 64 * 1024
# How much of an over-long filter its error message quotes.
QUOTED_PREFIX = 100


def expression_error(text: str, detail: str, pos: int | None = None) -> ParameterInvalid:
    """Milvus's wording for a filter that cannot be used, with where it went wrong."""
    where = "" if pos is None else f" (at position {pos})"
    return invalid(f"cannot parse expression: {text}, error: {detail}{where}")


def parse(text: str) -> Node:
    """Parse filter text; ParameterInvalid (1100) saying where the syntax broke."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise invalid(
            f"cannot parse expression: {text[:QUOTED_PREFIX]}..., error: expression length {len(text)} "
            f"exceeds the limit of {MAX_EXPRESSION_LENGTH} characters"
        )
    if len(text) > CACHED_EXPRESSION_LENGTH:
        return _parse_text(text)
    return _parse_cached(text)


@lru_cache(maxsize=512)
def _parse_cached(text: str) -> Node:
    return _parse_text(text)


def _parse_text(text: str) -> Node:
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        raise expression_error(text, _describe_syntax_error(e), _error_pos(e, text)) from None
    try:
        node = _ToNodes().transform(tree)  # without recursion: any depth reaches the check below
    except VisitError as e:  # lark wraps what a node's callback raised
        if isinstance(e.orig_exc, ValueError):  # a malformed escape or number inside a token
            raise expression_error(text, str(e.orig_exc)) from None
        raise
    if nesting_depth(node) > MAX_EXPRESSION_DEPTH:
        raise expression_error(text, f"expression nesting depth exceeds the limit of {MAX_EXPRESSION_DEPTH}")
    return node


def logical_chain(node: Logical) -> list[Node]:
    """The operands of a chain of one logical operator (``a or b or c``), left to right,
    found without recursion (the parser nests a long chain as deep as it is long)."""
    operands: list[Node] = []
    pending: list[Node] = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, Logical) and current.op == node.op:
            pending.append(current.right)
            pending.append(current.left)
        else:
            operands.append(current)
    return operands


def nesting_depth(root: Node) -> int:
    """The deepest nesting of ``root``, walked without recursion; a logical chain counts once."""
    deepest = 0
    pending: list[tuple[Node, int]] = [(root, 1)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_EXPRESSION_DEPTH:
            return deepest
        children = logical_chain(node) if isinstance(node, Logical) else _children(node)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _children(node: Node) -> tuple[Node, ...]:
    match node:
        case ListLiteral(items) | Call(_, items):
            return items
        case Unary(_, operand) | NullCheck(operand) | Exists(operand) | Negation(operand):
            return (operand,)
        case Arithmetic(_, left, right):
            return (left, right)
        case Comparison(_, operands):
            return operands
        case Membership(operand, values) | Like(operand, values):
            return (operand, values)
    return ()


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("sheafdb.expr").joinpath("filter.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def _describe_syntax_error(e: UnexpectedInput) -> str:
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        return "syntax error: unexpected end of expression"
    if isinstance(e, UnexpectedToken):
        return f"syntax error: unexpected {e.token.value!r}"
    if isinstance(e, UnexpectedCharacters):
        return f"syntax error: unexpected character {e.char!r}"
    return "syntax error"


def _error_pos(e: UnexpectedInput, text: str) -> int:
    if isinstance(e, UnexpectedToken) and e.token.type == "$END":
        return len(text)
    pos = getattr(e, "pos_in_stream", None)
    return len(text) if pos is None else pos


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|.)", re.DOTALL)


def unescape_string(token: str) -> str:
    """The value of a quoted literal: backslash escapes as in Go / Python strings."""

    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "uUx" and len(code) > 1:
            point = int(code[1:], 16)
            # A surrogate is no character (it cannot be encoded): Go's Unquote makes it U+FFFD.
            return "\ufffd" if 0xD800 <= point <= 0xDFFF else chr(point)
        if code in _ESCAPES:
            return _ESCAPES[code]
        # Unknown escapes keep the backslash: `like` patterns use `\%` and `\_`.
        return "\\" + code

    return _ESCAPE_RE.sub(replace, token[1:-1])


def _int_value(token: str) -> int:
    # int(token, 0) would refuse decimal literals with leading zeros such as `007`.
    return int(token, 0) if token[:2].lower() in ("0x", "0o", "0b") else int(token)


def _pos(meta: Any) -> int:
    return getattr(meta, "start_pos", 0)


@v_args(meta=True)
class _ToNodes(Transformer_NonRecursive):
    """lark tree -> frozen nodes (one method per grammar alias)."""

    def int_lit(self, meta: Any, children: list[Token]) -> Literal:
        return Literal(_int_value(children[0]), _pos(meta))

    def float_lit(self, meta: Any, children: list[Token]) -> Literal:
        return Literal(float(children[0]), _pos(meta))

    def str_lit(self, meta: Any, children: list[Token]) -> Literal:
        return Literal(unescape_string(children[0]), _pos(meta))

    def iso_lit(self, meta: Any, children: list[Token]) -> Literal:
        # A TIMESTAMPTZ value is compared as its UTC microseconds.
        return Literal(parse_time(unescape_string(children[1])), _pos(meta))

    def interval_lit(self, meta: Any, children: list[Token]) -> Literal:
        return Literal(parse_duration(unescape_string(children[1])), _pos(meta))

    def bool_lit(self, meta: Any, children: list[Token]) -> Literal:
        return Literal(children[0].lower() == "true", _pos(meta))

    def name(self, meta: Any, children: list[Token]) -> Name:
        return Name(str(children[0]), _pos(meta))

    def access(self, meta: Any, children: list[Token]) -> Access:
        path: list[str | int] = []
        for token in children[1:]:
            path.append(unescape_string(token) if token.type == "STRING" else _int_value(token))
        return Access(str(children[0]), tuple(path), _pos(meta))

    def call(self, meta: Any, children: list[Any]) -> Call:
        return Call(str(children[0]), tuple(c for c in children[1:] if c is not None), _pos(meta))

    def keyword_arg(self, meta: Any, children: list[Any]) -> Keyword:
        return Keyword(str(children[0]), children[1], _pos(meta))

    def list_lit(self, meta: Any, children: list[Any]) -> ListLiteral:
        return ListLiteral(tuple(c for c in children if c is not None), _pos(meta))

    def template(self, meta: Any, children: list[Token]) -> Template:
        return Template(str(children[0]), _pos(meta))

    def negate(self, meta: Any, children: list[Any]) -> Unary:
        return Unary("-", children[1], _pos(meta))

    def positive(self, meta: Any, children: list[Any]) -> Unary:
        return Unary("+", children[1], _pos(meta))

    def arith(self, meta: Any, children: list[Any]) -> Arithmetic:
        left, op, right = children
        return Arithmetic(str(op), left, right, _pos(meta))

    def compare(self, meta: Any, children: list[Any]) -> Comparison:
        return Comparison(tuple(str(op) for op in children[1::2]), tuple(children[0::2]), _pos(meta))

    def in_op(self, meta: Any, children: list[Any]) -> Membership:
        return Membership(children[0], children[2], False, _pos(meta))

    def not_in_op(self, meta: Any, children: list[Any]) -> Membership:
        return Membership(children[0], children[2], True, _pos(meta))

    def like_op(self, meta: Any, children: list[Any]) -> Like:
        return Like(children[0], children[2], _pos(meta))

    def is_null(self, meta: Any, children: list[Any]) -> NullCheck:
        return NullCheck(children[0], False, _pos(meta))

    def is_not_null(self, meta: Any, children: list[Any]) -> NullCheck:
        return NullCheck(children[0], True, _pos(meta))

    def exists_op(self, meta: Any, children: list[Any]) -> Exists:
        return Exists(children[1], _pos(meta))

    def and_op(self, meta: Any, children: list[Any]) -> Logical:
        return Logical("and", children[0], children[2], _pos(meta))

    def or_op(self, meta: Any, children: list[Any]) -> Logical:
        return Logical("or", children[0], children[2], _pos(meta))

    def not_op(self, meta: Any, children: list[Any]) -> Negation:
        return Negation(children[1], _pos(meta))
