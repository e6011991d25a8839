"""Saved views and bulk actions on the generations list: over HTTP with a logged-in session (in process),
and in Chromium against a real server fed by the real SDK."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, Page, expect

import sightline
from sightline.sdk import _worker
from tests.conftest import Api
from tests.dashboard.conftest import UsersServer, login, open_page, serve_with_users
from tests.dashboard.test_pages import csrf_of, logged_in, send

sqlite_only = pytest.mark.parametrize("dialect", ["sqlite"])  # the pages' logic is the same on both


async def _csrf(http: httpx.AsyncClient) -> str:
    return csrf_of((await http.get("/views")).text)


async def _flash(http: httpx.AsyncClient, response: httpx.Response) -> str:
    """The message the page a form redirected to shows."""
    assert response.status_code == 303, response.text
    page = await http.get(response.headers["location"])
    found = re.search(r'<div class="flash flash-(ok|error)" role="status">([^<]*)</div>', page.text)
    assert found, "no message on the page"
    return f"{found.group(1)}: {found.group(2)}"


# saved views


@sqlite_only
async def test_a_saved_view_opens_its_filters_and_only_its_owner_sees_it(api: Api) -> None:
    alice = await send(api, metadata={"userId": "alice"})
    bob = await send(api, metadata={"userId": "bob"})
    http = await logged_in(api, "ann", "member")
    token = await _csrf(http)
    query = "userId=alice&status=&cursor=MTIzfGFi&project=demo"
    r = await http.post(
        "/views", data={"csrf": token, "name": "Alice", "query": query, "page": "generations"}
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/generations?userId=alice&project=demo"  # no paging, no empty field
    listed = await http.get(r.headers["location"])
    assert "Saved the view “Alice”." in listed.text
    assert alice in listed.text and bob not in listed.text  # the filter is applied
    assert re.search(r'<a href="/generations\?userId=alice&amp;project=demo">Alice</a>', listed.text)
    views = await http.get("/views")
    assert "Alice" in views.text and "userId=alice" in views.text
    view_id = re.search(r'action="/views/(\d+)/rename"', views.text).group(1)  # type: ignore[union-attr]
    opened = await http.get(f"/views/{view_id}")
    assert (
        opened.status_code == 302 and opened.headers["location"] == "/generations?userId=alice&project=demo"
    )

    # the same name again is refused, naming the field, and the form keeps what was sent
    again = await http.post("/views", data={"csrf": token, "name": " Alice ", "query": "status=ok"})
    assert again.status_code == 409
    assert "name: you already have a view of generations called" in again.text
    assert 'value="status=ok"' in again.text
    too_long = await http.post("/views", data={"csrf": token, "name": "x" * 201, "query": ""})
    assert too_long.status_code == 400 and "name:" in too_long.text
    forged = await http.post("/views", data={"name": "no token", "query": ""})
    assert forged.status_code == 403

    # another user sees none of it, and cannot open, rename or delete it
    other = await logged_in(api, "oscar", "admin")
    assert "Alice" not in (await other.get("/views")).text
    assert (await other.get(f"/views/{view_id}")).status_code == 404
    other_token = await _csrf(other)
    r = await other.post(f"/views/{view_id}/delete", data={"csrf": other_token})
    assert r.status_code == 404

    # renamed, then deleted, by its owner
    r = await http.post(f"/views/{view_id}/rename", data={"csrf": token, "name": "Alice only"})
    assert await _flash(http, r) == "ok: Renamed the view to “Alice only”."
    r = await http.post(f"/views/{view_id}/delete", data={"csrf": token})
    assert await _flash(http, r) == "ok: Deleted the view “Alice only”."
    assert "No saved views yet." in (await http.get("/views")).text


# bulk actions


async def _generations(api: Api, n: int, **fields: Any) -> list[str]:
    return [await send(api, output={"content": f"answer {i}"}, **fields) for i in range(n)]


async def _other_project(api: Api) -> str:
    """A generation of another project, whose id the form may be sent with but must never touch."""
    key = api.new_key("other", "prod")
    body = {"id": str(uuid.uuid4()), "model": {"id": "gpt-4o"}}
    r = await api.http.post("/api/generations", json=body, headers=api.headers(key))
    assert r.status_code == 201
    return str(body["id"])


@sqlite_only
async def test_bulk_feedback_and_scores_reach_each_selected_generation_only(api: Api) -> None:
    ids = await _generations(api, 4)
    theirs = await _other_project(api)
    http = await logged_in(api, "mia", "member")
    token = await _csrf(http)
    picked = [*ids[:3], theirs, "no-such-id"]
    r = await http.post(
        "/generations/bulk",
        data={
            "csrf": token,
            "ids": picked,
            "action": "feedback",
            "thumbs": "up",
            "rating": "4",
            "back": "/generations?userId=x",
        },
    )
    assert r.headers["location"] == "/generations?userId=x"
    assert await _flash(http, r) == "ok: Feedback given on 3 generations. 2 selected rows were not found."
    for gen_id in ids[:3]:
        feedback = (await api.http.get(f"/api/generations/{gen_id}")).json()["feedback"]
        assert feedback["thumbs"] == "up" and feedback["rating"] == 4 and feedback["userId"] == "mia"
    assert "feedback" not in (await api.http.get(f"/api/generations/{ids[3]}")).json()

    r = await http.post(
        "/generations/bulk",
        data={
            "csrf": token,
            "ids": picked,
            "action": "score",
            "score_name": "helpfulness",
            "score_value": "0.9",
        },
    )
    assert await _flash(http, r) == (
        "ok: Scored 3 generations: helpfulness = 0.9. 2 selected rows were not found."
    )
    for gen_id in ids[:3]:
        scores = (await api.http.get("/api/scores", params={"generationId": gen_id})).json()["data"]
        assert [(s["name"], s["value"], s["source"]) for s in scores if s["name"] == "helpfulness"] == [
            ("helpfulness", 0.9, "human")
        ]
    r = await http.post(
        "/generations/bulk",
        data={
            "csrf": token,
            "ids": ids[:2],
            "action": "score",
            "score_name": "correct",
            "score_value": "pass",
        },
    )
    assert (await _flash(http, r)).startswith("ok: Scored 2 generations")
    scores = (await api.http.get("/api/scores", params={"generationId": ids[0]})).json()["data"]
    assert any(s["name"] == "correct" and s["label"] == "pass" for s in scores)

    # the other project's generation was never touched, and is never named
    other_key = api.new_key("other", "prod")
    record = (await api.http.get(f"/api/generations/{theirs}", headers=api.headers(other_key))).json()
    assert "feedback" not in record and not record.get("scores")
    r = await http.post(
        "/generations/bulk", data={"csrf": token, "ids": [theirs], "action": "feedback", "thumbs": "down"}
    )
    assert await _flash(http, r) == "error: None of the selected generations was found in this project."

    # what is missing is said, and nothing is written
    r = await http.post("/generations/bulk", data={"csrf": token, "ids": ids, "action": "feedback"})
    assert await _flash(http, r) == "error: Give thumbs or a rating to send as feedback."
    r = await http.post(
        "/generations/bulk", data={"csrf": token, "ids": ids, "action": "score", "score_value": "1"}
    )
    assert (await _flash(http, r)).startswith("error: score name:")
    r = await http.post("/generations/bulk", data={"csrf": token, "action": "feedback", "thumbs": "up"})
    assert (await _flash(http, r)).startswith("error: Select some rows first")
    # a member may not add to a dataset, as on the datasets page
    r = await http.post(
        "/generations/bulk", data={"csrf": token, "ids": ids, "action": "dataset", "dataset": "d"}
    )
    assert (await _flash(http, r)).startswith("error: Adding to a dataset is for admins")


@sqlite_only
async def test_bulk_add_to_a_dataset_and_export_take_exactly_the_selected_rows(api: Api) -> None:
    ids = await _generations(api, 5)
    theirs = await _other_project(api)
    http = await logged_in(api)
    token = await _csrf(http)
    picked = [ids[0], ids[2], ids[4], theirs]
    r = await http.post(
        "/generations/bulk", data={"csrf": token, "ids": picked, "action": "dataset", "dataset": "golden"}
    )
    assert await _flash(http, r) == (
        "ok: 3 added to dataset golden (now v1, 3 items). 1 selected row was not found."
    )
    dataset = (await api.http.get("/api/datasets/golden")).json()
    assert sorted(item["sourceGenerationId"] for item in dataset["data"]) == sorted(picked[:3])
    page = await http.get("/datasets/golden")
    assert page.status_code == 200 and page.text.count("answer ") >= 3
    r = await http.post(
        "/generations/bulk", data={"csrf": token, "ids": [ids[1]], "action": "dataset", "dataset": "golden"}
    )
    assert await _flash(http, r) == "ok: 1 added to dataset golden (now v2, 4 items)."

    r = await http.post("/generations/bulk", data={"csrf": token, "ids": picked, "action": "export"})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    lines = [orjson.loads(line) for line in r.content.splitlines()]
    assert sorted(g["id"] for g in lines) == sorted(picked[:3])
    r = await http.post(
        "/generations/bulk", data={"csrf": token, "ids": picked, "action": "export", "format": "csv"}
    )
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted(row["id"] for row in rows) == sorted(picked[:3])


@sqlite_only
async def test_bulk_actions_are_bounded_and_checked(api: Api) -> None:
    ids = await _generations(api, 1)
    http = await logged_in(api)
    token = await _csrf(http)
    many = [*ids, *(f"id-{i}" for i in range(500))]
    r = await http.post(
        "/generations/bulk", data={"csrf": token, "ids": many, "action": "feedback", "thumbs": "up"}
    )
    assert r.status_code == 400 and "ids: select at most 500 rows" in r.text
    assert "feedback" not in (await api.http.get(f"/api/generations/{ids[0]}")).json()
    r = await http.post("/generations/bulk", data={"csrf": token, "ids": ids, "action": "delete"})
    assert r.status_code == 400 and "action:" in r.text
    r = await http.post("/generations/bulk", data={"ids": ids, "action": "feedback", "thumbs": "up"})
    assert r.status_code == 403  # no CSRF token: a forged request
    r = await http.post(
        "/generations/bulk",
        data={"csrf": token, "ids": ids, "action": "feedback", "thumbs": "up", "back": "https://evil.test/"},
    )
    assert r.headers["location"] == "/generations?project=demo"  # never a redirect off the site


# in the browser


@pytest.fixture(scope="module")
def views_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsersServer]:
    """A server with three calls of alice and three of bob, sent by the real SDK."""
    for server in serve_with_users(tmp_path_factory.mktemp("views-pages")):
        _worker.reset()
        config = sightline.SightlineConfig(api_key=server.key, server_url=server.url)
        client = sightline.Client(api_key="sk-upstream", base_url=server.upstream.base_url, sightline=config)
        for user in ("alice", "bob"):
            for i in range(3):
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"question {i} of {user}"}],
                    extra_headers={"x-fake-reply": f"reply {i} to {user}"},
                    sightline=sightline.CallParams(user_id=user),
                )
        assert sightline.flush(20), "the SDK could not deliver the seed data"
        try:
            yield server
        finally:
            _worker.reset(timeout=5)


@pytest.fixture
def page(browser: Browser, views_server: UsersServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from open_page(browser, views_server.url, request)


def _rows(page: Page) -> Any:
    return page.get_by_role("table", name="Generations").locator("tbody tr")


def _saved_views_menu(page: Page) -> Any:
    page.locator("details.saved-views > summary").click()
    return page.get_by_role("group", name="Saved views")


def test_a_saved_view_is_kept_opens_its_filter_and_is_the_users_own(
    page: Page, browser: Browser, views_server: UsersServer, request: pytest.FixtureRequest
) -> None:
    login(page)
    page.goto("/generations?userId=alice")
    expect(_rows(page)).to_have_count(3)
    menu = _saved_views_menu(page)
    menu.get_by_label("View name").fill("Alice's calls")
    menu.get_by_role("button", name="Save view").click()
    expect(page.get_by_role("status").filter(has_text="Saved the view")).to_have_text(
        "Saved the view “Alice's calls”."
    )
    page.goto("/generations")
    expect(_rows(page)).to_have_count(6)
    page.reload()
    _saved_views_menu(page).get_by_role("link", name="Alice's calls").click()
    expect(page).to_have_url(re.compile(r"/generations\?userId=alice&project=demo$"))
    expect(_rows(page)).to_have_count(3)
    for i in range(3):
        expect(_rows(page).nth(i)).to_contain_text("alice")
    # renamed on the views page; another user sees none of it
    page.goto("/views")
    page.get_by_label("New name of Alice's calls").fill("Alice")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("link", name="Alice", exact=True)).to_be_visible()
    for other in open_page(browser, views_server.url, request):
        login(other, "member")
        menu = _saved_views_menu(other)
        expect(menu).to_contain_text("No saved views yet")
        expect(menu.get_by_role("link", name="Alice", exact=True)).to_have_count(0)


def test_rows_ticked_in_the_list_are_added_to_a_dataset_given_feedback_scored_and_exported(
    page: Page, views_server: UsersServer, tmp_path: Path
) -> None:
    login(page)
    page.goto("/generations?userId=bob")
    expect(_rows(page)).to_have_count(3)
    bar = page.get_by_role("form", name="Selected rows")
    bar.get_by_label("Select all on page").check()
    expect(bar.locator(".bulk-count")).to_have_text("3 selected")
    bar.get_by_text("Add to dataset").click()
    bar.get_by_label("Dataset").fill("bob-set")
    bar.get_by_role("button", name="Add selected").click()
    expect(page.get_by_role("status").filter(has_text="added")).to_have_text(
        "3 added to dataset bob-set (now v1, 3 items)."
    )
    page.goto("/datasets/bob-set")
    for i in range(3):
        expect(page.get_by_text(f"reply {i} to bob").first).to_be_visible()

    # two rows, by their own boxes: thumbs up for both
    page.goto("/generations?userId=bob")
    boxes = _rows(page).locator("input.row-select")
    boxes.nth(0).check()
    boxes.nth(1).check()
    expect(bar.locator(".bulk-count")).to_have_text("2 selected")
    chosen = [boxes.nth(i).get_attribute("value") for i in range(2)]
    bar.get_by_text("Feedback", exact=True).click()
    bar.get_by_label("▲ up").check()
    bar.get_by_role("button", name="Give feedback").click()
    expect(page.get_by_role("status").filter(has_text="Feedback")).to_have_text(
        "Feedback given on 2 generations."
    )
    for gen_id in chosen:
        record = views_server.api().get(f"/api/generations/{gen_id}").json()
        assert record["feedback"]["thumbs"] == "up" and record["feedback"]["userId"] == "admin"

    # a score for one, by Enter in its value field
    page.goto("/generations?userId=bob")
    _rows(page).locator("input.row-select").nth(2).check()
    third = _rows(page).locator("input.row-select").nth(2).get_attribute("value")
    bar.get_by_text("Score", exact=True).click()
    bar.get_by_label("Score name").fill("tone")
    bar.get_by_label("Value").fill("0.25")
    bar.get_by_label("Value").press("Enter")
    expect(page.get_by_role("status").filter(has_text="Scored")).to_have_text(
        "Scored 1 generation: tone = 0.25."
    )
    scores = views_server.api().get("/api/scores", params={"generationId": third}).json()["data"]
    assert [(s["name"], s["value"]) for s in scores] == [("tone", 0.25)]

    # the export holds exactly the ticked rows
    page.goto("/generations?userId=bob")
    _rows(page).locator("input.row-select").nth(0).check()
    _rows(page).locator("input.row-select").nth(2).check()
    wanted = {_rows(page).locator("input.row-select").nth(i).get_attribute("value") for i in (0, 2)}
    bar.get_by_text("Export", exact=True).click()
    bar.get_by_label("Format").select_option("csv")
    with page.expect_download() as download:
        bar.get_by_role("button", name="Download selected").click()
    path = tmp_path / "export.csv"
    download.value.save_as(path)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert {row["id"] for row in rows} == wanted


def test_the_bulk_bar_and_saved_views_fit_a_phone(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 800})
    login(page)
    page.goto("/generations")
    bar = page.get_by_role("form", name="Selected rows")
    bar.get_by_label("Select all on page").check()
    for tool in ("Export", "Add to dataset", "Feedback", "Score"):
        bar.get_by_text(tool, exact=True).click()
        tool_box = bar.locator("details.bulk-tool").filter(has=page.get_by_text(tool, exact=True))
        panel = tool_box.locator(".bulk-panel")
        expect(panel).to_be_visible()
        expect(bar.locator("details[open]")).to_have_count(1)  # one panel open at a time
        box = panel.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, tool
    _saved_views_menu(page)
    box = page.get_by_role("group", name="Saved views").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
