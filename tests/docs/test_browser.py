"""The guide in Chromium, served by a real ``sightline serve``, with every request off the server refused
(as on a machine without the internet): it renders, its search finds a word, it follows the system's
dark mode, fits a 390 px screen, and the dashboard links to it. Script errors and anything the
Content-Security-Policy refuses fail a test; a failing test leaves a screenshot in ``test-artifacts/``."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.dashboard.conftest import UsersServer, login, open_page


@pytest.fixture
def page(
    browser: Browser, docs_server: UsersServer, built_guide: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh page on the docs server (see ``open_page``) that refuses every request off the server."""
    pages = open_page(browser, docs_server.url, request)
    opened = next(pages)
    refused: list[str] = []

    def only_here(route: Route) -> None:
        if route.request.url.startswith(docs_server.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    opened.route("**/*", only_here)
    yield opened
    with contextlib.suppress(StopIteration):
        next(pages)  # screenshot on failure, close, check the console
    assert refused == [], f"the guide asked for files off the server: {refused}"


def test_the_guide_opens_and_its_navigation_leads_to_the_sdk(page: Page) -> None:
    page.goto("/guide/")
    expect(page.locator("h1").first).to_have_text(re.compile(r"^Sightline\W*$"))
    page.get_by_role("link", name="Python SDK").first.click()
    page.wait_for_url(re.compile(r"/guide/sdk/$"))
    expect(page.locator("h1").first).to_have_text(re.compile(r"^Python SDK\W*$"))
    expect(page.locator("code", has_text="CallParams").first).to_be_visible()


def test_search_finds_a_word_of_the_guide(page: Page) -> None:
    page.goto("/guide/")
    search = page.locator("input.md-search__input")
    search.click()
    search.press_sequentially("spool", delay=50)  # the theme searches as keys are typed
    results = page.locator(".md-search-result__item")
    expect(results.first).to_be_visible()
    expect(results.first).to_contain_text(re.compile("spool", re.I))


def test_the_guide_follows_the_systems_dark_mode(page: Page) -> None:
    page.emulate_media(color_scheme="dark")
    page.goto("/guide/quickstart/")
    expect(page.locator("body")).to_have_attribute("data-md-color-scheme", "slate")
    page.emulate_media(color_scheme="light")
    page.goto("/guide/quickstart/")
    expect(page.locator("body")).to_have_attribute("data-md-color-scheme", "default")


def test_a_390px_screen_shows_the_guide_without_sideways_scrolling(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/guide/", "/guide/sdk/", "/guide/settings/"):
        page.goto(path)
        expect(page.locator("h1").first).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than the screen"


def test_the_dashboard_links_to_the_guide(page: Page) -> None:
    login(page)
    page.get_by_role("link", name="Guide").click()
    page.wait_for_url(re.compile(r"/guide/$"))
    expect(page.locator("h1").first).to_have_text(re.compile(r"^Sightline\W*$"))
