"""Untrusted JSON text -> Python values, as strictly as Go's encoding/json reads it (Milvus's).

Python's ``json`` accepts the non-standard literals ``NaN``, ``Infinity`` and ``-Infinity``
and nests as deep as the interpreter's recursion allows (then raises ``RecursionError``).
``loads`` refuses both; ``deeper_than`` bounds how deep a parsed value nests, without
recursion, so that code walking it later (``json.dumps``, the filter's JSON paths) cannot
overflow. Errors are ``JsonRefused`` (a ``ValueError``): each caller maps it to its code.
"""

from __future__ import annotations

import json
from typing import Any

# How deep a JSON value (a JSON field's value, search params) may nest.
MAX_JSON_DEPTH = 100


class JsonRefused(ValueError):
    """Text that is not standard JSON, or a value nested too deep."""


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"invalid character {name!r}: NaN and Infinity are not JSON values")


def loads(text: str | bytes) -> Any:
    """The value of ``text``; JsonRefused for invalid JSON, NaN / Infinity, or absurd nesting."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise JsonRefused("the JSON value nests too deep") from None
    except JsonRefused:
        raise
    except ValueError as err:
        raise JsonRefused(str(err)) from None


def deeper_than(value: Any, limit: int) -> bool:
    """True if ``value`` nests more than ``limit`` arrays / objects deep (walked without recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        if depth > limit:
            return True
        if isinstance(current, dict):
            children: Any = current.values()
        else:
            # A list of numbers (a vector) is checked in C, without a Python step per element.
            kinds = set(map(type, current))
            if not (kinds & {list, dict}):
                continue
            children = current
        pending.extend((child, depth + 1) for child in children if isinstance(child, (list, dict)))
    return False


def loads_bounded(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> Any:
    """``loads``, then JsonRefused if the value nests more than ``limit`` levels."""
    value = loads(text)
    if isinstance(value, (list, dict)) and deeper_than(value, limit):
        raise JsonRefused(f"the JSON value nests deeper than {limit} levels")
    return value
