"""The generations list in Chromium: columns kept on the server, sorting and paging both ways, filter
chips and filters that apply as they change, the side panel and its address, keys, a phone's width.

One ``sightline serve`` for the module, fed over HTTP ingest with known costs; a failing test leaves a
screenshot under ``test-artifacts/`` (see ``conftest.open_page``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import UsersServer, login, open_page, serve_with_users

COUNT = 30


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UsersServer, dict[str, float | None]]]:
    """A server with :data:`COUNT` generations a minute apart; every 7th has no cost. Yields the
    server and each generation's cost."""
    server_gen = serve_with_users(tmp_path_factory.mktemp("lists"))
    server = next(server_gen)
    costs: dict[str, float | None] = {}
    batch = []
    for n in range(COUNT):
        gen_id = str(uuid.uuid4())
        cost = None if n % 7 == 3 else round(0.001 * ((n * 37) % 29 + 1), 4)
        costs[gen_id] = cost
        body: dict[str, Any] = {
            "id": gen_id,
            "timestamp": f"2026-11-01T10:{n:02d}:00Z",
            "model": {"id": "gpt-4o-mini" if n % 2 else "gpt-4o"},
            "input": {"type": "text", "content": [{"role": "user", "content": f"Question {n}: <b>why</b>?"}]},
            "output": {"type": "text", "content": f"Answer {n}: because."},
            "usage": {"promptTokens": 100 + n, "completionTokens": 10, "cost": cost},
            "performance": {"latency": 100.0 + n},
            "metadata": {"userId": "alice" if n % 3 else "bob", "plan": "pro" if n % 2 else "team"},
        }
        batch.append({"type": "generation", "body": body})
    with server.api() as api:
        r = api.post("/api/ingest", json={"batch": batch})
        assert r.status_code == 200, r.text
    yield server, costs
    with pytest.raises(StopIteration):
        next(server_gen)


@pytest.fixture
def page(browser: Browser, listed: tuple[UsersServer, Any], request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from open_page(browser, listed[0].url, request)


def shown_ids(page: Page) -> list[str]:
    return page.locator("input.row-select").evaluate_all("(boxes) => boxes.map((b) => b.value)")


def test_a_metadata_key_added_as_a_column_is_kept_after_reload_and_in_another_browser(
    page: Page, browser: Browser, listed: tuple[UsersServer, Any], request: pytest.FixtureRequest
) -> None:
    login(page, "member")
    table = page.get_by_role("table", name="Generations")
    expect(table.locator("th", has_text="plan")).to_have_count(0)
    page.get_by_text("Columns", exact=True).click()
    page.get_by_role("checkbox", name="plan").check()
    page.get_by_role("checkbox", name="Input").uncheck()
    page.get_by_role("button", name="Save columns").click()
    expect(table.locator("th", has_text="plan")).to_have_count(1)
    expect(table.locator("th", has_text="Input")).to_have_count(0)
    expect(table.locator("td[data-label=plan]").first).to_have_text(re.compile("pro|team"))
    page.reload()
    expect(table.locator("th", has_text="plan")).to_have_count(1)
    # The choice is on the server: a new browser (no cookies, no storage) of the same user has it.
    other = open_page(browser, listed[0].url, request)
    fresh = next(other)
    login(fresh, "member")
    expect(fresh.get_by_role("table", name="Generations").locator("th", has_text="plan")).to_have_count(1)
    fresh.get_by_text("Columns", exact=True).click()
    fresh.get_by_role("button", name="Default columns").click()
    expect(fresh.get_by_role("table", name="Generations").locator("th", has_text="plan")).to_have_count(0)
    with pytest.raises(StopIteration):
        next(other)


def test_sorting_by_cost_down_and_up_holds_across_two_pages(
    page: Page, listed: tuple[UsersServer, Any]
) -> None:
    costs: dict[str, float | None] = listed[1]
    login(page)
    page.goto("/generations?limit=25")
    page.get_by_role("link", name="Cost").click()
    expect(page).to_have_url(re.compile(r"sort=-cost"))
    expect(page.get_by_role("columnheader", name=re.compile("Cost"))).to_have_attribute(
        "aria-sort", "descending"
    )
    first = shown_ids(page)
    page.get_by_role("link", name="Next →").click()
    expect(page.get_by_label("Position")).to_have_text(f"26–{COUNT} of {COUNT}")
    ids = first + shown_ids(page)
    priced = [c for c in costs.values() if c is not None]
    nulls = [None] * (COUNT - len(priced))
    assert [costs[i] for i in ids] == sorted(priced, reverse=True) + nulls

    page.goto("/generations?limit=25&sort=-cost")
    page.get_by_role("link", name="Cost").click()  # again: the other way
    expect(page).to_have_url(re.compile(r"sort=cost"))
    ids = shown_ids(page)
    page.get_by_role("link", name="Next →").click()
    expect(page.get_by_label("Position")).to_have_text(f"26–{COUNT} of {COUNT}")
    ids += shown_ids(page)
    assert [costs[i] for i in ids] == nulls + sorted(priced)


def test_paging_forward_and_back_shows_the_same_rows(page: Page) -> None:
    login(page)
    page.goto("/generations")
    page.get_by_label("Rows per page").select_option("25")  # applies at once
    expect(page).to_have_url(re.compile(r"limit=25"))
    expect(page.get_by_label("Position")).to_have_text(f"1–25 of {COUNT}")
    first = shown_ids(page)
    page.get_by_role("link", name="Next →").click()
    expect(page.get_by_label("Position")).to_have_text(f"26–{COUNT} of {COUNT}")
    second = shown_ids(page)
    assert len(second) == COUNT - 25 and not set(first) & set(second)
    page.get_by_role("link", name="← Previous").click()
    expect(page.get_by_label("Position")).to_have_text(f"1–25 of {COUNT}")
    assert shown_ids(page) == first
    expect(page.locator(".pager .button.disabled", has_text="Previous")).to_be_visible()


def test_filters_apply_as_they_change_and_chips_remove_them(page: Page) -> None:
    login(page)
    page.goto("/generations")
    filters = page.get_by_role("search", name="Filter generations")
    filters.get_by_label("User id").fill("alice")  # applies after a pause in typing
    expect(page).to_have_url(re.compile(r"/generations\?project=demo&userId=alice$"))  # no empty fields
    expect(filters.get_by_label("User id")).to_be_focused()
    filters.get_by_label("Status").select_option("ok")
    expect(page).to_have_url(re.compile(r"userId=alice&status=ok$"))
    chips = page.get_by_role("list", name="Filters in use")
    expect(chips.get_by_role("link")).to_have_count(2)
    chips.get_by_role("link", name="Remove filter User: alice").click()
    expect(page).to_have_url(re.compile(r"/generations\?project=demo&status=ok$"))
    expect(filters.get_by_label("User id")).to_have_value("")
    expect(page.get_by_role("status", name="Totals")).to_contain_text(f"{COUNT} of {COUNT}")


def test_the_side_panel_opens_and_closes_with_the_address(page: Page) -> None:
    login(page)
    page.goto("/generations?userId=bob")
    link = page.locator("a[data-panel]").nth(1)
    path = link.get_attribute("href") or ""
    link.click()
    panel = page.get_by_role("complementary", name="Details")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("Answer")
    expect(panel.get_by_role("link", name="Open full page")).to_have_attribute("href", path)
    assert "open=" in page.url and page.url.startswith(page.url.split("?")[0])
    expect(page.get_by_role("table", name="Generations")).to_be_visible()  # the list stays
    page.reload()
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("Answer")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/generations\?userId=bob$"))
    page.go_back()
    expect(panel).to_be_visible()
    panel.get_by_role("button", name="Close the panel").click()
    expect(panel).to_be_hidden()
    # A ctrl/cmd click still opens the full page in a new tab: the panel does not take it.
    with page.context.expect_page() as opened:
        page.locator("a[data-panel]").first.click(modifiers=["Control"])
    opened.value.close()
    expect(panel).to_be_hidden()


def test_j_and_k_move_enter_opens_esc_closes(page: Page) -> None:
    login(page)
    page.goto("/generations")
    rows = page.locator("table.generations tbody tr")
    page.keyboard.press("j")
    expect(rows.nth(0)).to_have_class(re.compile("is-current"))
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    expect(rows.nth(1)).to_have_class(re.compile("is-current"))
    path = rows.nth(1).locator("a[data-panel]").get_attribute("href") or ""
    page.keyboard.press("Enter")
    panel = page.get_by_role("complementary", name="Details")
    expect(panel).to_be_visible()
    assert re.sub(r"%2F", "/", page.url.split("open=")[1]).startswith(path.split("?")[0])
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    # Not while typing: j in a search box is a letter.
    page.get_by_role("search", name="Filter generations").get_by_label("Model").focus()
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile("is-current"))


def test_a_phone_sees_cards_and_nothing_wider_than_the_screen(page: Page, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    login(page)
    for path in ("/generations", "/generations?userId=alice&sort=-cost&limit=25"):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width}px wide on a 390px screen"
        expect(page.locator("table.generations thead")).to_be_hidden()  # rows are cards
        card = page.locator("table.generations tbody tr").first
        expect(card.locator("td[data-label=Output]")).to_be_visible()
        box = card.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.get_by_text("Columns", exact=True).click()
    form = page.get_by_role("form", name="Choose columns")
    box = form.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
