"""Evaluations in the dashboard, in Chromium, against a real ``sightline serve`` (jobs running in it,
online evaluation every 0.2 s) whose gateway forwards to the local fake provider: an evaluator defined
in the page scores new generations, its scores show on the generations list (and filter it) and on a
generation with the judge's reasoning and a link to the judge's call; a backfill shows its count first;
a dataset from generations downloads as fine-tuning JSONL; two experiments compare side by side."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import UsersServer, login, open_page, serve_with_users
from tests.server.test_datasets import check_chat_line
from tests.server.test_ingest import generation


@pytest.fixture(scope="module")
def evals_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsersServer]:
    tmp = tmp_path_factory.mktemp("evals-pages")
    yield from serve_with_users(
        tmp, {"SIGHTLINE_EVAL_POLL_SECONDS": "0.2", "SIGHTLINE_JOB_POLL_SECONDS": "0.2"}
    )


@pytest.fixture
def page(browser: Browser, evals_server: UsersServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from open_page(browser, evals_server.url, request)


def _ingest(api: httpx.Client, gens: list[dict[str, Any]]) -> None:
    r = api.post("/api/ingest", json={"batch": [{"type": "generation", "body": g} for g in gens]})
    assert r.status_code == 200, r.text


def _wait(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_an_evaluator_defined_in_the_page_scores_new_generations(
    page: Page, evals_server: UsersServer
) -> None:
    api = evals_server.api()
    login(page)
    page.goto("/evaluators")
    expect(page.get_by_text("No evaluators yet.")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("quality")
    page.get_by_label("Type").select_option("llm_judge")
    page.get_by_label("Config (JSON)").fill(
        json.dumps({"model": "judge-model", "messages": [{"role": "user", "content": "{output}"}]})
    )
    page.get_by_label("Online filter (JSON; empty: none)").fill('{"template.name": "support"}')
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=re.compile("quality"))).to_be_visible()
    good = generation(
        id=str(uuid.uuid4()),
        template={"name": "support"},
        output={"content": '{"score": 0.9, "reasoning": "clear and kind"}'},
    )
    bad = generation(
        id=str(uuid.uuid4()),
        template={"name": "support"},
        output={"content": '{"score": 0.2, "reasoning": "rude"}'},
    )
    _ingest(api, [good, bad])
    _wait(lambda: (api.get(f"/api/generations/{bad['id']}").json().get("scores") or {}).get("quality"))
    page.reload()
    expect(page.get_by_role("table", name="Recent results")).to_contain_text("clear and kind")
    # the list shows the scores and filters by them
    page.goto("/generations")
    table = page.get_by_role("table", name="Generations")
    expect(table).to_contain_text("quality 0.9")
    page.get_by_text("More filters").click()
    page.get_by_label("Score").first.fill("quality<=0.5")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("quality 0.2")
    # one generation: the score, the judge's reasoning, a link to the judge's own call
    page.goto(f"/generations/{good['id']}")
    scores = page.locator("#scores")
    expect(scores).to_contain_text("0.9")
    expect(scores).to_contain_text("clear and kind")
    scores.get_by_role("link", name="the judge's call").click()
    expect(page.locator("main")).to_contain_text("judge-model")
    # a backfill says what it will take before it runs
    page.goto("/evaluators")
    page.get_by_role("link", name="quality").click()
    page.get_by_label("Filter (JSON)", exact=True).fill('{"template.name": "support"}')
    page.get_by_role("button", name="Estimate").click()
    expect(page.locator(".estimate")).to_contain_text("2 generations")
    page.get_by_role("button", name="Run now").click()
    expect(page.get_by_role("region", name="Backfill job")).to_contain_text(
        re.compile(r"succeeded|running|queued")
    )
    expect(page.get_by_role("region", name="Backfill job")).to_contain_text("succeeded", timeout=15_000)


def test_a_dataset_from_generations_downloads_as_fine_tuning_data(
    page: Page, evals_server: UsersServer
) -> None:
    api = evals_server.api()
    g = generation(id=str(uuid.uuid4()), template={"name": "faq"})
    _ingest(api, [g])
    api.post(f"/api/generations/{g['id']}/feedback", json={"betterResponse": "⚽ football"})
    login(page)
    page.goto("/datasets")
    page.get_by_label("Name").fill("faq-fixes")
    page.get_by_label("Filter (JSON)").fill('{"template.name": "faq"}')
    page.get_by_label("Expected output").select_option("betterResponse")
    page.get_by_role("button", name="Make it").click()
    expect(page.get_by_role("table", name="Items")).to_contain_text("⚽ football")
    with page.expect_download() as info:
        page.get_by_role("link", name="Fine-tuning (OpenAI chat JSONL)").click()
    lines = Path(info.value.path()).read_text(encoding="utf-8").splitlines()
    assert [check_chat_line(x)["messages"][-1]["content"] for x in lines] == ["⚽ football"]


def test_two_experiments_side_by_side(page: Page, evals_server: UsersServer) -> None:
    api = evals_server.api()
    for template in ("Reply {q}", "Reply politely {q}"):
        assert (
            api.post("/api/prompts", json={"name": "replier", "template": template, "model": "m"}).status_code
            == 201
        )
    api.post("/api/datasets", json={"name": "qs", "items": [{"input": "hi"}, {"input": "bye"}]})
    api.post(
        "/api/evaluators", json={"name": "polite", "type": "contains", "config": {"values": ["politely"]}}
    )
    login(page)
    ids = []
    for version in ("1", "2"):
        page.goto("/experiments")
        page.locator("select[name=dataset]").select_option("qs")
        page.locator("select[name=prompt]").select_option("replier")
        page.get_by_label("Version (empty: latest)").fill(version)
        page.get_by_label("polite").check()
        page.get_by_role("button", name="Run").click()
        page.wait_for_url(re.compile(r"/experiments/\d+"))
        ids.append(page.url.rsplit("/", 1)[-1].split("?")[0])
    for experiment_id in ids:
        _wait(lambda i=experiment_id: api.get(f"/api/experiments/{i}").json()["status"] == "succeeded")
    page.goto(f"/experiments/compare?a={ids[0]}&b={ids[1]}")
    expect(page.get_by_role("table", name="Summaries")).to_contain_text("2 better")
    expect(page.get_by_role("table", name="Items")).to_contain_text("Fake reply to: Reply politely hi")
