"""`pip install sheafdb` without extras serves: the embedded server imports nothing that only
the `cluster` or `test` extras install (the README's quick start).

The test environment has every extra installed, so the server is started with those modules
made unimportable, as on a machine that never installed them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pymilvus import MilvusClient

from tests.e2e.conftest import ROOT_TOKEN, free_port, stop_server, wait_ready

# What the extras add and the base install does not have.
EXTRAS_ONLY = ("httpx", "psycopg", "ray")

WITHOUT_EXTRAS = f"""
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRAS_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Missing())
from sheafdb.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_embedded_server_serves_without_the_extras(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    command = [sys.executable, "-c", WITHOUT_EXTRAS, "serve", "--data-dir", str(tmp_path / "data")]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--workers", "2"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_ready(process, log_path)
        client = MilvusClient(uri=f"http://127.0.0.1:{port}", token=ROOT_TOKEN)
        client.create_collection("c", dimension=4)
        client.insert("c", [{"id": i, "vector": [float(i), 0.0, 0.0, 1.0]} for i in range(10)])
        for _ in range(4):  # the primary and both query workers
            assert [hit["id"] for hit in client.search("c", [[3.0, 0.0, 0.0, 1.0]], limit=1)[0]] == [3]
        client.close()
    finally:
        stop_server(process)
