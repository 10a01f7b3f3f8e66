"""The docs say what the code does: every ``sheafdb serve`` flag is in the README's table,
with its real default, and the table lists no flag the command does not have."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sheafdb.cli import add_serve_flags

README = Path(__file__).resolve().parents[1] / "README.md"
TABLE_HEADING = "## `sheafdb serve`"


def serve_flags() -> dict[str, argparse.Action]:
    parser = argparse.ArgumentParser(prog="sheafdb serve")
    add_serve_flags(parser)
    return {a.option_strings[0]: a for a in parser._actions if a.option_strings and a.dest != "help"}


def readme_table() -> dict[str, str]:
    """Flag -> its default column, from the table under the ``sheafdb serve`` heading."""
    section = README.read_text().split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(--[a-z-]+)(?: [A-Z]+)?`", cells[0]) if len(cells) == 3 else None
        if match:
            rows[match.group(1)] = cells[1]
    return rows


def test_every_flag_is_documented_and_no_other() -> None:
    assert set(readme_table()) == set(serve_flags())


def test_documented_defaults_are_the_real_ones() -> None:
    table = readme_table()
    for flag, action in serve_flags().items():
        if isinstance(action, argparse._StoreTrueAction):
            assert table[flag] == "off", flag
        elif action.default is None:
            assert table[flag] == "none", flag
        else:
            convert = action.type or str  # argparse hands plain strings over as they are
            assert convert(table[flag].strip("`")) == action.default, flag
