"""The analytics page in Chromium against a real ``sightline serve``, fed through the ingest API with
data three days old (as an application that stopped calling a few days ago): the default range fits
the data, every bar of a ranking is named, a click on a bar opens the generations behind it, scores
and feedback have their charts, and a model keeps its colour whatever the range."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from sightline.server.dashboard.core.timerange import fitting_range
from tests.dashboard.conftest import UsersServer, login, open_page, serve_with_users

DAY_US = 86_400_000_000
LONG_USER = "a-user-with-a-rather-long-name-that-will-not-fit@example.com"
USERS = [f"user-{i:02d}" for i in range(11)] + [LONG_USER]  # 12 users: the top 10 are drawn
MODELS = ("gpt-4o", "gpt-4o-mini")


def _generation(ts: datetime, user: str, model: str, tokens: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "timestamp": ts.isoformat().replace("+00:00", "Z"),
        "model": {"id": model, "provider": "openai"},
        "input": {"type": "text", "content": [{"role": "user", "content": f"hello from {user}"}]},
        "output": {"type": "text", "content": "hi"},
        "usage": {"promptTokens": tokens, "completionTokens": 10},
        "metadata": {"userId": user},
        "performance": {"latency": 300.0 + tokens % 200},
        "template": {
            "name": "greet",
            "chat": [{"role": "user", "content": "hello from {who}"}],
            "params": {"who": user},
        },
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsersServer]:
    """A server whose only data is three days old: 12 users of two models, scores and feedback."""
    for server in serve_with_users(tmp_path_factory.mktemp("analytics-pages")):
        # An hour before a 3-hour boundary (the buckets of 7 days), so the calls (2.5 hours of them)
        # fill two buckets, and the first twelve (the ones with feedback, under an hour) one, whatever
        # the time of day the tests run.
        boundary = datetime.fromtimestamp(
            (datetime.now(UTC) - timedelta(days=3)).timestamp() // 10800 * 10800, UTC
        )
        start = boundary - timedelta(hours=1)
        batch, ids = [], []
        for i, user in enumerate(USERS):
            for j in range(i + 1):  # user i makes i + 1 calls: a ranking without ties
                g = _generation(start + timedelta(minutes=7 * (i + j)), user, MODELS[j % 2], 100 * (i + 1))
                batch.append({"type": "generation", "body": g})
                ids.append(g["id"])
        with server.api() as api:
            r = api.post("/api/ingest", json={"batch": batch})
            assert r.status_code == 200, r.text
            assert all(item.get("status", 201) in (200, 201) for item in r.json().get("results", [])), r.text
            for n, generation_id in enumerate(ids[:12]):
                thumbs = "up" if n % 3 else "down"
                r = api.post(
                    f"/api/generations/{generation_id}/feedback", json={"thumbs": thumbs, "rating": 1 + n % 5}
                )
                assert r.status_code in (200, 201), r.text
                r = api.post(
                    "/api/scores",
                    json={"generationId": generation_id, "name": "helpfulness", "value": n / 12},
                )
                assert r.status_code in (200, 201), r.text
        server.generations = len(ids)  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def page(browser: Browser, server: UsersServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from open_page(browser, server.url, request)


def _chart(page: Page, chart_id: str, script: str) -> Any:
    canvas = page.locator(f'canvas[data-chart="{chart_id}"]')
    expect(canvas).to_have_attribute("data-drawn", "true")
    canvas.scroll_into_view_if_needed()  # (points are clicked at their place in the window)
    return canvas.evaluate(f"c => {{ const chart = window.Chart.getChart(c); {script} }}")


def test_the_default_range_fits_data_three_days_old(page: Page, server: UsersServer) -> None:
    login(page)
    page.goto("/analytics")
    expect(page.get_by_label("Time range")).to_have_value("7d")
    expect(page.get_by_role("note")).to_contain_text("Nothing in the last 24 hours")
    total = server.generations  # type: ignore[attr-defined]
    expect(page.locator(".stat", has_text="Requests").locator(".stat-value")).to_have_text(str(total))
    # asked for the last 24 hours, the page shows them (empty) and says nothing of fitting
    page.get_by_label("Time range").select_option("24h")
    expect(page).to_have_url(re.compile(r"range=24h"))
    expect(page.locator(".stat", has_text="Requests").locator(".stat-value")).to_have_text("0")
    expect(page.get_by_role("note")).to_have_count(0)


def test_every_bar_of_top_users_is_named(page: Page) -> None:
    login(page)
    page.goto("/analytics")
    labels = _chart(page, "users", "return chart.scales.y.ticks.map(t => t.label);")
    assert len(labels) == 10  # the ten costliest, each named (none skipped)
    assert labels[0].endswith("…") and len(labels[0]) <= 22  # the longest name is cut...
    assert [label for label in labels[1:]] == [f"user-{i:02d}" for i in range(10, 1, -1)]
    table = page.locator("#chart-users details.chart-table")
    table.locator("summary").click()
    expect(table.get_by_role("link", name=LONG_USER)).to_be_visible()  # ...and whole in the table


def test_a_click_on_a_bar_opens_its_generations(page: Page) -> None:
    login(page)
    page.goto("/analytics")
    # the biggest bar of gpt-4o requests
    point = _chart(
        page,
        "requests",
        """const i = chart.data.datasets.findIndex(d => d.label === 'gpt-4o');
           const values = chart.data.datasets[i].data; const j = values.indexOf(Math.max(...values));
           const bar = chart.getDatasetMeta(i).data[j]; const box = c.getBoundingClientRect();
           return {x: box.left + bar.x, y: box.top + (bar.y + bar.base) / 2, count: values[j]};""",
    )
    page.mouse.click(point["x"], point["y"])
    expect(page).to_have_url(re.compile(r"/generations\?.*model\.id=gpt-4o"))
    assert "from=" in page.url and "to=" in page.url
    rows = page.get_by_role("table", name="Generations").locator("tbody tr")
    expect(rows).to_have_count(int(point["count"]))
    expect(rows.first).to_contain_text("gpt-4o")

    # a bar of the users' ranking opens that user's generations
    page.goto("/analytics")
    point = _chart(
        page,
        "users",
        """const bar = chart.getDatasetMeta(0).data[1]; const box = c.getBoundingClientRect();
           return {x: box.left + (bar.x + bar.base) / 2, y: box.top + bar.y};""",
    )
    page.mouse.click(point["x"], point["y"])
    expect(page).to_have_url(re.compile(r"/generations\?.*userId=user-10"))
    expect(page.get_by_role("table", name="Generations").locator("tbody tr")).to_have_count(11)


def test_scores_feedback_and_breakdowns_have_charts(page: Page) -> None:
    login(page)
    page.goto("/analytics")
    for chart in ("scores", "feedback", "rating", "user-trend", "template-trend"):
        expect(page.locator(f'canvas[data-chart="{chart}"]')).to_have_attribute("data-drawn", "true")
    scores = _chart(page, "scores", "return chart.data.datasets.map(d => d.label);")
    assert scores == ["helpfulness"]  # feedback (also scored) has its own charts, on its own scale
    thumbs = _chart(
        page, "feedback", "return chart.data.datasets.map(d => [d.label, d.data.reduce((a, b) => a + b, 0)]);"
    )
    assert thumbs == [["thumbs up", 8], ["thumbs down", 4]]
    users = _chart(page, "user-trend", "return chart.data.datasets.map(d => d.label);")
    assert users == [LONG_USER, "user-10", "user-09", "user-08", "user-07"]
    templates = _chart(page, "template-trend", "return chart.data.datasets.map(d => d.label);")
    assert templates == ["greet"]
    # a line of few buckets keeps its points drawn
    radii = _chart(
        page,
        "latency",
        "return chart.data.datasets.map(d => d.pointRadius.filter((r, i) => d.data[i] !== null));",
    )
    assert radii[:2] == [[3, 3], [3, 3]]  # latency p50 and p95 (no call measured its first token)


def test_the_tables_link_each_bucket_to_its_generations(page: Page) -> None:
    login(page)
    page.goto("/analytics")
    table = page.locator("#chart-feedback details.chart-table")
    table.locator("summary").click()
    links = table.get_by_role("link")
    expect(links).to_have_count(1)  # the one bucket with feedback; empty ones are not links
    links.first.click()
    expect(page).to_have_url(re.compile(r"/generations\?.*range=custom&from=.*&to="))
    expect(page.get_by_role("table", name="Generations").locator("tbody tr").first).to_be_visible()


def test_a_model_keeps_its_colour_across_ranges(page: Page) -> None:
    login(page)
    colours = "return Object.fromEntries(chart.data.datasets.map(d => [d.label, d.borderColor]));"
    seen = []
    for picked in ("7d", "30d", "all"):
        page.goto(f"/analytics?range={picked}")
        seen.append(_chart(page, "requests", colours))
        assert _chart(page, "cost", colours) == seen[-1]
    assert seen[0] == seen[1] == seen[2]
    assert seen[0]["gpt-4o"] != seen[0]["gpt-4o-mini"]


def test_the_range_that_fits_the_data() -> None:
    now = 1_000 * DAY_US
    assert fitting_range(None, now) == "24h"
    assert fitting_range((now - 400 * DAY_US, now - DAY_US // 2), now) == "24h"
    assert fitting_range((now - 3 * DAY_US, now - 3 * DAY_US), now) == "7d"
    assert fitting_range((now - 20 * DAY_US, now - 2 * DAY_US), now) == "30d"
    assert fitting_range((now - 60 * DAY_US, now - 2 * DAY_US), now) == "90d"
    assert fitting_range((now - 200 * DAY_US, now - 2 * DAY_US), now) == "all"


def test_all_time_and_a_bad_range(page: Page, server: UsersServer) -> None:
    login(page)
    page.goto("/analytics?range=all")
    expect(page.get_by_label("Time range")).to_have_value("all")
    total = server.generations  # type: ignore[attr-defined]
    expect(page.locator(".stat", has_text="Requests").locator(".stat-value")).to_have_text(str(total))
    response = page.goto("/analytics?range=forever")
    assert response is not None and response.status == 400
    expect(page.locator("main")).to_contain_text("range: expected one of")
