"""A run as a tree and a waterfall, the runs and chats lists with their totals, in Chromium against a real
server fed by real OTLP/JSON exports, the real SDK (a pipeline over the real ``openai`` client) and the
gateway with its cache on."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from playwright.sync_api import Browser, Page, expect

import sightline
from sightline.sdk import _worker
from tests.dashboard.conftest import UsersServer, login, open_page, serve_with_users


@dataclass
class Trace:
    """Ids of one OTLP trace sent by hand: span ids by name."""

    id: str
    spans: dict[str, str] = field(default_factory=dict)


@dataclass
class Fed:
    server: UsersServer
    trace: Trace
    big: Trace
    sdk_run: str
    chat_id: str


def _span(
    trace: str,
    span: str,
    name: str,
    attrs: dict[str, Any],
    *,
    parent: str = "",
    start_ms: int = 0,
    length_ms: int = 100,
    error: str = "",
) -> dict[str, Any]:
    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, int):
            return {"intValue": str(v)}
        return {"stringValue": str(v)}

    at = _BASE_NS + start_ms * 1_000_000
    return {
        "traceId": trace,
        "spanId": span,
        "parentSpanId": parent,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(at),
        "endTimeUnixNano": str(at + length_ms * 1_000_000),
        "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()],
        "status": {"code": 2, "message": error} if error else {},
    }


_BASE_NS = time.time_ns() - 3_600 * 10**9  # an hour ago


def _export(spans: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "agent-app"}}]
                    },
                    "scopeSpans": [{"scope": {"name": "by-hand"}, "spans": spans}],
                }
            ]
        }
    )


def _post_traces(server: UsersServer, body: bytes) -> None:
    r = httpx.post(
        f"{server.url}/api/otel/v1/traces",
        content=body,
        headers={"Content-Type": "application/json", "x-api-key": server.key},
        timeout=60,
    )
    assert r.status_code == 200, r.text


def _nested_trace(server: UsersServer) -> Trace:
    """agent > (plan > (model call, failed tool call), search-docs): three levels, one failure."""
    trace = Trace(secrets.token_hex(16))
    for name in ("agent", "plan", "llm", "weather", "search"):
        trace.spans[name] = secrets.token_hex(8)
    s, t = trace.spans, trace.id
    spans = [
        _span(
            t,
            s["agent"],
            "agent",
            {"user.id": "tree-user", "input.value": "Plan my trip to Oslo"},
            length_ms=900,
        ),
        _span(t, s["plan"], "plan", {"input.value": "trip"}, parent=s["agent"], start_ms=50, length_ms=500),
        _span(
            t,
            s["llm"],
            "chat gpt-4o-mini",
            {
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "Which days are sunny in Oslo?",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "Tuesday and Friday look sunny.",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
            },
            parent=s["plan"],
            start_ms=60,
            length_ms=300,
        ),
        _span(
            t,
            s["weather"],
            "tool weather-api",
            {"input.value": '{"city": "Oslo"}'},
            parent=s["plan"],
            start_ms=380,
            length_ms=100,
            error="weather service timed out",
        ),
        _span(
            t,
            s["search"],
            "search-docs",
            {"input.value": '{"query": "Oslo museums"}', "output.value": "Munch Museum; Fram Museum"},
            parent=s["agent"],
            start_ms=600,
            length_ms=250,
        ),
    ]
    _post_traces(server, _export(spans))
    return trace


def _big_trace(server: UsersServer, steps: int = 500) -> Trace:
    """A trace of ``steps`` spans: a root and chains of ten under it."""
    trace = Trace(secrets.token_hex(16))
    root = secrets.token_hex(8)
    spans = [_span(trace.id, root, "big-root", {}, length_ms=steps * 2)]
    parent = root
    for i in range(1, steps):
        span = secrets.token_hex(8)
        parent = root if i % 10 == 1 else parent
        spans.append(
            _span(
                trace.id,
                span,
                f"work-{i}",
                {"output.value": f"done {i}"},
                parent=parent,
                start_ms=i,
                length_ms=1,
            )
        )
        parent = span
    trace.spans["root"] = root
    _post_traces(server, _export(spans))
    return trace


def _sdk_run(server: UsersServer) -> str:
    config = sightline.SightlineConfig(api_key=server.key, server_url=server.url)
    client = sightline.Client(api_key="sk-upstream", base_url=server.upstream.base_url, sightline=config)
    pipeline = sightline.Pipeline("answer-mail", client=client)
    with pipeline.start({"userId": "sdk-user"}) as run:
        run.step("lookup", inputs={"customer": "c-1"}, outputs={"orders": 2})
        run.openai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Write the reply"}],
            extra_headers={"x-fake-reply": "Dear customer, both orders shipped."},
        )
        run.step("send", inputs={"to": "c-1"}, outputs={"sent": True})
    if not sightline.flush(20):
        raise RuntimeError("the SDK could not deliver the run")
    return run.id


def _cached_chat(server: UsersServer) -> str:
    chat_id = f"chat-{uuid.uuid4().hex[:8]}"
    client = openai.OpenAI(api_key=server.key, base_url=f"{server.url}/v1", max_retries=0)
    for _ in range(2):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "What is the capital of Norway?"}],
            temperature=0,
            extra_headers={"X-Sightline-Cache": "use", "X-Sightline-Chat-Id": chat_id},
        )
    return chat_id


def _wait_for(server: UsersServer, path: str, ready: Any) -> Any:
    deadline = time.monotonic() + 20
    with server.api() as api:
        while True:
            found = api.get(path).json()
            if ready(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    tmp: Path = tmp_path_factory.mktemp("run-tree")
    for server in serve_with_users(tmp):
        _worker.reset()
        try:
            trace = _nested_trace(server)
            big = _big_trace(server)
            sdk_run = _sdk_run(server)
            chat_id = _cached_chat(server)
            with server.api() as api:
                r = api.post("/api/scores", json={"runId": trace.id, "name": "helpful", "value": 0.8})
                assert r.status_code == 201, r.text
            _wait_for(server, f"/api/runs/{sdk_run}", lambda run: len(run.get("steps") or []) == 3)
            _wait_for(server, "/api/generations?chatId=" + chat_id, lambda found: len(found["data"]) == 2)
            yield Fed(server, trace, big, sdk_run, chat_id)
        finally:
            _worker.reset(timeout=5)


@pytest.fixture
def page(browser: Browser, fed: Fed, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from open_page(browser, fed.server.url, request)


def _row(page: Page, key: str) -> Any:
    return page.locator(f'li[data-key="{key}"]')


def test_a_nested_otlp_trace_is_a_tree_with_a_waterfall(page: Page, fed: Fed) -> None:
    login(page)
    spans = fed.trace.spans
    page.goto(f"/runs/{fed.trace.id}")
    tree = page.get_by_role("list", name="Steps of the run")
    expect(tree.locator(":scope > li")).to_have_count(1)  # the root span alone at the top
    root = _row(page, spans["agent"])
    expect(root.locator(":scope > .node-row .step-name")).to_have_text("agent")
    children = root.locator(":scope > ol > li > .node-row .step-name")
    expect(children).to_have_text(["plan", "search-docs"])
    plan = _row(page, spans["plan"])
    expect(plan.locator(":scope > ol > li > .node-row .step-name")).to_have_text(
        ["gpt-4o-mini", "tool weather-api"]
    )
    expect(plan.locator(":scope > ol > li .badge.kind")).to_have_text(["model call", "tool"])
    expect(_row(page, spans["search"]).locator(".badge.kind").first).to_have_text("retrieval")
    # every step has its bar on the one time axis, and later steps start further right
    bars = tree.locator("svg.waterfall .timeline-bar")
    expect(bars).to_have_count(5)
    xs = [float(bars.nth(i).get_attribute("x") or "0") for i in range(5)]
    assert xs[0] == 0 and xs == sorted(xs), xs
    # the failed tool call stands out, its ancestors say so, the run is failed, and the totals count it
    weather = page.locator("li.step-error", has=page.get_by_role("link", name="tool weather-api"))
    expect(weather.locator(".badge-error").first).to_contain_text("weather service timed out")
    expect(plan.locator(":scope > .node-row")).to_contain_text("1 failed below")
    expect(page.locator(".head-badges").first).to_contain_text("error")
    expect(page.locator(".stat", has_text="Failed steps").locator(".stat-value")).to_have_text("1")
    expect(page.locator(".stat", has_text="Steps").first.locator(".stat-value")).to_have_text("5")
    expect(page.locator(".stat", has_text="Tokens").locator(".stat-value")).to_have_text("150")
    # the run's own input and output (its root span's), and its score
    detail = page.locator("#node-detail")
    expect(detail.locator(".run-input")).to_contain_text("Plan my trip to Oslo")
    expect(page.locator(".run-scores")).to_contain_text("helpful")
    expect(page.locator(".run-scores")).to_contain_text("0.8")


def test_selecting_a_step_shows_it_beside_the_tree_and_in_the_address(page: Page, fed: Fed) -> None:
    login(page)
    spans = fed.trace.spans
    page.goto(f"/runs/{fed.trace.id}")
    page.get_by_role("link", name="search-docs").click()
    expect(page).to_have_url(re.compile(rf"step={spans['search']}"))
    detail = page.locator("#node-detail")
    expect(detail.get_by_role("heading", name="search-docs")).to_be_visible()
    expect(detail.locator(".step-input")).to_contain_text('"query": "Oslo museums"')
    expect(detail.locator(".step-output")).to_contain_text("Munch Museum; Fram Museum")
    expect(detail.locator(".step-facts")).to_contain_text("250 ms")
    expect(_row(page, spans["search"])).to_have_class(re.compile("selected"))
    # a model call shows its messages, tokens and cost, and links to the generation
    page.get_by_role("link", name="gpt-4o-mini").click()
    expect(detail.locator(".step-input")).to_contain_text("Which days are sunny in Oslo?")
    expect(detail.locator(".step-output")).to_contain_text("Tuesday and Friday look sunny.")
    expect(detail.locator(".step-facts")).to_contain_text("120 in, 30 out")
    expect(detail.get_by_role("link", name="Open the generation")).to_be_visible()
    model_call_url = page.url
    # the failed step shows its error
    page.get_by_role("link", name="tool weather-api").click()
    expect(detail.get_by_role("alert")).to_have_text("weather service timed out")
    # back goes to the step before; a reload (or a shared address) opens with it selected
    page.go_back()
    expect(page).to_have_url(model_call_url)
    expect(detail.locator(".step-output")).to_contain_text("Tuesday and Friday look sunny.")
    page.reload()
    expect(detail.locator(".step-output")).to_contain_text("Tuesday and Friday look sunny.")
    expect(page.locator("li.selected")).to_have_count(1)
    # closing the details leaves the run's own input and output, and the address without a step
    detail.get_by_role("link", name="Close the step's details").click()
    expect(page).not_to_have_url(re.compile("step="))
    expect(detail.locator(".run-input")).to_contain_text("Plan my trip to Oslo")
    expect(page.locator("li.selected")).to_have_count(0)


def test_without_javascript_a_step_is_a_plain_link(browser: Browser, fed: Fed) -> None:
    context = browser.new_context(base_url=fed.server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        login(page)
        page.goto(f"/runs/{fed.trace.id}")
        page.get_by_role("link", name="search-docs").click()
        expect(page).to_have_url(re.compile(rf"step={fed.trace.spans['search']}"))
        expect(page.locator("#node-detail .step-output")).to_contain_text("Munch Museum")
        page.goto(f"/runs/{fed.trace.id}?step=no-such-step")
        expect(page.locator("#node-detail")).to_contain_text("This run has no step no-such-step")
    finally:
        context.close()


def test_branches_collapse_and_expand(page: Page, fed: Fed) -> None:
    login(page)
    page.goto(f"/runs/{fed.trace.id}")
    plan = _row(page, fed.trace.spans["plan"])
    model_call = page.get_by_role("link", name="gpt-4o-mini")
    expect(model_call).to_be_visible()
    plan.get_by_role("button", name="Collapse plan").click()
    expect(model_call).to_be_hidden()
    plan.get_by_role("button", name="Expand plan").click()
    expect(model_call).to_be_visible()
    page.get_by_role("button", name="Collapse all").click()
    expect(page.get_by_role("link", name="plan")).to_be_hidden()
    page.get_by_role("button", name="Expand all").click()
    expect(model_call).to_be_visible()


def test_a_run_of_the_sdk_shows_its_steps_under_the_run(page: Page, fed: Fed) -> None:
    login(page)
    page.goto(f"/runs/{fed.sdk_run}")
    top = page.get_by_role("list", name="Steps of the run").locator(":scope > li")
    expect(top.locator(".step-name")).to_have_text(["lookup", "gpt-4o-mini", "send"])
    expect(top.locator(".step-index")).to_have_text(["0", "1", "2"])
    top.nth(1).get_by_role("link").click()
    expect(page.locator("#node-detail .step-output")).to_contain_text("Dear customer, both orders shipped.")
    top.nth(0).get_by_role("link").click()
    expect(page.locator("#node-detail .step-output")).to_contain_text('"orders": 2')


def test_a_run_of_500_steps_shows_every_step(page: Page, fed: Fed) -> None:
    login(page)
    started = time.monotonic()
    page.goto(f"/runs/{fed.big.id}")
    elapsed = time.monotonic() - started
    expect(page.locator("li.node")).to_have_count(500)
    expect(page.locator(".stat", has_text="Steps").first.locator(".stat-value")).to_have_text("500")
    # chains of ten: the deepest step is eleven levels down, and still inside the screen's width
    expect(page.locator(".tree-head")).to_contain_text("11 levels deep")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1281, width
    print(f"500-step run page loaded in {elapsed * 1000:.0f} ms (browser, navigation included)")


def test_the_runs_list_has_cost_tokens_scores_and_totals(page: Page, fed: Fed) -> None:
    login(page)
    page.goto("/runs")
    totals = page.get_by_role("status", name="Totals")
    expect(totals).to_contain_text("3 of 3 runs")
    table = page.get_by_role("table", name="Runs")
    expect(table.get_by_role("columnheader")).to_contain_text(["Tokens", "Cost", "Scores"])
    row = table.locator("tbody tr", has_text=fed.trace.id)
    expect(row.locator('td[data-label="Tokens"]')).to_have_text("150")
    expect(row.locator('td[data-label="Cost"]')).to_have_text(re.compile(r"\$\d"))
    expect(row.locator('td[data-label="Scores"]')).to_contain_text("helpful 0.8")
    expect(row.locator('td[data-label="Status"]')).to_contain_text("error")
    expect(row.locator("a[data-panel]")).to_have_count(1)
    # the totals follow the filter, and match what the API says of the same runs
    page.goto("/runs?userId=tree-user")
    expect(totals).to_contain_text("1 of 3 runs")
    with fed.server.api() as api:
        gens = api.get("/api/generations", params={"runId": fed.trace.id}).json()["data"]
    cost = sum(g["usage"]["cost"] or 0 for g in gens)
    expect(totals).to_contain_text(f"{sum(g['usage']['totalTokens'] for g in gens)} tokens")
    assert cost > 0
    page.goto("/runs?status=error")
    expect(table.locator("tbody tr")).to_have_count(1)


def test_a_chat_marks_the_turn_answered_from_the_cache(page: Page, fed: Fed) -> None:
    login(page)
    page.goto("/chats")
    row = page.get_by_role("table", name="Recent chats").locator("tbody tr", has_text=fed.chat_id)
    expect(row.locator('td[data-label="Turns"]')).to_have_text("2")
    expect(row.locator('td[data-label="Cache hits"]')).to_have_text("1")
    expect(row.locator("a[data-panel]")).to_have_count(1)
    page.goto(f"/chats/{fed.chat_id}")
    turns = page.locator("ol.chat > li")
    expect(turns).to_have_count(2)
    expect(turns.nth(0).locator(".badge-cache")).to_have_count(0)
    expect(turns.nth(1).locator(".badge-cache")).to_have_text("cache hit")
    expect(turns.nth(1).locator(".turn-latency")).to_have_text(re.compile(r"\d"))
    expect(page.get_by_role("status", name="Totals")).to_contain_text("1 from the cache")


def test_the_run_page_fits_a_phone_screen(page: Page, fed: Fed) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    login(page)
    for path in (
        f"/runs/{fed.trace.id}",
        f"/runs/{fed.trace.id}?step={fed.trace.spans['llm']}",
        f"/runs/{fed.big.id}",
        "/runs",
        "/chats",
        f"/chats/{fed.chat_id}",
    ):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 391, f"{path} is {width}px wide on a 390px screen"
