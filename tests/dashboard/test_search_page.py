"""Search from the dashboard, in Chromium: a word of one output among thousands of generations, found
with another filter and counted in the totals; the runs list searched by its calls' words.

One ``sightline serve`` for the module, fed over HTTP ingest; a failing test leaves a screenshot
under ``test-artifacts/`` (see ``conftest.open_page``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import UsersServer, login, open_page, serve_with_users
from tests.server.test_search_api import FILLER as WORDS

COUNT = 3000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsersServer]:
    gen = serve_with_users(tmp_path_factory.mktemp("search"))
    server = next(gen)
    rng = random.Random(3)
    batch: list[dict[str, Any]] = []
    for n in range(COUNT):
        output = " ".join(rng.choices(WORDS, k=30))
        if n in (1234, 2345):
            output += " The offsite moves to Zanzibar."
        body: dict[str, Any] = {
            "id": f"gen-{n}",
            "timestamp": f"2026-11-{1 + n // 1440:02d}T{n // 60 % 24:02d}:{n % 60:02d}:00Z",
            "model": {"id": "gpt-4o-mini"},
            "input": {"type": "text", "content": [{"role": "user", "content": f"Request {n}"}]},
            "output": {"type": "text", "content": output},
            "usage": {"promptTokens": 50, "completionTokens": 30, "cost": 0.001},
        }
        if n >= COUNT - 4:  # the last four are two runs of two calls
            body["runId"] = f"run-{n % 2}"
            body["output"]["content"] = "Glacier melt report" if n % 2 else output
        else:
            body["metadata"] = {"userId": "alice" if n % 2 else "bob"}
        if n in (100, 101, 102):  # two chats, one of them about penguins
            body["chatId"] = "chat-penguins" if n == 101 else "chat-other"
            body["output"]["content"] += " Penguins parade at noon." if n == 101 else ""
        batch.append({"type": "generation", "body": body})
    with server.api() as api:
        for start in range(0, COUNT, 1000):
            r = api.post("/api/ingest", json={"batch": batch[start : start + 1000]})
            assert r.status_code == 200, r.text
            assert all(item["status"] == 201 for item in r.json()["results"]), r.text
    yield server
    with pytest.raises(StopIteration):
        next(gen)


@pytest.fixture
def page(browser: Browser, server: UsersServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from open_page(browser, server.url, request)


def test_a_word_of_one_output_among_thousands_is_found_with_a_user_filter(page: Page) -> None:
    login(page, "member")
    page.goto("/generations?range=all")
    table = page.get_by_role("table", name="Generations")
    page.get_by_role("searchbox", name="Search").fill("zanzibar")
    page.get_by_role("searchbox", name="Search").press("Enter")
    expect(page).to_have_url(re.compile(r"[?&]q=zanzibar"))
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_role("status", name="Totals")).to_contain_text("2 of")
    expect(page.get_by_role("link", name="Search: zanzibar")).to_be_visible()
    # Combined with a user: gen-1234 is bob's, gen-2345 alice's.
    page.goto(page.url + "&userId=alice")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("input.row-select")).to_have_attribute("value", "gen-2345")
    expect(page.get_by_role("status", name="Totals")).to_contain_text("1 of")


def test_the_runs_list_is_searched_by_the_words_of_its_calls(page: Page) -> None:
    login(page, "member")
    page.goto("/runs")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_role("searchbox", name="Search").fill("glacier")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("run-1")
    expect(page.get_by_role("status", name="Totals")).to_contain_text("1 of 2 runs")
    # The search is kept as a saved view of the runs list, and opens again from its menu.
    page.locator("summary", has_text="Saved views").click()
    page.get_by_label("View name").fill("glacier runs")
    page.get_by_role("button", name="Save view").click()
    page.goto("/runs")
    expect(rows).to_have_count(2)
    page.locator("summary", has_text="Saved views").click()
    page.get_by_role("link", name="glacier runs").click()
    expect(rows).to_have_count(1)
    # Page sizes are a choice of the list's; another is refused by name.
    page.get_by_label("Rows per page").select_option("25")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"limit=25"))
    page.goto("/runs?limit=7")
    expect(page.get_by_role("alert")).to_contain_text("limit")


def test_chats_are_searched_by_what_was_said(page: Page) -> None:
    login(page, "member")
    page.goto("/chats")
    expect(page.get_by_role("status", name="Totals")).to_contain_text("2 chats · $0.003 · 240 tokens")
    page.get_by_role("searchbox", name="Search").fill("penguins")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name="Chats holding “penguins”")).to_be_visible()
    expect(page.locator("table tbody tr")).to_have_count(1)
    expect(page.locator("table tbody tr").first).to_contain_text("chat-penguins")
    page.goto('/chats?q="')
    expect(page.get_by_role("alert")).to_contain_text("q")
