"""A server process holds pymilvus's generated stubs, not its client (pandas among it: ~45 MB).

Observed from outside: after the server and its query workers answered a search, none of
their processes maps pandas' native libraries, which importing the client would load.
"""

from __future__ import annotations

from pathlib import Path

import psutil
from pymilvus import MilvusClient

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready


def maps_pandas(process: psutil.Process) -> bool:
    return "/pandas/" in Path(f"/proc/{process.pid}/maps").read_text()


def test_the_server_and_its_workers_do_not_load_the_pymilvus_client(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    process = start_server(tmp_path / "data", port, log_path, extra=("--workers", "2"))
    try:
        wait_ready(process, log_path)
        client = MilvusClient(uri=f"http://127.0.0.1:{port}", token=ROOT_TOKEN)
        client.create_collection("c", dimension=4)
        client.insert("c", [{"id": i, "vector": [float(i), 0.0, 0.0, 1.0]} for i in range(10)])
        for _ in range(4):  # reaches the workers as well as the primary
            assert len(client.search("c", [[1.0, 0.0, 0.0, 1.0]], limit=3)[0]) == 3
        server = psutil.Process(process.pid)
        processes = [server, *server.children(recursive=True)]
        workers = [p for p in processes if "sheafdb.api.query_worker_entry" in " ".join(p.cmdline())]
        assert len(workers) == 2
        # The check can fail: this test process itself, which imported the client, maps pandas.
        assert maps_pandas(psutil.Process())
        assert [p.pid for p in processes if maps_pandas(p)] == []
        client.close()
    finally:
        stop_server(process)
