"""How the dashboard looks and reads, in Chromium: dark mode, local time or UTC, phone screens, moving
between generations, feedback controls and the page of one end user, on data the real SDK sent."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import Dashboard, _screenshot_on_failure, login

DARK_BACKGROUND = "rgb(13, 17, 23)"
LIGHT_BACKGROUND = "rgb(246, 247, 249)"


def _background(page: Page) -> str:
    return str(page.evaluate("getComputedStyle(document.body).backgroundColor"))


def test_dark_mode_follows_the_system_setting_until_the_switch_says_otherwise(
    page: Page, dashboard: Dashboard
) -> None:
    page.emulate_media(color_scheme="dark")
    login(page)
    page.goto(f"/generations/{dashboard.seeded.alice[1]}")
    assert _background(page) == DARK_BACKGROUND
    card = page.locator(".card").first
    assert card.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(22, 27, 34)"
    # the switch overrides the system, at once and on the next page (from its cookie, before any script)
    page.get_by_label("Theme").select_option("light")
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    assert _background(page) == LIGHT_BACKGROUND
    page.goto("/analytics")
    assert _background(page) == LIGHT_BACKGROUND
    page.emulate_media(color_scheme="light")
    page.get_by_label("Theme").select_option("dark")
    assert _background(page) == DARK_BACKGROUND
    page.goto("/prompts")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert _background(page) == DARK_BACKGROUND
    page.get_by_label("Theme").select_option("auto")
    assert _background(page) == LIGHT_BACKGROUND  # the system is light now


def test_the_theme_switch_works_without_javascript(browser: Browser, dashboard: Dashboard) -> None:
    context = browser.new_context(base_url=dashboard.url, java_script_enabled=False)
    page = context.new_page()
    try:
        login(page)
        page.goto("/runs")
        page.get_by_label("Theme").select_option("dark")
        page.locator("form.display").get_by_role("button", name="Set").click()
        expect(page).to_have_url(re.compile(r"/runs$"))
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        assert _background(page) == DARK_BACKGROUND
    finally:
        context.close()


@pytest.fixture
def tokyo(browser: Browser, dashboard: Dashboard, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(base_url=dashboard.url, timezone_id="Asia/Tokyo")
    page = context.new_page()
    yield page
    _screenshot_on_failure(request, page)
    context.close()


def test_times_show_in_local_time_or_utc_as_switched(tokyo: Page, dashboard: Dashboard) -> None:
    page = tokyo
    login(page)
    page.goto(f"/generations/{dashboard.seeded.alice[0]}")
    shown = page.locator(".head-badges time")
    at = datetime.fromisoformat(str(shown.get_attribute("datetime")).replace("Z", "+00:00"))
    utc_text = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    tokyo_text = (at.astimezone(UTC) + timedelta(hours=9)).strftime("%Y-%m-%d %H:%M:%S")
    expect(shown).to_have_text(tokyo_text)  # local time by default
    expect(shown).to_have_attribute("title", f"{utc_text} UTC")
    page.get_by_label("Times").select_option("utc")
    expect(shown).to_have_text(utc_text)
    expect(shown).to_have_attribute("title", f"{tokyo_text} (Asia/Tokyo)")
    # remembered, and column headings say which zone their times are in
    page.goto("/runs")
    expect(page.get_by_label("Times")).to_have_value("utc")
    expect(page.locator("html")).to_have_attribute("data-clock", "utc")
    expect(page.get_by_role("columnheader", name="Started (UTC)")).to_be_visible()
    page.get_by_label("Times").select_option("local")
    expect(page.get_by_role("columnheader", name="Started (local)")).to_be_visible()


def test_detail_pages_fit_a_phone_screen(page: Page, dashboard: Dashboard) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    login(page)
    paths = [
        f"/generations/{dashboard.seeded.alice[1]}",
        f"/generations/{dashboard.seeded.bob_script}",
        f"/runs/{dashboard.seeded.run_id}",
        f"/chats/{dashboard.seeded.chat_id}",
        "/users/alice",
        "/prompts",
        "/prompts/emoji",
        "/evaluators",
        "/datasets",
        "/analytics",
        "/account",
        "/admin/users",
        "/admin/keys",
        "/admin/providers",
        "/admin/audit",
        "/admin/operations",
    ]
    for path in paths:
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width}px wide on a 390px screen"
        # the whole top bar is on the screen: every section can be reached
        for link in page.locator(".nav a").all():
            box = link.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, path


def test_previous_and_next_stay_in_the_list_the_generation_was_opened_from(
    page: Page, dashboard: Dashboard
) -> None:
    login(page)
    alice = dashboard.seeded.alice  # soccer, then tennis
    page.goto("/generations?userId=alice")
    # the newest (tennis), opened as a full page from the list's link (a click opens the side panel)
    newest = page.get_by_role("table", name="Generations").locator("tbody tr").first
    page.goto(str(newest.locator(f"a[href*='{alice[1]}']").first.get_attribute("href")), referer=page.url)
    expect(page).to_have_url(re.compile(alice[1]))
    newer, older = page.get_by_role("link", name="← Newer"), page.get_by_role("link", name="Older →")
    expect(newer).to_have_count(0)  # the first of the list
    older.click()
    expect(page).to_have_url(re.compile(rf"/generations/{alice[0]}\?.*list=userId%3Dalice"))
    expect(page.locator(".output")).to_have_text("Goal: a soccer ball")
    expect(older).to_have_count(0)  # alice has two: the last of the list
    newer.click()
    expect(page).to_have_url(re.compile(alice[1]))
    # "Generations" goes back to the same list
    page.get_by_role("navigation", name="Breadcrumbs").get_by_role("link", name="Generations").click()
    expect(page).to_have_url(re.compile(r"/generations\?userId=alice$"))
    # opened on its own, a generation's neighbours are the project's, by time
    page.goto(f"/generations/{alice[0]}")
    expect(page.get_by_role("link", name="← Newer")).to_have_attribute("href", re.compile(alice[1]))


def test_stars_and_thumbs_are_buttons_that_send_feedback(page: Page, dashboard: Dashboard) -> None:
    login(page)
    page.goto(f"/generations/{dashboard.seeded.error}")
    form = page.locator("form.feedback-form")
    stars = form.locator(".star")
    expect(stars).to_have_count(5)
    expect(form.locator("select")).to_have_count(0)
    stars.nth(1).click()  # two stars
    page.mouse.move(0, 0)  # lit because chosen, not because pointed at
    lit = "el => getComputedStyle(el).color"
    assert stars.nth(0).evaluate(lit) == stars.nth(1).evaluate(lit) != stars.nth(2).evaluate(lit)
    form.get_by_text("▼ down").click()
    form.get_by_role("button", name="Send feedback").click()
    expect(page.get_by_role("status")).to_have_text("Feedback saved.")
    expect(page.locator(".stat", has_text="Feedback").locator(".fb")).to_have_text(["★2", "▼"])


def test_an_sdk_rating_from_0_to_1_shows_as_a_score_never_as_stars(page: Page, dashboard: Dashboard) -> None:
    generation = dashboard.seeded.bob_script
    sent = httpx.post(
        f"{dashboard.url}/api/generations/{generation}/feedback",
        json={"score": 0.8, "comment": "from the SDK"},
        headers={"Authorization": f"Bearer {dashboard.key}"},
    )
    assert sent.status_code < 300, sent.text
    login(page)
    page.goto(f"/generations/{generation}")
    stat = page.locator(".stat", has_text="Feedback")
    expect(stat.locator(".fb")).to_have_text(["score 0.8"])
    expect(stat).not_to_contain_text("★")


def test_a_user_page_shows_the_users_totals_as_the_api_counts_them(page: Page, dashboard: Dashboard) -> None:
    totals = httpx.post(
        f"{dashboard.url}/api/generations/totals",
        json={"filter": {"metadata.userId": "bob"}},
        headers={"Authorization": f"Bearer {dashboard.key}"},
    ).json()
    login(page)
    page.goto(f"/generations/{dashboard.seeded.bob_script}")
    page.get_by_role("link", name="User bob").click()
    expect(page).to_have_url(re.compile(r"/users/bob"))
    expect(page.get_by_role("heading", level=1)).to_have_text("bob")
    stats = page.get_by_role("region", name="Totals")
    expect(stats.locator("[data-total=requests]")).to_have_text(f"{totals['matched']:,}")
    expect(stats.locator("[data-total=tokens]")).to_have_text(f"{totals['tokens']:,}")
    expect(stats).to_contain_text("1 failed")
    latest = page.get_by_role("table", name="Latest requests").locator("tbody tr")
    expect(latest).to_have_count(totals["matched"])
    page.get_by_role("link", name=re.compile(r"^All 2 requests")).click()
    expect(page).to_have_url(re.compile(r"/generations\?.*userId=bob"))
    expect(page.get_by_role("table", name="Generations").locator("tbody tr")).to_have_count(2)
    # someone the application never named is not found, and says so
    missing = page.goto("/users/nobody-at-all")
    assert missing is not None and missing.status == 404
