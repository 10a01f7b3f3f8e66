from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from sheafdb.api.rest.app import build_app
from sheafdb.engine.access import AccessControl
from sheafdb.engine.engine import Engine, EngineConfig


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
