from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from starlette.testclient import TestClient

from sheafdb.api.rest.app import build_app
from sheafdb.engine.access import AccessControl
from sheafdb.engine.config import EngineConfig
from sheafdb.engine.engine import Engine


@pytest.fixture
def engine(tmp_path):
    eng = Engine(EngineConfig(data_dir=tmp_path / "data", fsync=False, memory_budget_bytes=256 << 20))
    yield eng
    eng.close()


@pytest.fixture
def access(tmp_path):
    control = AccessControl(tmp_path / "credentials.db", enabled=True)
    yield control
    control.close()


class Rest:
    """POST helper: ``rest("collections/list", {...})`` -> parsed JSON body."""

    def __init__(self, client: TestClient, token: str | None) -> None:
        self.client = client
        self.token = token

    def raw(self, path: str, body: object = None, *, token: str | None = None, **kwargs: object):
        headers = dict(kwargs.pop("headers", {}) or {})
        token = token or self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            kwargs["json"] = body
        return self.client.post("/v2/vectordb/" + path, headers=headers, **kwargs)

    def __call__(self, path: str, body: object = None, **kwargs: object) -> dict:
        response = self.raw(path, {} if body is None else body, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def rest(engine):
    with TestClient(build_app(engine)) as client:
        yield Rest(client, None)


@pytest.fixture
def secured(engine, access):
    with TestClient(build_app(engine, access)) as client:
        yield Rest(client, "root:Milvus")


class ServedApp:
    """The REST app on a real engine, served by uvicorn on a free loopback port in a thread."""

    def __init__(self, data_dir: Path, *, auth: bool) -> None:
        self.engine = Engine(
            EngineConfig(data_dir=data_dir / "data", fsync=False, memory_budget_bytes=256 << 20)
        )
        self.access = AccessControl(data_dir / "credentials.db", enabled=auth)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(build_app(self.engine, self.access), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()
        self.engine.close()
        self.access.close()


@pytest.fixture
def served(tmp_path):
    app = ServedApp(tmp_path, auth=True).start()
    yield app
    app.stop()
