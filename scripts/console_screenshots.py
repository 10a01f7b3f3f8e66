"""Take the screenshots of docs/console.md: a server with a few collections, each console page
in headless Chromium (Debian's ``chromium``), written to docs/console/*.png.

Run: .venv/bin/python scripts/console_screenshots.py
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright
from pymilvus import DataType, MilvusClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready  # noqa: E402

OUT = ROOT / "docs" / "console"
DIM = 64


def seed(uri: str) -> None:
    client = MilvusClient(uri=uri, token=ROOT_TOKEN)
    rng = random.Random(7)
    schema = client.create_schema(enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=128)
    schema.add_field("year", DataType.INT32)
    index = client.prepare_index_params()
    index.add_index("embedding", index_type="HNSW", metric_type="COSINE", params={"M": 16, "efConstruction": 64})
    client.create_collection("books", schema=schema, index_params=index, properties={"sheafdb.pinned": "true"})
    client.create_partition("books", "fiction")
    rows = [
        {
            "id": i,
            "embedding": [rng.random() for _ in range(DIM)],
            "title": f"Book number {i}",
            "year": 1950 + i % 70,
            "genre": rng.choice(["essay", "novel", "poetry"]),
        }
        for i in range(20000)
    ]
    client.insert("books", rows[:15000])
    client.insert("books", rows[15000:], partition_name="fiction")
    client.flush("books")
    client.create_alias("books", "library")
    client.create_collection("articles", dimension=32, metric_type="L2")
    client.insert("articles", [{"id": i, "vector": [rng.random() for _ in range(32)]} for i in range(8000)])
    client.flush("articles")
    client.create_collection("drafts", dimension=16)
    client.insert("drafts", [{"id": i, "vector": [rng.random() for _ in range(16)]} for i in range(3000)])
    client.flush("drafts")
    client.release_collection("drafts")
    client.alter_collection_properties("drafts", {"sheafdb.priority": "2", "collection.ttl.seconds": "86400"})
    for name, field in (("books", "embedding"), ("articles", "vector"), ("drafts", "vector")):
        wait_indexed(client, name, field)
    client.release_collection("books")
    client.load_collection("books", load_fields=["id", "embedding", "title"], skip_load_dynamic_field=True)
    client.release_collection("articles")
    client.load_collection("articles")
    client.close()


def wait_indexed(client: MilvusClient, name: str, field: str) -> None:
    """Loads after the build hold the index, so the memory page shows it."""
    for _ in range(600):
        index = client.describe_index(name, field)
        if index.get("state") == "Finished" and index.get("indexed_rows") == index.get("total_rows"):
            return
        time.sleep(0.1)
    raise TimeoutError(f"the index of {name}.{field} was not built in a minute")


def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium (apt-get install chromium)")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        log_path = Path(tmp) / "server.log"
        process = start_server(Path(tmp) / "data", port, log_path)
        try:
            wait_ready(process, log_path)
            base = f"http://127.0.0.1:{port}"
            seed(base)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1200, "height": 800})
                page.goto(base + "/login")
                page.fill("input[name=username]", "root")
                page.screenshot(path=OUT / "login.png", clip={"x": 380, "y": 50, "width": 440, "height": 250})
                page.fill("input[name=password]", "Milvus")
                page.click("button[type=submit]")
                page.wait_for_selector("table.collections")
                page.screenshot(path=OUT / "collections.png", full_page=True)
                page.goto(base + "/db/default/collections/drafts")
                page.check("input[name=fields][value=id]")
                page.check("input[name=fields][value=vector]")
                page.get_by_role("button", name="Preview load plan").click()
                page.wait_for_selector("#plan .plan")
                page.screenshot(path=OUT / "collection.png", full_page=True)
                page.goto(base + "/memory")
                page.wait_for_selector(".memory-bar")
                page.screenshot(path=OUT / "memory.png", full_page=True)
                page.goto(base + "/db/default/collections/books")
                page.click("#release-button")
                page.wait_for_selector(".released")
                page.locator("#load-state").scroll_into_view_if_needed()
                page.screenshot(path=OUT / "release.png")
                page.click("#load-button")
                page.wait_for_selector("#load-state[data-state=Loaded]")
                page.goto(base + "/data?db=default&collection=books&filter=year > 2000&fields=title, year, genre&limit=10")
                page.screenshot(path=OUT / "data.png", full_page=True)
                page.goto(base + "/search?db=default&collection=books&row_id=42&fields=title, year&limit=8")
                page.screenshot(path=OUT / "search.png", full_page=True)
                browser.close()
        finally:
            stop_server(process)
    print("screenshots in", OUT)


if __name__ == "__main__":
    main()
