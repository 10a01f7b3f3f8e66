"""The shared acceptance scripts, run verbatim against the session server (auth on).

They live in ``shared/acceptance`` beside the repository (CI clones the repository with a copy
of ``shared/`` next to it) or in ``$SHEAFDB_SHARED``. Missing scripts or a missing Node.js
skip these tests, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT_TOKEN

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "acceptance" / "node"
NODE_SDK = NODE_DIR / "node_modules" / "@zilliz" / "milvus2-sdk-node"
SCRIPT_TIMEOUT_S = 600


def skip_unless_ci(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def acceptance_dir() -> Path:
    configured = os.environ.get("SHEAFDB_SHARED")
    shared = Path(configured) if configured else REPO.parent / "shared"
    scripts = shared / "acceptance"
    if not scripts.is_dir():
        skip_unless_ci(f"no acceptance scripts in {scripts}")
    return scripts


def final_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_script(command: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )


def assert_summary(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert final_line(result) == expected, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0


def test_seed_python(acceptance_dir: Path, server_uri: str) -> None:
    result = run_script(
        [sys.executable, str(acceptance_dir / "seed_python.py"), "--uri", server_uri, "--token", ROOT_TOKEN],
        cwd=acceptance_dir,
        env={},
    )
    assert_summary(result, "11 passed, 0 failed")


@pytest.fixture
def node_script(acceptance_dir: Path) -> Iterator[Path]:
    """The Node script copied unchanged beside the SDK: ESM resolves imports from the script's
    own folder, so it cannot run from shared/."""
    node = shutil.which("node")
    if node is None or not NODE_SDK.is_dir():
        skip_unless_ci("Node.js or the Node SDK is missing (scripts/test installs the SDK)")
    copy = NODE_DIR / ".seed_node.mjs"
    shutil.copyfile(acceptance_dir / "seed_node.mjs", copy)
    yield copy
    copy.unlink(missing_ok=True)


def test_seed_node(node_script: Path, server_uri: str) -> None:
    result = run_script(
        ["node", node_script.name], cwd=NODE_DIR, env={"ADDRESS": server_uri, "TOKEN": ROOT_TOKEN}
    )
    assert_summary(result, "6 passed, 0 failed")


def test_seed_rest(acceptance_dir: Path, server_uri: str) -> None:
    if shutil.which("bash") is None or shutil.which("curl") is None:
        skip_unless_ci("bash or curl is missing")
    result = run_script(
        ["bash", str(acceptance_dir / "seed_rest.sh")],
        cwd=acceptance_dir,
        env={"CLUSTER_ENDPOINT": server_uri, "TOKEN": ROOT_TOKEN},
    )
    assert_summary(result, "10 passed, 0 failed")
