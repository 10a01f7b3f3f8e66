from __future__ import annotations

import pytest

from sheafdb.errors import ParameterInvalid
from sheafdb.expr import syntax
from sheafdb.expr.syntax import (
    Access,
    Arithmetic,
    Comparison,
    ListLiteral,
    Literal,
    Logical,
    Membership,
    Name,
    Negation,
    NullCheck,
    Unary,
    parse,
)


def test_precedence_of_logic_and_arithmetic() -> None:
    tree = parse("a > 1 or b < 2 and not c == 3")
    assert isinstance(tree, Logical) and tree.op == "or"
    assert isinstance(tree.right, Logical) and tree.right.op == "and"
    assert isinstance(tree.right.right, Negation)
    tree = parse("a + 2 * 3 ** 2 == 1")
    assert isinstance(tree, Comparison)
    left = tree.operands[0]
    assert isinstance(left, Arithmetic) and left.op == "+"
    assert isinstance(left.right, Arithmetic) and left.right.op == "*"
    assert isinstance(left.right.right, Arithmetic) and left.right.right.op == "**"


def test_unary_minus_binds_looser_than_power() -> None:
    tree = parse("-2 ** 2 == x")
    assert isinstance(tree, Comparison)
    assert isinstance(tree.operands[0], Unary)
    assert isinstance(tree.operands[0].operand, Arithmetic)


@pytest.mark.parametrize(
    "text",
    ["a && b || !c", "a and b or not c", "a AND b OR NOT c"],
)
def test_symbolic_and_word_operators_agree(text: str) -> None:
    assert _strip(parse(text)) == _strip(parse("a and b or not c"))


def test_keywords_inside_names_stay_names() -> None:
    assert isinstance(parse("not in_stock"), Negation)
    assert parse("android == 1").operands[0] == Name("android", 0)  # type: ignore[union-attr]
    assert parse("true_count == 1").operands[0] == Name("true_count", 0)  # type: ignore[union-attr]


def test_chained_range_and_membership_and_null_checks() -> None:
    tree = parse("1 < x <= 5")
    assert isinstance(tree, Comparison) and tree.ops == ("<", "<=") and len(tree.operands) == 3
    tree = parse("x not in [1, 2,]")
    assert isinstance(tree, Membership) and tree.negate
    assert isinstance(parse("x IS NOT NULL"), NullCheck)
    assert parse("x is null") == NullCheck(Name("x", 0), False, 0)


@pytest.mark.parametrize(
    ("token", "value"),
    [
        ('"plain"', "plain"),
        ("'single'", "single"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'it\'s'", "it's"),
        (r'"tab\tnew\nline"', "tab\tnew\nline"),
        (r'"\u00e9t\u00E9"', "été"),
        (r'"100\%"', "100\\%"),  # like-pattern escapes survive
        ('"ünïcode"', "ünïcode"),
    ],
)
def test_string_literals(token: str, value: str) -> None:
    tree = parse(f"s == {token}")
    assert tree.operands[1] == Literal(value, 5)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("token", "value"),
    [("42", 42), ("007", 7), ("0x1F", 31), ("1.5", 1.5), (".5", 0.5), ("1e3", 1000.0), ("2.5E-1", 0.25)],
)
def test_number_literals(token: str, value: float) -> None:
    literal = parse(f"x == {token}").operands[1]  # type: ignore[union-attr]
    assert isinstance(literal, Literal) and literal.value == value and type(literal.value) is type(value)


@pytest.mark.parametrize("token", ["true", "True", "TRUE", "false", "False"])
def test_bool_literals(token: str) -> None:
    literal = parse(f"x == {token}").operands[1]  # type: ignore[union-attr]
    assert literal == Literal(token.lower() == "true", 5)


def test_json_paths_and_templates() -> None:
    tree = parse('meta["a"]["b"][0] == {v}')
    assert tree.operands[0] == Access("meta", ("a", "b", 0), 0)  # type: ignore[union-attr]
    assert tree.operands[1] == syntax.Template("v", 21)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "position", "detail"),
    [
        ("a >", 3, "unexpected end of expression"),
        ("a == = 1", 5, "unexpected"),
        ("a # 1", 2, "unexpected character '#'"),
        ("(a > 1", 6, "unexpected end"),
        ("a > 1 b", 6, "unexpected 'b'"),
    ],
)
def test_syntax_errors_say_where(text: str, position: int, detail: str) -> None:
    with pytest.raises(ParameterInvalid) as info:
        parse(text)
    message = info.value.message
    assert message.startswith(f"cannot parse expression: {text}, error: syntax error")
    assert detail in message
    assert f"(at position {position})" in message
    assert info.value.code == 1100


def _strip(node: object) -> object:
    """The tree without positions, to compare shapes."""
    if isinstance(node, tuple):
        return tuple(_strip(n) for n in node)
    if hasattr(node, "__dataclass_fields__"):
        return (type(node).__name__,) + tuple(
            _strip(getattr(node, f))
            for f in node.__dataclass_fields__
            if f != "pos"  # type: ignore[attr-defined]
        )
    return node


# -- hostile sizes (issue 14): no recursion in the interpreter, a clear 1100 past the bound --------


def test_a_long_logical_chain_is_one_level_and_keeps_every_operand() -> None:
    tree = parse(" or ".join(f"id == {i}" for i in range(8000)))
    assert isinstance(tree, Logical)
    operands = syntax.logical_chain(tree)
    assert len(operands) == 8000
    assert [o.operands[1].value for o in operands[:3]] == [0, 1, 2]  # type: ignore[union-attr]
    assert syntax.nesting_depth(tree) == 3  # the chain, a comparison, its operands


@pytest.mark.parametrize(
    "text",
    ["not " * 5000 + "(a > 0)", "-" * 5000 + "a > 0", "a + " * 3000 + "a > 0", "[" * 3000 + "1" + "]" * 3000],
)
def test_nesting_past_the_bound_is_refused(text: str) -> None:
    with pytest.raises(ParameterInvalid) as raised:
        parse(text)
    assert "expression nesting depth exceeds the limit of 200" in raised.value.message


def test_nesting_within_the_bound_parses() -> None:
    depth = syntax.MAX_EXPRESSION_DEPTH
    assert syntax.nesting_depth(parse("not " * (depth - 2) + "(a > 0)")) == depth
    assert syntax.nesting_depth(parse("(" * 5000 + "a > 0" + ")" * 5000)) == 2  # parentheses make no node


def test_a_filter_longer_than_the_bound_is_refused_with_its_length_and_a_short_quote() -> None:
    limit = syntax.MAX_EXPRESSION_LENGTH
    text = "id in [" + "1," * (limit // 2) + "1]"
    with pytest.raises(ParameterInvalid) as raised:
        parse(text)
    message = raised.value.message
    assert raised.value.code == 1100
    assert f"expression length {len(text)} exceeds the limit of {limit} characters" in message
    assert message.startswith("cannot parse expression: id in [1,1,") and len(message) < 300


def test_long_filters_within_the_bound_parse_without_filling_the_cache() -> None:
    text = "id in [" + ",".join(str(i) for i in range(20_000)) + "]"
    assert len(text) > syntax.CACHED_EXPRESSION_LENGTH
    before = syntax._parse_cached.cache_info().currsize
    tree = parse(text)
    assert isinstance(tree, Membership) and isinstance(tree.values, ListLiteral)
    assert len(tree.values.items) == 20_000
    assert syntax._parse_cached.cache_info().currsize == before


def test_surrogate_escapes_become_the_replacement_character_as_in_go() -> None:
    tree = parse('s == "\\ud800x\\uDE00"')
    assert isinstance(tree, Comparison)
    assert tree.operands[1] == Literal("\ufffdx\ufffd", 5)
    with pytest.raises(ParameterInvalid):
        parse('s == "\\U00110000"')  # past the last code point
