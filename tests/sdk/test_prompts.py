"""``client.prompts.get`` against a real ``sightline serve``: fetch, render, the recorded generation's
template name and version; the process's cache when the server goes down and comes back; a cold fetch
bounded by its timeout."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import sightline
from sightline.errors import NotFound, Unavailable
from sightline.sdk import _prompts, _worker
from tests.conftest import free_port, sightline_command, stop_server
from tests.fake_openai import FakeOpenAI


class Server:
    """``sightline serve`` on a fixed port, so it can be stopped and started again at the same address."""

    def __init__(self, tmp: Path) -> None:
        self.database_url = f"sqlite:///{tmp / 'server.db'}"
        self.log = tmp / "server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        made = subprocess.run(
            [*sightline_command(), "token", "create", "--project", "demo", "--environment", "dev"],
            env={**os.environ, "SIGHTLINE_DATABASE_URL": self.database_url},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        self.key = made.stdout.strip().splitlines()[-1]
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=10
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*sightline_command(), "serve", "--port", str(self.port)],
            env={**os.environ, "SIGHTLINE_DATABASE_URL": self.database_url},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"sightline serve did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            stop_server(self.process)
            self.process = None

    def save(self, **body: object) -> dict[str, object]:
        r = self.http.post("/api/prompts", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("prompts"))
    server.start()
    yield server
    server.http.close()
    server.stop()


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    _prompts._stores.clear()
    _worker.reset()
    yield
    _worker.reset(timeout=5)


def _client(live: Server, fake: FakeOpenAI, **config: float) -> sightline.Client:
    settings = sightline.SightlineConfig(api_key=live.key, server_url=live.url, **config)  # type: ignore[arg-type]
    return sightline.Client(api_key="sk-upstream", base_url=fake.base_url, sightline=settings)


def test_a_fetched_prompt_feeds_the_call_and_the_generation_carries_its_name_and_version(
    live: Server, fake_openai: FakeOpenAI
) -> None:
    live.save(name="sdk_greet", template="Say hello to {who}")
    saved = live.save(
        name="sdk_greet",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Greet {who}"}],
        model="gpt-4o-mini",
        parameters={"temperature": 0.2, "maxTokens": 30},
    )
    assert live.http.post(
        "/api/prompts/sdk_greet/labels", json={"label": "production", "version": 1}
    ).is_success
    client = _client(live, fake_openai)

    prod = client.prompts.get("sdk_greet", label="production")
    assert (prod.version, prod.template, prod.args) == (1, "Say hello to {who}", ["who"])
    assert prod.render(who="Ann") == "Say hello to Ann"
    with pytest.raises(sightline.InvalidParams, match="'who' is missing"):
        prod.render()
    with pytest.raises(sightline.InvalidParams, match="no argument 'whom'"):
        prod.messages(who="Ann", whom="Bob")

    latest = client.prompts.get("sdk_greet")
    assert latest.version == 2 and latest.template_version == saved["templateVersion"]
    response = client.chat.completions.create(**latest.request(who="Ann"))
    sent = fake_openai.requests()[-1]["body"]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Greet Ann"},
    ]
    assert (sent["model"], sent["temperature"], sent["max_tokens"]) == ("gpt-4o-mini", 0.2, 30)

    # a text prompt through chat.completions: the recorded template is the prompt's text
    client.chat.completions.create(model="gpt-4o-mini", messages=prod.messages(who="Bob"))
    assert sightline.flush(10)
    from sightline.feedback_key import parse_feedback_key

    gen_id = parse_feedback_key(str(response.model_extra["sightline_feedback_key"]))[0]  # type: ignore[index]
    generation = live.http.get(f"/api/generations/{gen_id}").json()
    assert generation["template"]["name"] == "sdk_greet"
    assert generation["template"]["version"] == saved["templateVersion"]
    assert generation["template"]["params"] == {"who": "Ann"}
    # the version the generation carries finds the prompt again
    again = live.http.get(
        "/api/prompts/sdk_greet", params={"version": generation["template"]["version"]}
    ).json()
    assert again["version"] == 2
    named = live.http.get("/api/generations", params={"template.name": "sdk_greet"}).json()["data"]
    versions = {g["template"]["version"] for g in named}
    assert versions == {saved["templateVersion"], prod.template_version}

    with pytest.raises(NotFound):
        client.prompts.get("sdk_greet", label="nowhere")


def test_the_cache_serves_stale_while_the_server_is_down_and_fresh_after(
    live: Server, fake_openai: FakeOpenAI
) -> None:
    live.save(name="sdk_cached", template="One {x}")
    client = _client(live, fake_openai, prompt_cache_ttl=0.3, prompt_fetch_timeout=2.0)
    assert client.prompts.get("sdk_cached").template == "One {x}"
    live.stop()
    try:
        time.sleep(0.4)  # expired: the call is answered from the cache while a refresh fails
        started = time.monotonic()
        for _ in range(20):
            assert client.prompts.get("sdk_cached").template == "One {x}"
            time.sleep(0.05)
        assert time.monotonic() - started < 3  # no call waited for the server
        other = _client(live, fake_openai, prompt_fetch_timeout=2.0)
        with pytest.raises(Unavailable):  # cold and down: one refused request, an error
            other.prompts.get("sdk_never_fetched")
    finally:
        live.start()
    live.save(name="sdk_cached", template="Two {x}")
    deadline = time.monotonic() + 10
    while client.prompts.get("sdk_cached").template != "Two {x}":
        assert time.monotonic() < deadline, "the fresh version never came"
        time.sleep(0.05)


def test_a_cold_fetch_waits_one_request_at_most(fake_openai: FakeOpenAI) -> None:
    # A server that takes the connection and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = sightline.SightlineConfig(api_key="sl_x", server_url=url, prompt_fetch_timeout=0.3)
        client = sightline.Client(api_key="sk-upstream", base_url=fake_openai.base_url, sightline=settings)
        started = time.monotonic()
        with pytest.raises(Unavailable):
            client.prompts.get("anything")
        assert time.monotonic() - started < 1.5


def test_the_async_client_fetches_the_same_prompts(live: Server, fake_openai: FakeOpenAI) -> None:
    live.save(name="sdk_async", messages=[{"role": "user", "content": "Hi {n}"}])
    settings = sightline.SightlineConfig(api_key=live.key, server_url=live.url)

    async def main() -> list[str]:
        client = sightline.AsyncClient(
            api_key="sk-upstream", base_url=fake_openai.base_url, sightline=settings
        )
        first = await client.prompts.get("sdk_async")
        second = await client.prompts.get("sdk_async")
        assert first is second  # the cache's
        response = await client.chat.completions.create(model="gpt-4o-mini", messages=first.messages(n=1))
        return [response.choices[0].message.content or ""]

    assert asyncio.run(main())
    assert fake_openai.requests()[-1]["body"]["messages"] == [{"role": "user", "content": "Hi 1"}]


def test_a_template_only_recorded_is_fetched_as_a_version_too(live: Server, fake_openai: FakeOpenAI) -> None:
    client = _client(live, fake_openai)
    template = [{"role": "user", "content": "An emoji for {sport}"}]
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=sightline.TemplateChat(template, {"sport": "golf"}),
        sightline=sightline.CallParams(prompt_template_name="sdk_recorded"),
    )
    assert sightline.flush(10)
    recorded = client.prompts.get("sdk_recorded")
    assert (recorded.version, recorded.chat, recorded.args) == (None, template, ["sport"])
    assert list(recorded.messages(sport="tennis")) == [{"role": "user", "content": "An emoji for tennis"}]
    with pytest.raises(sightline.InvalidParams, match="sport"):
        recorded.messages()
