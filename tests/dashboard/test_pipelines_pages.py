"""Functions and pipelines in the dashboard, in Chromium, against a real ``sightline serve`` whose gateway
forwards to the local fake provider: sync with its message and "Refresh page" link, a pipeline saved with
live validation, executed from its form with the result and a link to its run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import UsersServer, login, open_page, serve_with_users


@dataclass
class PipelineServer:
    server: UsersServer
    functions: Path

    @property
    def url(self) -> str:
        return self.server.url

    def api(self) -> httpx.Client:
        return self.server.api()


@pytest.fixture(scope="module")
def pipeline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineServer]:
    tmp = tmp_path_factory.mktemp("pipeline-pages")
    functions = tmp / "functions"
    functions.mkdir()
    for server in serve_with_users(tmp, {"SIGHTLINE_FUNCTIONS_DIR": str(functions)}):
        yield PipelineServer(server, functions)


@pytest.fixture
def page(browser: Browser, pipeline_server: PipelineServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from open_page(browser, pipeline_server.url, request)


def test_sync_shows_its_counts_and_a_refresh_link_when_something_changed(
    page: Page, pipeline_server: PipelineServer
) -> None:
    login(page)
    page.goto("/functions")
    expect(page.get_by_text("No functions registered yet.")).to_be_visible()
    page.get_by_role("button", name="Sync").click()
    result = page.locator(".sync-result")
    expect(result).to_contain_text(re.compile(r"\d+ added, 0 deleted"))
    expect(result.get_by_role("link", name="Refresh page")).to_be_visible()
    expect(page.get_by_role("table", name="Functions")).to_contain_text(
        "builtin_concat(a: str, b: str) → str"
    )
    # Nothing changed: the message, no link.
    page.get_by_role("button", name="Sync").click()
    expect(page.locator(".sync-result")).to_contain_text("0 added, 0 deleted")
    expect(page.locator(".sync-result").get_by_role("link")).to_have_count(0)
    # A new file and a broken one: one added, the broken one listed with its error.
    (pipeline_server.functions / "custom_words.py").write_text(
        'def reverse_words(text: str) -> str:\n    """The words in reverse order."""\n'
        '    return " ".join(reversed(text.split()))\n'
    )
    (pipeline_server.functions / "custom_broken.py").write_text("1 / 0\n")
    page.get_by_role("button", name="Sync").click()
    expect(page.locator(".sync-result")).to_contain_text("1 added, 0 deleted")
    expect(page.get_by_role("region", name="Not registered")).to_contain_text(
        "custom_broken.py: ZeroDivisionError: division by zero (line 1)"
    )
    page.locator(".sync-result").get_by_role("link", name="Refresh page").click()
    expect(page.get_by_role("table", name="Functions")).to_contain_text("The words in reverse order.")
    (pipeline_server.functions / "custom_broken.py").unlink()


def test_a_pipeline_saved_with_live_validation_runs_from_its_form(
    page: Page, pipeline_server: PipelineServer
) -> None:
    with pipeline_server.api() as api:
        r = api.post(
            "/api/prompts", json={"name": "prompt_a", "template": "About {a}", "model": "gpt-4o-mini"}
        )
        assert r.status_code == 201, r.text
        api.post("/api/functions/sync")  # refused for a key: the page's sync (or the CLI) registers
    login(page)
    page.goto("/functions")
    page.get_by_role("button", name="Sync").click()
    page.goto("/pipelines")
    page.get_by_label("Name").fill("shouted")
    expression = page.get_by_label("Expression")
    expression.fill("upper(prompt_a(a_arg)")
    expect(page.locator("#expression-check")).to_contain_text("line 1, column")
    expression.fill("upper(prompt_a(a_arg))")
    expect(page.locator("#expression-check")).to_contain_text("Valid. Arguments: a_arg")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/pipelines/\d+"))
    page.get_by_label("Argument a_arg").fill("cats")
    page.get_by_role("button", name="Run").click()
    expect(page.locator(".pipeline-output")).to_have_text("FAKE REPLY TO: ABOUT CATS")
    page.get_by_role("link", name="The run").click()
    expect(page).to_have_url(re.compile(r"/runs/"))
    expect(page.locator("main")).to_contain_text("upper")


def test_a_refused_expression_is_shown_with_its_place_and_kept(page: Page) -> None:
    login(page)
    page.goto("/pipelines")
    page.get_by_label("Name").fill("broken")
    page.get_by_label("Expression").fill("x.y()")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("line 1, column 1")
    expect(page.get_by_label("Expression")).to_have_value("x.y()")


def test_a_member_runs_pipelines_but_neither_saves_nor_syncs(page: Page) -> None:
    login(page, "member")
    page.goto("/functions")
    expect(page.get_by_role("button", name="Sync")).to_have_count(0)
    page.goto("/pipelines")
    expect(page.get_by_role("region", name="New pipeline")).to_have_count(0)
