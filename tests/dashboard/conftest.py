"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against ``sightline serve``.

One server process is started for the whole session, with two users made by ``sightline
create-admin`` (an admin and a member), and data sent by the real SDK (``sightline.Client`` over the
real ``openai`` client) pointed at the local fake upstream (``tests/fake_openai.py``).

A failing browser test leaves a screenshot under ``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

import sightline
from sightline.sdk import _worker
from tests.conftest import sightline_command, start_server, stop_server
from tests.fake_openai import FakeOpenAI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORDS = {"admin": "admin-password-1", "member": "member-password-1"}
SCRIPT_REPLY = '<script>alert("pwned")</script><img src=x onerror=alert(2)> plain text after'


@dataclass
class Seeded:
    """Ids of what the SDK sent, to find it on the pages."""

    alice: list[str] = field(default_factory=list)
    bob_script: str = ""
    error: str = ""
    run_id: str = ""
    run_calls: list[str] = field(default_factory=list)
    chat_id: str = ""


@dataclass
class Dashboard:
    url: str
    key: str
    database_url: str
    seeded: Seeded

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SIGHTLINE_DATABASE_URL": self.database_url}
        return subprocess.run(
            [*sightline_command(), *args], env=env, capture_output=True, text=True, timeout=60, check=True
        )


def _feedback_id(response: Any) -> str:
    from sightline.feedback_key import parse_feedback_key

    return parse_feedback_key(str(response.model_extra["sightline_feedback_key"]))[0]


def seed(url: str, key: str, upstream: str) -> Seeded:
    """Send generations, a chat and a pipeline run through the real SDK."""
    seeded = Seeded(chat_id=f"chat-{uuid.uuid4().hex[:8]}")
    config = sightline.SightlineConfig(api_key=key, server_url=url)
    client = sightline.Client(api_key="sk-upstream", base_url=upstream, sightline=config)
    ticket = {"type": "url", "url": "https://tracker.example/T-1", "text": "Ticket T-1"}
    # (a header carries the fake's reply: one line of ASCII)
    for sport, reply in (
        ("soccer", "Goal: a soccer ball"),
        ("tennis", '{"emoji": "tennis ball", "sport": "tennis"}'),
    ):
        event_id = str(uuid.uuid4())
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=sightline.TemplateChat(
                [
                    {"role": "system", "content": "You answer with emoji."},
                    {"role": "user", "content": "Show me an emoji for the sport: {sport}"},
                ],
                {"sport": sport},
            ),
            extra_headers={"x-fake-reply": reply},
            sightline=sightline.CallParams(
                event_id=event_id,
                user_id="alice",
                chat_id=seeded.chat_id,
                prompt_template_name="emoji",
                metadata={"ticket": ticket, "plan": "pro"},
            ),
        )
        seeded.alice.append(event_id)
    seeded.bob_script = str(uuid.uuid4())
    client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "<b>bold?</b> <script>alert('in')</script>"}],
        extra_headers={"x-fake-reply": SCRIPT_REPLY},
        sightline=sightline.CallParams(event_id=seeded.bob_script, user_id="bob"),
    )
    seeded.error = str(uuid.uuid4())
    no_retries = sightline.Client(api_key="sk-upstream", base_url=upstream, sightline=config, max_retries=0)
    with contextlib.suppress(openai.RateLimitError):
        no_retries.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "too many"}],
            extra_headers={"x-fake-status": "429"},
            sightline=sightline.CallParams(event_id=seeded.error, user_id="bob"),
        )
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "count to five"}],
        stream=True,
        extra_headers={"x-fake-delay": "0.01", "x-fake-reply": "one two three four five"},
        sightline=sightline.CallParams(user_id="dave"),
    )
    for _ in stream:
        pass
    pipeline = sightline.Pipeline("compose-email", client=client)
    with pipeline.start({"userId": "carol", "metadata": {"plan": "team"}}) as run:
        run.step("retrieve", inputs={"query": "soccer"}, outputs=["doc-1", "doc-2"])
        for text in ("draft the email", "polish the email"):
            response = run.openai.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
            )
            seeded.run_calls.append(_feedback_id(response))
        run.step("send", inputs={"to": "someone@example.com"}, outputs={"sent": True})
    seeded.run_id = run.id
    if not sightline.flush(20):
        raise RuntimeError("the SDK could not deliver the seed data")
    return seeded


@dataclass
class UsersServer:
    """A ``sightline serve`` with a key of project demo, an admin and a member (:data:`PASSWORDS`), whose
    gateway forwards to a local fake provider."""

    url: str
    key: str
    database_url: str
    upstream: FakeOpenAI

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=10)


def serve_with_users(tmp: Path, env: dict[str, str] | None = None) -> Iterator[UsersServer]:
    """A :class:`UsersServer` on a SQLite file under ``tmp``, with ``env`` settings on top."""
    database_url = f"sqlite:///{tmp / 'server.db'}"
    cli_env = {**os.environ, "SIGHTLINE_DATABASE_URL": database_url}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [*sightline_command(), *args], env=cli_env, capture_output=True, text=True, timeout=60, check=True
        )
        return done.stdout.strip()

    key = cli("token", "create", "--project", "demo", "--environment", "dev").splitlines()[-1]
    cli("create-admin", "--username", "admin", "--password", PASSWORDS["admin"])
    cli("create-admin", "--username", "member", "--password", PASSWORDS["member"], "--role", "member")
    upstream = FakeOpenAI()
    upstream_env = {"SIGHTLINE_UPSTREAM_URL": upstream.base_url, "SIGHTLINE_UPSTREAM_API_KEY": "sk-upstream"}
    process, url = start_server(database_url, tmp / "server.log", env={**upstream_env, **(env or {})})
    try:
        yield UsersServer(url, key, database_url, upstream)
    finally:
        stop_server(process)
        upstream.close()


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """``sightline serve`` on a temporary SQLite file, with users, a key, and data from the SDK."""
    tmp = tmp_path_factory.mktemp("dashboard")
    database_url = f"sqlite:///{tmp / 'server.db'}"
    env = {**os.environ, "SIGHTLINE_DATABASE_URL": database_url}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [*sightline_command(), *args], env=env, capture_output=True, text=True, timeout=60, check=True
        )
        return done.stdout.strip()

    key = cli("token", "create", "--project", "demo", "--environment", "dev").splitlines()[-1]
    cli("create-admin", "--username", "admin", "--password", PASSWORDS["admin"])
    cli("create-admin", "--username", "member", "--password", PASSWORDS["member"], "--role", "member")
    process, url = start_server(database_url, tmp / "server.log")
    upstream = FakeOpenAI()
    try:
        _worker.reset()
        seeded = seed(url, key, upstream.base_url)
        yield Dashboard(url, key, database_url, seeded)
    finally:
        _worker.reset(timeout=5)
        upstream.close()
        stop_server(process)


@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Playwright]:
    # Module scope, not session: while Playwright's sync API runs it keeps an event loop running in
    # this thread, and asyncio tests collected after the browser tests could not start their own.
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{CHROMIUM} is missing (scripts/setup --test installs it)")
        pytest.skip(f"{CHROMIUM} is missing: run scripts/setup --test (apt-get install chromium)")
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


def _screenshot_on_failure(request: pytest.FixtureRequest, page: Page) -> None:
    failed = any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False) for when in ("setup", "call")
    )
    if failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.nodeid.split("::", 1)[-1])
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_page(browser: Browser, base_url: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (no cookies) at 1280×900 on ``base_url``; a screenshot is saved if the
    test fails. Script errors and anything the Content-Security-Policy refuses fail the test (a 4xx
    answer that the test asked for is logged as "Failed to load resource": that one is expected)."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda m: (
            errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
        ),
    )
    yield page
    _screenshot_on_failure(request, page)
    context.close()
    assert errors == [], f"errors in the browser console: {errors}"


@pytest.fixture
def page(browser: Browser, dashboard: Dashboard, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page on the seeded dashboard (see :func:`open_page`)."""
    yield from open_page(browser, dashboard.url, request)


def login(page: Page, username: str = "admin") -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORDS[username])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/generations"))
