"""A real server (``--auth``) and Debian's Chromium driven by Playwright.

Browser downloads are not possible here, so Playwright runs the system's ``chromium``
(``apt-get install chromium``; CI installs it in ``.ci/run``). Without it these tests skip,
and only then.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymilvus import DataType, MilvusClient

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready

COLLECTION = "shelf"
DIM = 8
ROWS = 500


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def console_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("sheafdb-console")
    port = free_port()
    log_path = root / "server.log"
    process = start_server(root / "data", port, log_path)
    wait_ready(process, log_path)
    uri = f"http://127.0.0.1:{port}"
    seed(uri)
    yield uri
    stop_server(process)


def seed(uri: str) -> None:
    """A collection of three fields and sealed rows, indexed and not loaded."""
    client = MilvusClient(uri=uri, token=ROOT_TOKEN)
    schema = client.create_schema(enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
    client.create_collection(COLLECTION, schema=schema, index_params=index)
    rows = [
        {"id": i, "vector": [float(i % 50) + d / 10 for d in range(DIM)], "title": f"book {i}"}
        for i in range(ROWS)
    ]
    client.insert(COLLECTION, rows)
    client.flush(COLLECTION)
    client.release_collection(COLLECTION)
    client.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object, tmp_path: Path) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})  # type: ignore[attr-defined]
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()
