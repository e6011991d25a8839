"""Managing prompts in the dashboard, in Chromium, against a real ``sightline serve`` whose gateway
forwards to the local fake provider: create, a refused save, edit (a new version) and the diff, move a
label (admin), test-run with arguments (recorded under the prompt's version), and what a member sees."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import UsersServer, login, open_page, serve_with_users

PromptServer = UsersServer


@pytest.fixture(scope="module")
def prompt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromptServer]:
    yield from serve_with_users(tmp_path_factory.mktemp("prompt-pages"))


@pytest.fixture
def page(browser: Browser, prompt_server: PromptServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from open_page(browser, prompt_server.url, request)


def test_an_admin_creates_edits_labels_and_test_runs_a_prompt(
    page: Page, prompt_server: PromptServer
) -> None:
    login(page)
    page.goto("/prompts")
    page.get_by_role("link", name="New prompt").click()
    expect(page).to_have_title("New prompt · Sightline")
    page.get_by_label("Name").fill("haiku")
    page.get_by_label("Text template").fill("Write a haiku about { topic }")
    page.get_by_label("Model").fill("gpt-4o-mini")
    page.get_by_label("Temperature").fill("0.5")
    page.get_by_role("button", name="Create prompt").click()
    # refused, with the field named, and what was typed kept
    expect(page.get_by_role("alert")).to_contain_text("template: '{ topic }'")
    expect(page.get_by_label("Name")).to_have_value("haiku")
    page.get_by_label("Text template").fill("Write a haiku about {topic}. Use {{braces}}.")
    page.get_by_role("button", name="Create prompt").click()

    expect(page).to_have_url(re.compile(r"/prompts/haiku"))
    expect(page.get_by_role("status")).to_have_text("Saved haiku version 1.")
    versions = page.get_by_role("table", name="Managed versions")
    expect(versions.locator("tbody tr").first).to_contain_text("v1")
    expect(versions.locator("tbody tr").first).to_contain_text("temperature=0.5")

    # edit: a chat version, a new version; the page draws the difference
    page.get_by_role("link", name="Edit (new version)").click()
    expect(page.get_by_label("Text template")).to_have_value("Write a haiku about {topic}. Use {{braces}}.")
    page.get_by_label("Kind: chat").check()
    page.get_by_label("Role of message 1").select_option("system")
    page.get_by_label("Content of message 1").fill("You write haiku about {topic}.")
    page.get_by_label("Content of message 2").fill("One about {topic}, please, in {lang}.")
    page.get_by_label("Description").fill("chat, with a language")
    page.get_by_role("button", name="Save new version").click()
    expect(page.get_by_role("status")).to_have_text("Saved haiku version 2.")
    expect(versions.locator("tbody tr").first).to_contain_text("v2")
    diff = page.get_by_label("Differences")
    expect(diff.locator(".diff-add").first).to_contain_text("[system]")
    expect(diff.locator(".diff-remove")).to_contain_text(["Write a haiku about {topic}. Use {{braces}}."])

    # move a label (admin), audited; the list shows it
    page.get_by_label("Label", exact=True).fill("production")
    page.get_by_label("Version", exact=True).select_option("1")
    page.get_by_role("button", name="Move label").click()
    expect(page.get_by_role("status")).to_have_text("Label production moved to version 1.")
    expect(versions.locator("tbody tr").last).to_contain_text("production")
    with prompt_server.api() as api:
        assert api.get("/api/prompts/haiku", params={"label": "production"}).json()["version"] == 1
        latest = api.get("/api/prompts/haiku").json()
    page.goto("/prompts")
    expect(page.get_by_role("table", name="Prompts")).to_contain_text("production: v1")

    # test-run the latest version with its arguments: through the gateway, recorded under the prompt
    page.goto("/prompts/haiku")
    page.get_by_role("link", name="Test run").first.click()
    expect(page.get_by_label("Argument topic")).to_be_visible()
    page.get_by_label("Argument topic").fill("autumn")
    page.get_by_label("Argument lang").fill("French")
    page.get_by_role("button", name="Run").click()
    result = page.get_by_role("region", name="Result")
    expect(result.locator(".test-output")).to_have_text("Fake reply to: One about autumn, please, in French.")
    with prompt_server.api() as api:
        deadline = time.monotonic() + 10
        while not (found := api.get("/api/generations", params={"template.name": "haiku"}).json()["data"]):
            assert time.monotonic() < deadline, "the test run was not recorded"
            time.sleep(0.1)
    [generation] = found
    assert generation["template"]["version"] == latest["templateVersion"]
    assert generation["template"]["params"] == {"topic": "autumn", "lang": "French"}
    assert generation["parameters"]["temperature"] == 0.5  # v2 kept the settings of v1 it was edited from
    result.get_by_role("link", name="The recorded generation").click()
    expect(page).to_have_url(re.compile(generation["id"]))


def test_a_member_sees_prompts_and_test_runs_but_cannot_change_them(
    page: Page, prompt_server: PromptServer
) -> None:
    with prompt_server.api() as api:
        r = api.post(
            "/api/prompts", json={"name": "greeter", "template": "Hello {who}", "model": "gpt-4o-mini"}
        )
        assert r.status_code == 201, r.text
    login(page, "member")
    page.goto("/prompts/greeter")
    expect(page.get_by_role("table", name="Managed versions")).to_contain_text("v1")
    expect(page.get_by_role("link", name="Edit (new version)")).to_have_count(0)
    expect(page.get_by_role("button", name="Move label")).to_have_count(0)
    page.get_by_role("link", name="Test run").first.click()
    page.get_by_label("Argument who").fill("Mia")
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_role("region", name="Result").locator(".test-output")).to_have_text(
        "Fake reply to: Hello Mia"
    )
    response = page.goto("/prompts/_new")
    assert response is not None and response.status == 403
