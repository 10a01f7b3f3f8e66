"""The server process itself: ready line, clean SIGTERM stop, clear refusal to start."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymilvus import MilvusClient

from .conftest import free_port, start_server, stop_server, wait_ready


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    process = start_server(tmp_path / "data", free_port(), log_path)
    wait_ready(process, log_path)
    assert stop_server(process) == 0
    log = log_path.read_text()
    assert log.count("SheafDB ready on 127.0.0.1:") == 1
    assert "(gRPC + REST)" in log and "Traceback" not in log


def test_a_taken_port_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sheafdb", "serve", "--data-dir", str(tmp_path), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_an_unusable_data_dir_is_refused(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "sheafdb", "serve", "--data-dir", str(not_a_dir / "sub"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "data dir" in result.stderr


def test_version_and_health(client: MilvusClient) -> None:
    assert client.get_server_version().startswith("v2.")


def test_a_public_address_without_auth_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sheafdb",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 with authentication off" in result.stderr
    assert not (tmp_path / "catalog.db").exists()  # refused before anything was opened


def test_sigint_stops_a_server_without_auth(tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    process = start_server(tmp_path / "data", free_port(), log_path, auth=False)
    wait_ready(process, log_path)
    assert MilvusClient(uri=f"http://127.0.0.1:{_port_of(log_path)}").list_collections() == []
    process.send_signal(signal.SIGINT)
    assert process.wait(10) == 0
    assert "SheafDB stopped" in log_path.read_text()


def _port_of(log_path: Path) -> int:
    line = next(line for line in log_path.read_text().splitlines() if "SheafDB ready on" in line)
    return int(line.split("SheafDB ready on 127.0.0.1:", 1)[1].split()[0])


def test_sigterm_during_an_index_build_exits_cleanly_and_the_build_resumes(tmp_path: Path) -> None:
    import numpy as np
    from pymilvus import DataType

    log_path = tmp_path / "server.log"
    port = free_port()
    process = start_server(tmp_path / "data", port, log_path, auth=False)
    try:
        wait_ready(process, log_path)
        client = MilvusClient(f"http://127.0.0.1:{port}")
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=32)
        client.create_collection("c", schema=schema)
        vectors = np.random.default_rng(0).random((40_000, 32), dtype=np.float32)
        for start in range(0, 40_000, 10_000):
            client.insert("c", [{"id": i, "vec": vectors[i]} for i in range(start, start + 10_000)])
        client.flush("c")
        index = client.prepare_index_params()
        # Seconds of building (M=32, efConstruction=400): the stop lands in the middle of it.
        index.add_index("vec", index_type="HNSW", metric_type="L2", params={"M": 32, "efConstruction": 400})
        client.create_index("c", index, sync=False)  # pymilvus would wait for Finished
        assert client.describe_index("c", "vec")["state"] != "Finished"
        client.close()
    finally:
        # No abort from faiss's threads at exit (the build is left running, not waited for).
        returncode = stop_server(process)
    assert returncode == 0
    log = log_path.read_text()
    assert "SheafDB stopped" in log and "terminate called" not in log and "Traceback" not in log

    again = start_server(tmp_path / "data", port, tmp_path / "again.log", auth=False)
    try:
        wait_ready(again, tmp_path / "again.log")
        client = MilvusClient(f"http://127.0.0.1:{port}")
        for _ in range(1200):  # the build queued again at start finishes
            described = client.describe_index("c", "vec")
            if described["state"] == "Finished":
                break
            time.sleep(0.1)
        assert described["state"] == "Finished" and described["indexed_rows"] == 40_000
        client.close()
    finally:
        stop_server(again)
