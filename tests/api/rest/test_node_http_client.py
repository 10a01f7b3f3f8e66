"""The Node SDK's HttpClient (REST v2) against the served app: node_http_client.mjs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("node_http_client.mjs")
SDK_DIR = Path(__file__).parents[2] / "acceptance" / "node"


def test_node_http_client(served):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (SDK_DIR / "node_modules" / "@zilliz" / "milvus2-sdk-node").is_dir():
        pytest.skip(f"@zilliz/milvus2-sdk-node is not installed in {SDK_DIR} (npm install there)")
    env = {**os.environ, "SDK_DIR": str(SDK_DIR), "ENDPOINT": served.url, "TOKEN": "root:Milvus"}
    run = subprocess.run([node, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0 and summary.endswith(" 0 failed"), run.stdout + run.stderr
    assert summary.startswith("11 passed"), run.stdout
