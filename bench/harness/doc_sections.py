"""Sections of docs/benchmarks.md that other bench scripts own.

``bench/run.py`` writes the whole report; other scripts (``bench/full_text.py``, ...) put their
own section between two HTML comments that name it. ``put_section`` replaces that section (or
appends it), and ``carry_sections`` keeps every such section of the old report when run.py
writes a new one, so no script's figures are lost to another's run.
"""

from __future__ import annotations

import re
from pathlib import Path

_SECTION = re.compile(r"<!-- section: (?P<name>[\w-]+) -->\n.*?<!-- end section: (?P=name) -->\n", re.S)


def _wrapped(name: str, body: str) -> str:
    return f"<!-- section: {name} -->\n{body.rstrip()}\n<!-- end section: {name} -->\n"


def put_section(path: Path, name: str, body: str) -> None:
    old = path.read_text() if path.exists() else ""
    block = _wrapped(name, body)
    for found in _SECTION.finditer(old):
        if found.group("name") == name:
            path.write_text(old[: found.start()] + block + old[found.end() :])
            return
    path.write_text(old.rstrip("\n") + ("\n\n" if old else "") + block)


def carry_sections(old: str, new: str) -> str:
    """``new`` with every section of ``old`` it does not hold appended."""
    present = {found.group("name") for found in _SECTION.finditer(new)}
    kept = [found.group(0) for found in _SECTION.finditer(old) if found.group("name") not in present]
    return new.rstrip("\n") + "\n" + "".join("\n" + block for block in kept)
