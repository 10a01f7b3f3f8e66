"""Milvus's ``synonym`` filter: a token found in the synonym table becomes its synonyms.

Rows follow Milvus's syntax: ``"a, b, c"`` makes the words synonyms of one another and
``"a => b, c"`` maps ``a`` to ``b`` and ``c``. ``\\`` escapes ``,``, ``\\``, a space and ``=>``;
words are separated by commas (spaces around them are dropped; a space inside a word must be
escaped). With ``expand`` (the default) a group maps every word to the whole group and a
mapping keeps its source word too; without it a group maps every word to the group's first
word. A token's synonyms keep its offsets and position. Errors carry Milvus's texts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

Fail = Callable[[str], Exception]


class SynonymTable:
    def __init__(self, rows: Sequence[str], expand: bool, fail: Fail) -> None:
        self._expand = expand
        # word -> its synonyms, in the order they were added (a dict as an ordered set)
        self._table: dict[str, dict[str, None]] = {}
        for row in rows:
            left, right, mapping = _parse_row(row, fail)
            if mapping:
                for key in left:
                    self._add(key, right)
            elif left:
                for key in left:
                    self._add(key, left if expand else left[:1])

    def _add(self, key: str, words: Sequence[str]) -> None:
        known = self._table.get(key)
        if known is not None:
            known.update(dict.fromkeys(words))
            return
        entry = dict.fromkeys(words)
        if self._expand:
            entry.setdefault(key)
        self._table[key] = entry

    def expand(self, token: str) -> tuple[str, ...]:
        found = self._table.get(token)
        return tuple(found) if found else (token,)

    @property
    def mapping(self) -> Mapping[str, dict[str, None]]:
        return self._table


def _parse_row(row: str, fail: Fail) -> tuple[list[str], list[str], bool]:
    """(left words, right words, whether the row is a ``=>`` mapping)."""
    left: list[str] = []
    right: list[str] = []
    mapping = False
    current = ""
    spaced = False  # a space followed the current word
    i = 0

    def push() -> None:
        if current:
            (right if mapping else left).append(current)

    while i < len(row):
        char = row[i]
        if char == "\\":
            following = row[i + 1 : i + 2]
            if not following:
                raise fail(f"invalid synonym escaped in the end: {row}")
            if following in (",", "\\", " "):
                current += following
                i += 2
                continue
            if row[i + 1 : i + 3] == "=>":
                current += "=>"
                i += 3
                continue
            raise fail(f"invalid synonym escaped: \\{following} in {row}")
        if char == " ":
            spaced = spaced or bool(current)
            i += 1
            continue
        if char == ",":
            push()
            current, spaced = "", False
            i += 1
            continue
        if row[i : i + 2] == "=>":
            if mapping:
                raise fail(f'read synonym dict failed, has more than one "=>" in {row}')
            push()
            mapping = True
            current, spaced = "", False
            i += 2
            continue
        if spaced:
            raise fail(
                f"read synonym dict failed, has space between words {row}, please use \\ to escape space"
            )
        current += char
        i += 1
    push()
    return left, right, mapping
