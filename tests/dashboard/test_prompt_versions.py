"""Prompt versions in Chromium against a real ``sightline serve``, fed by the real SDK (the real
``openai`` client, pointed at the local fake provider): 54 calls of one template whose content
changed once are two versions, v1 and v2 (never one per rendered prompt); each version's uses, cost,
latency and scores side by side; the default diff is the last change, with the words that changed
marked; any two versions compare; a version is tried from the page through the gateway and recorded."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

import sightline
from sightline.sdk import _worker
from tests.dashboard.conftest import UsersServer, login, open_page, serve_with_users

SPORTS = ["soccer", "tennis", "golf", "rugby", "judo", "rowing", "chess", "polo", "darts"]
V1 = [
    {"role": "system", "content": "You answer with emoji."},
    {"role": "user", "content": "An emoji for {sport}"},
]
V2 = [
    {"role": "system", "content": "You answer with one emoji only."},
    {"role": "user", "content": "An emoji for {sport}"},
]


def _wait_for(api: httpx.Client, params: dict[str, str], count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        found = api.get("/api/generations", params={**params, "limit": "200"}).json()["data"]
        if len(found) >= count:
            return list(found)
        assert time.monotonic() < deadline, f"{len(found)} of {count} generations recorded"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsersServer]:
    """54 calls of template ``sport-emoji`` through the SDK: 27 of its first content, then 27 of its
    second, each with other arguments (54 different rendered prompts); then 3 calls that only name
    the template; and a score on one call of v2."""
    for server in serve_with_users(tmp_path_factory.mktemp("prompt-versions")):
        _worker.reset()
        config = sightline.SightlineConfig(api_key=server.key, server_url=server.url)
        client = sightline.Client(api_key="sk-upstream", base_url=server.upstream.base_url, sightline=config)
        for i in range(54):
            template = V1 if i < 27 else V2
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=sightline.TemplateChat(template, {"sport": f"{SPORTS[i % 9]} #{i}"}),
                sightline=sightline.CallParams(prompt_template_name="sport-emoji", user_id=f"u{i % 4}"),
            )
            if i == 26:  # v2 comes later than v1 (versions are numbered by when they first appeared)
                assert sightline.flush(20)
                time.sleep(0.05)
        for _ in range(3):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"An emoji for anything {uuid.uuid4()}"}],
                sightline=sightline.CallParams(prompt_template_name="sport-emoji"),
            )
        assert sightline.flush(20), "the SDK could not deliver the calls"
        with server.api() as api:
            found = _wait_for(api, {"template.name": "sport-emoji"}, 57)
            v2_call = next(g for g in found if "one emoji only" in str(g["template"]))
            r = api.post(
                "/api/scores", json={"generationId": v2_call["id"], "name": "helpfulness", "value": 0.75}
            )
            assert r.status_code in (200, 201), r.text
        yield server
        _worker.reset(timeout=5)


@pytest.fixture
def page(browser: Browser, server: UsersServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from open_page(browser, server.url, request)


def _row(page: Page, tag: str) -> Any:
    return page.get_by_role("table", name="Versions").locator(f'tbody tr[data-version="{tag}"]')


def test_versions_are_counted_from_templates_only(page: Page) -> None:
    login(page)
    page.goto("/prompts")
    row = page.get_by_role("table", name="Prompts").locator("tbody tr", has_text="sport-emoji")
    expect(row.locator("td").nth(1)).to_have_text("2")  # two contents, not 54 rendered prompts
    expect(row.locator("td").nth(2)).to_contain_text("v2")
    expect(row.locator("td").nth(3)).to_have_text("57")
    row.get_by_role("link", name="sport-emoji").click()
    expect(page.locator(".stat", has_text="Versions").locator(".stat-value")).to_have_text("2")
    versions = page.get_by_role("table", name="Versions")
    expect(versions.locator("tbody tr[data-version]")).to_have_count(2)
    expect(versions.locator("tbody tr[data-version]").first).to_have_attribute(
        "data-version", "v2"
    )  # newest first
    # each version's uses, side by side; the calls that only named the template are apart
    expect(_row(page, "v1").locator("td").nth(1)).to_have_text("27")
    expect(_row(page, "v2").locator("td").nth(1)).to_have_text("27")
    expect(versions.locator("tbody tr", has_text="content not recorded").locator("td").nth(1)).to_have_text(
        "3"
    )
    for tag in ("v1", "v2"):
        expect(_row(page, tag).locator("td").nth(3)).to_contain_text(re.compile(r"\d+ ms / \d+ ms"))
    # the score given to a call of v2 is v2's, and only v2's
    expect(versions.get_by_role("columnheader", name="helpfulness")).to_be_visible()
    expect(_row(page, "v2").locator("td").nth(7)).to_have_text("0.75")
    expect(_row(page, "v1").locator("td").nth(7)).to_have_text("—")


def test_the_default_diff_is_the_last_change_and_any_two_compare(page: Page) -> None:
    login(page)
    page.goto("/prompts/sport-emoji")
    changes = page.get_by_role("region", name=re.compile("Changes from"))
    expect(changes.get_by_role("heading")).to_have_text("Changes from v1 to v2")
    diff = changes.get_by_label("Differences")
    expect(diff.locator(".diff-remove")).to_contain_text(["You answer with emoji."])
    expect(diff.locator(".diff-add")).to_contain_text(["You answer with one emoji only."])
    expect(diff.locator(".diff-add .diff-word")).to_contain_text(["one", "only"])  # the words that changed
    # any two versions: the other way round
    changes.get_by_label("From version").select_option("v2")
    changes.get_by_label("To version").select_option("v1")
    changes.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(r"a=v2&b=v1"))
    expect(page.get_by_role("heading", name="Changes from v2 to v1")).to_be_visible()
    expect(page.get_by_label("Differences").locator(".diff-add")).to_contain_text(["You answer with emoji."])
    # a version that is not there is named in a 400, not a 500
    response = page.goto("/prompts/sport-emoji?a=v9")
    assert response is not None and response.status == 400
    expect(page.locator("main")).to_contain_text("no version 'v9'")


def test_a_version_is_tried_through_the_gateway_and_recorded(page: Page, server: UsersServer) -> None:
    with server.api() as api:
        v1_hash = next(
            g["template"]["version"]
            for g in api.get(
                "/api/generations", params={"template.name": "sport-emoji", "limit": "200"}
            ).json()["data"]
            if "one emoji only" not in str(g["template"]) and g["template"].get("version")
        )
    login(page, "member")
    page.goto("/prompts/sport-emoji")
    _row(page, "v1").get_by_role("link", name="Try v1").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Test sport-emoji")
    expect(page.locator(".page-head")).to_contain_text("v1")
    expect(page.get_by_label("Model")).to_have_value("gpt-4o-mini")  # what its generations called
    page.get_by_label("Argument sport").fill("curling")
    page.get_by_role("button", name="Run").click()
    result = page.get_by_role("region", name="Result")
    expect(result.locator(".test-output")).to_have_text("Fake reply to: An emoji for curling")
    with server.api() as api:
        found = _wait_for(api, {"template.name": "sport-emoji"}, 58)
    tried = next(g for g in found if g["template"].get("params") == {"sport": "curling"})
    assert tried["template"]["version"] == v1_hash  # recorded as a use of v1
    page.goto("/prompts/sport-emoji")
    expect(_row(page, "v1").locator("td").nth(1)).to_have_text("28")
    expect(page.get_by_role("table", name="Versions").locator("tbody tr[data-version]")).to_have_count(2)
    page.goto("/prompts/sport-emoji/_run?version=v2")  # a version's tag opens it too
    expect(page.locator(".page-head")).to_contain_text("v2")
