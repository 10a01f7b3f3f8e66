"""The guide's rule, checked: no module-level cache keyed by ``id()``. A cache lives with the
object whose data it holds (engine/read/read_plans.py, live_deletes.py, LoadedSegment ...)."""

from __future__ import annotations

import ast
from pathlib import Path

import sheafdb

LOOKUPS = {"get", "pop", "setdefault", "move_to_end", "__contains__"}


def _uses_id(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "id" for n in ast.walk(node)
    )


def identity_caches(source: str) -> list[str]:
    """Module-level names that are indexed or looked up with a key built from ``id(...)``."""
    tree = ast.parse(source)
    module_names: set[str] = set()
    for statement in tree.body:
        targets = statement.targets if isinstance(statement, ast.Assign) else []
        if isinstance(statement, ast.AnnAssign):
            targets = [statement.target]
        module_names.update(t.id for t in targets if isinstance(t, ast.Name))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            if node.value.id in module_names and _uses_id(node.slice):
                found.add(node.value.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in module_names and node.func.attr in LOOKUPS:
                if any(_uses_id(arg) for arg in node.args):
                    found.add(owner.id)
    return sorted(found)


def test_the_check_finds_an_identity_cache() -> None:
    assert identity_caches("_C: dict = {}\ndef f(x):\n    return _C.get(id(x))\n") == ["_C"]
    assert identity_caches("_C = {}\ndef f(x):\n    _C[(id(x), 1)] = x\n") == ["_C"]
    assert identity_caches("class A:\n    def f(self, x):\n        return self._c.get(id(x))\n") == []


def test_no_module_level_cache_is_keyed_by_identity() -> None:
    root = Path(sheafdb.__file__).parent
    offenders = {
        str(path.relative_to(root)): names
        for path in sorted(root.rglob("*.py"))
        if (names := identity_caches(path.read_text()))
    }
    assert offenders == {}, f"module-level caches keyed by id(): {offenders}"
