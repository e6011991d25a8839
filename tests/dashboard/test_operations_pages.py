"""Admin operations pages in Chromium: a retention policy and limits set from the page, shown with the
spend, and both changes in the audit log (which holds no secret)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import UsersServer, login, open_page, serve_with_users
from tests.gateway.conftest import wait_for
from tests.server.test_ingest import generation


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsersServer]:
    yield from serve_with_users(tmp_path_factory.mktemp("ops-pages"))


@pytest.fixture
def page(browser: Browser, ops_server: UsersServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from open_page(browser, ops_server.url, request)


def test_retention_and_limits_from_the_page_and_the_audit_log(page: Page, ops_server: UsersServer) -> None:
    login(page)
    page.goto("/admin/operations")
    expect(page.get_by_text("No policy: generations are kept for ever.")).to_be_visible()
    page.get_by_label("Action").select_option("anonymise")
    page.get_by_label("After (days)").fill("30")
    page.get_by_role("button", name="Set policy").click()
    expect(page.get_by_role("table", name="Retention policies")).to_contain_text("anonymise after 30 days")
    page.get_by_label("Requests per minute", exact=True).fill("120")
    page.get_by_label("Cost per day (USD)").fill("2.5")
    page.get_by_role("button", name="Save limits").click()
    expect(page.get_by_label("Requests per minute", exact=True)).to_have_value("120")
    with ops_server.api() as api:
        limits = api.get("/api/limits").json()["data"]
    assert limits[0]["requestsPerMinute"] == 120 and limits[0]["costPerDay"] == 2.5
    page.get_by_role("link", name="Audit log").click()
    log = page.get_by_role("table", name="Audit log")
    expect(log).to_contain_text("retention.set")
    expect(log).to_contain_text("limits.set")
    expect(log).to_contain_text("user:admin")
    # a bad value is refused on the page and changes nothing
    page.goto("/admin/operations")
    tokens = page.get_by_label("Tokens per minute")
    tokens.evaluate("input => input.removeAttribute('min')")  # past the browser's own check
    tokens.fill("-5")
    page.get_by_role("button", name="Save limits").click()
    expect(page.get_by_role("alert")).to_contain_text("tokensPerMinute")


def test_a_member_cannot_open_them(page: Page) -> None:
    login(page, "member")
    for path in ("/admin/operations", "/admin/audit"):
        response = page.goto(path)
        assert response is not None and response.status == 403


def test_the_keys_page_shows_what_each_key_spent(page: Page, ops_server: UsersServer) -> None:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    with ops_server.api() as api:
        batch = [{"type": "generation", "body": generation(timestamp=now)} for _ in range(3)]
        assert api.post("/api/ingest", json={"batch": batch}).status_code == 200
        key_id = wait_for(lambda: api.get("/api/limits").json()["keys"])[0]["keyId"]
    login(page)
    page.goto("/admin/keys")
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=str(key_id), exact=True))
    # gpt-4o: 1,000 prompt and 100 completion tokens cost $0.0035 each
    expect(row).to_contain_text("$0.0105")
    expect(row.get_by_role("cell").nth(6)).to_have_text("3")
