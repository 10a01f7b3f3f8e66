"""Arithmetic inside filters, one semantics for columns and for folded constants.

Integers stay integers (division and remainder truncate toward zero, as in Milvus's C++
engine); ``**`` is computed in float64. A zero divisor gives null, which no comparison matches.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

Operand = pa.Array | pa.Scalar
_BASIC = {"+": "add", "-": "subtract", "*": "multiply"}


def apply_arithmetic(op: str, left: Operand, right: Operand, *, checked: bool = False) -> Operand:
    """``checked`` raises pa.ArrowInvalid on integer overflow (for folding constants);
    columns wrap around instead, as Milvus's engine does."""
    suffix = "_checked" if checked else ""
    if op in _BASIC:
        return pc.call_function(_BASIC[op] + suffix, [left, right])
    if op == "**":
        return pc.power(pc.cast(left, pa.float64()), pc.cast(right, pa.float64()))
    if op in ("/", "%"):
        return _divide(op, left, right)
    raise ValueError(f"unknown arithmetic operator {op}")


def _divide(op: str, left: Operand, right: Operand) -> Operand:
    if _is_integer(left) and _is_integer(right):
        divisor = pc.if_else(pc.equal(right, 0), pa.scalar(None, right.type), right)
        quotient = pc.divide(left, divisor)  # integer division truncates toward zero
        return quotient if op == "/" else pc.subtract(left, pc.multiply(divisor, quotient))
    left, right = pc.cast(left, pa.float64()), pc.cast(right, pa.float64())
    divisor = pc.if_else(pc.equal(right, 0.0), pa.scalar(None, pa.float64()), right)
    quotient = pc.divide(left, divisor)
    if op == "/":
        return quotient
    # fmod: the remainder has the sign of the dividend.
    return pc.subtract(left, pc.multiply(divisor, pc.trunc(quotient)))


def _is_integer(operand: Operand) -> bool:
    return pa.types.is_integer(operand.type)
