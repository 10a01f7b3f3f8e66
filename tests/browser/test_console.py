"""The console as a person uses it, in headless Chromium: log in, find a collection, preview and
load two of its fields, watch it reach Loaded, see its memory bar, release it and read the bytes
freed, browse its rows and search it."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import COLLECTION, DIM

pytestmark = pytest.mark.browser


def log_in(page: Page, base: str) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(base + "/login")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "Milvus")
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Databases and collections")).to_be_visible()


def test_a_wrong_password_stays_on_the_login_form(page: Page, console_uri: str) -> None:
    page.goto(console_uri + "/login")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("auth check failure")
    page.goto(console_uri + "/memory")
    expect(page).to_have_url(console_uri + "/login")


def test_load_two_fields_see_memory_release_and_search(page: Page, console_uri: str) -> None:
    log_in(page, console_uri)
    row = page.locator(f"tr[data-collection={COLLECTION}]")
    expect(row).to_contain_text("NotLoad")
    expect(row).to_contain_text("500")
    row.get_by_role("link", name=COLLECTION).click()
    expect(page.get_by_role("heading", name=f"default / {COLLECTION}")).to_be_visible()
    expect(page.locator("#properties")).to_be_visible()

    page.check("input[name=fields][value=id]")
    page.check("input[name=fields][value=vector]")
    page.get_by_role("button", name="Preview load plan").click()
    plan = page.locator("#plan .plan")
    expect(plan).to_contain_text("fits")
    expect(plan).not_to_contain_text("title")  # only the two ticked fields are priced

    page.click("#load-button")
    expect(page.locator("#load-state")).to_have_attribute("data-state", "Loaded")
    expect(page.locator("#load-state")).to_contain_text("100%")

    page.goto(console_uri + "/memory")
    bar = page.locator(f".memory-bar[data-collection={COLLECTION}]")
    expect(bar).to_be_visible()
    resident = int(bar.get_attribute("data-bytes") or 0)
    assert resident > 0
    expect(bar.locator(".legend")).to_contain_text("vector (index)")
    expect(bar.locator(".legend")).not_to_contain_text("title")
    page.select_option("select[name=collection_path]", f"default/collections/{COLLECTION}")
    page.fill("#plan-form input[name=fields]", "id, vector, title")
    page.get_by_role("button", name="Preview").click()
    # A loaded collection's field list cannot change: the plan says what the load would say.
    expect(page.locator("#plan .error")).to_contain_text("can't change the load field list")
    page.fill("#plan-form input[name=fields]", "id, vector")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#plan .plan")).to_contain_text("nothing left to read")

    page.goto(f"{console_uri}/db/default/collections/{COLLECTION}")
    expect(page.locator("#load-state")).to_have_attribute("data-state", "Loaded")
    page.click("#release-button")
    expect(page.locator("#load-state")).to_have_attribute("data-state", "NotLoad")
    freed = page.locator(".released")
    expect(freed).to_contain_text(f"({resident} bytes)")

    page.click("#load-button")  # all fields this time, for the data and search pages
    expect(page.locator("#load-state")).to_have_attribute("data-state", "Loaded")

    page.goto(f"{console_uri}/data?db=default&collection={COLLECTION}&filter=id < 30&limit=20")
    table = page.locator("table.results")
    expect(table.locator("tr")).to_have_count(21)  # the header and one page of rows
    expect(table).to_contain_text("book 7")
    page.get_by_role("link", name="next →").click()
    expect(page.locator("table.results tr")).to_have_count(11)

    page.goto(f"{console_uri}/search?db=default&collection={COLLECTION}")
    page.fill("textarea[name=vector]", json.dumps([7.0 + d / 10 for d in range(DIM)]))
    page.fill("input[name=fields]", "title")
    page.fill("input[name=limit]", "3")
    page.get_by_role("button", name="Search").click()
    results = page.locator("table.results")
    expect(results.locator("tr")).to_have_count(4)
    expect(results.locator("tr").nth(1)).to_contain_text(re.compile(r"book (7|57|107)"))

    page.fill("textarea[name=vector]", "")
    page.fill("input[name=row_id]", "12")
    page.get_by_role("button", name="Search").click()
    first = page.locator("table.results tr").nth(1)
    expect(first.locator("td").first).to_have_text(re.compile(r"^(12|62|112|162|212|262|312|362|412|462)$"))
    expect(first.locator("td").nth(1)).to_have_text("0")  # its own vector: distance 0
