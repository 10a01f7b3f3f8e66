"""Untrusted JSON text -> Python values, as strictly as Go's encoding/json reads it (Milvus's).

Python's ``json`` accepts the non-standard literals ``NaN``, ``Infinity`` and ``-Infinity``
and nests as deep as the interpreter's recursion allows (then raises ``RecursionError``).
``loads`` refuses both; ``deeper_than`` bounds how deep a parsed value nests, without
recursion, so that code walking it later (``json.dumps``, the filter's JSON paths) cannot
overflow. Errors are ``JsonRefused`` (a ``ValueError``): each caller maps it to its code.
"""

from __future__ import annotations

import json
import re
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
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise JsonRefused("the JSON value nests too deep") from None
    except JsonRefused:
        raise
    except ValueError as err:
        raise JsonRefused(str(err)) from None
    found = _SURROGATE_ESCAPE.search(text) if isinstance(text, str) else _SURROGATE_ESCAPE_BYTES.search(text)
    if found:
        value = _without_lone_surrogates(value)
    return value


# ``"\ud800"`` decodes to a lone surrogate, which no later step can encode; Go's decoder reads
# each lone one as U+FFFD, and so do we (a valid pair is already one character).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


def _fixed(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _fixed(value)
    if not isinstance(value, (list, dict)):
        return value
    root: list[Any] = [value]
    pending: list[Any] = [root]
    while pending:  # without recursion: the value may nest deep
        container = pending.pop()
        items = list(container.items()) if isinstance(container, dict) else list(enumerate(container))
        if isinstance(container, dict):
            container.clear()
        for key, item in items:
            if isinstance(item, str):
                item = _fixed(item)
            elif isinstance(item, (list, dict)):
                pending.append(item)
            container[_fixed(key) if isinstance(key, str) else key] = item
    return root[0]


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
