"""The layers of docs/architecture.md hold: a module imports only from its own layer or below.

cli -> api -> engine -> storage, index, expr -> schema, errors. A test rather than a review
comment: an import from a layer above fails here, with the module and the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sheafdb"

# Higher numbers sit higher. storage, index and expr share a layer (indexes save through
# the object store behind a Protocol).
LAYERS = {
    "__main__": 5,
    "cli": 5,
    "settings": 5,
    "remote": 5,
    "api": 4,
    "engine": 3,
    "storage": 2,
    "index": 2,
    "expr": 2,
    "schema": 1,
    "errors": 1,
    "strict_json": 1,
    "timestamptz": 1,
    "schema_functions": 1,
    "text": 2,
}


def layer_of(module: str) -> int:
    """``sheafdb.engine.load.view`` -> the engine's layer."""
    parts = module.split(".")
    assert parts[0] == "sheafdb", module
    if len(parts) == 1:
        return 0  # the package's __init__: imports nothing of its own
    assert parts[1] in LAYERS, f"{module}: a new top-level part; give it its layer in LAYERS"
    return LAYERS[parts[1]]


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sheafdb":
                found.extend((node.lineno, f"sheafdb.{alias.name}") for alias in node.names)
            elif node.module.startswith("sheafdb."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.startswith("sheafdb."))
    return found


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_no_module_imports_from_a_layer_above_it() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        own = layer_of(module)
        for line, imported in imports_of(path):
            if layer_of(imported) > own:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from sheafdb.api.status import grpc_status\nimport sheafdb.engine.engine\n")
    imported = [name for _, name in imports_of(sample)]
    assert imported == ["sheafdb.api.status", "sheafdb.engine.engine"]
    assert layer_of("sheafdb.storage.wal") < layer_of(imported[0])
