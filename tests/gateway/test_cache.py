"""The response cache through a real server: use, skip, refresh, streams from the cache, AI-Eye."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.fake_openai import FakeOpenAI
from tests.gateway.conftest import GatewayServer, unique


def _sent(fake: FakeOpenAI, marker: str) -> int:
    return sum(marker in orjson.dumps(r["body"]).decode() for r in fake.requests())


def _ask(gateway: GatewayServer, key: str, marker: str, cache: str | None = None, **kw: Any) -> Any:
    headers = {"X-Sightline-Cache": cache} if cache else {}
    headers.update(kw.pop("extra_headers", {}))
    return gateway.client(key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": marker}],
        extra_headers=headers,
        **kw,
    )


def test_use_answers_a_repeated_request_from_the_cache(gateway: GatewayServer, fake: FakeOpenAI) -> None:
    key = gateway.new_key()
    marker = unique("cached")
    first = _ask(gateway, key, marker, "use", temperature=0)
    second = _ask(
        gateway, key, marker, "use", temperature=0, user="another-end-user"
    )  # `user` is not in the key
    assert first.headers["x-sightline-cache"] == "MISS" and second.headers["x-sightline-cache"] == "HIT"
    assert second.parse().model_dump() == first.parse().model_dump()
    assert _sent(fake, marker) == 1
    hit = gateway.generation(key, second.headers["x-sightline-generation-id"])
    miss = gateway.generation(key, first.headers["x-sightline-generation-id"])
    assert hit["cacheHit"] is True and hit["usage"]["cost"] == 0
    assert hit["usage"]["costSaved"] == miss["usage"]["cost"] > 0
    assert hit["output"] == miss["output"]
    assert [g["id"] for g in gateway.generations(key, 1, cacheHit="true")] == [hit["id"]]


def test_without_a_header_v1_does_not_cache_and_skip_bypasses(
    gateway: GatewayServer, fake: FakeOpenAI
) -> None:
    key = gateway.new_key()
    marker = unique("plain")
    _ask(gateway, key, marker, "use")
    assert _ask(gateway, key, marker).headers["x-sightline-cache"] == "MISS"  # /v1 default: skip
    assert _ask(gateway, key, marker, "skip").headers["x-sightline-cache"] == "MISS"
    assert _sent(fake, marker) == 3


def test_refresh_renews_the_entry(gateway: GatewayServer) -> None:
    key = gateway.new_key()
    marker = unique("renew")
    _ask(gateway, key, marker, "use", extra_headers={"x-fake-reply": "old answer"})
    renewed = _ask(gateway, key, marker, "refresh", extra_headers={"x-fake-reply": "new answer"})
    assert renewed.headers["x-sightline-cache"] == "MISS"
    again = _ask(gateway, key, marker, "use", extra_headers={"x-fake-reply": "ignored"})
    assert again.headers["x-sightline-cache"] == "HIT"
    assert again.parse().choices[0].message.content == "new answer"


def test_errors_are_not_cached(gateway: GatewayServer, fake: FakeOpenAI) -> None:
    key = gateway.new_key()
    marker = unique("failing")
    for _ in range(2):
        try:
            _ask(gateway, key, marker, "use", extra_headers={"x-fake-status": "500"})
        except Exception as exc:
            assert getattr(exc, "status_code", None) == 500
    assert _sent(fake, marker) == 2


def test_a_stream_is_answered_from_the_cache_and_fills_it(gateway: GatewayServer, fake: FakeOpenAI) -> None:
    key = gateway.new_key()
    client = gateway.client(key)
    marker = unique("streamed")
    messages = [{"role": "user", "content": f"{marker} tell me more"}]
    headers = {"X-Sightline-Cache": "use"}
    # A streamed miss fills the cache ...
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True, extra_headers=headers
        )
        if c.choices
    )
    # ... which answers the same request unstreamed, and streamed again (replayed as SSE).
    plain = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, extra_headers=headers
    )
    assert plain.headers["x-sightline-cache"] == "HIT"
    assert plain.parse().choices[0].message.content == streamed
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers,
    )
    assert raw.headers["x-sightline-cache"] == "HIT"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == streamed
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(streamed.split())
    assert _sent(fake, marker) == 1
    hit = gateway.generation(key, raw.headers["x-sightline-generation-id"])
    assert hit["cacheHit"] is True and hit["output"]["content"] == streamed
    assert hit["performance"]["timeToFirstToken"] >= 0


def test_the_project_default_applies_without_a_header(gateway: GatewayServer, fake: FakeOpenAI) -> None:
    project = unique("cached-project")
    key = gateway.new_key(project)
    done = gateway.cli("provider", "cache-mode", "--project", project, "use")
    assert done.returncode == 0, done.stderr
    marker = unique("default")
    _ask(gateway, key, marker)
    assert _ask(gateway, key, marker).headers["x-sightline-cache"] == "HIT"
    assert _ask(gateway, key, marker, "skip").headers["x-sightline-cache"] == "MISS"
    assert _sent(fake, marker) == 2


def test_the_cache_is_per_project(gateway: GatewayServer, fake: FakeOpenAI) -> None:
    marker = unique("mine")
    _ask(gateway, gateway.new_key(), marker, "use")
    assert _ask(gateway, gateway.new_key(), marker, "use").headers["x-sightline-cache"] == "MISS"
    assert _sent(fake, marker) == 2


def test_aieye_endpoints(gateway: GatewayServer, fake: FakeOpenAI) -> None:
    key = gateway.new_key()
    auth = {"Authorization": f"Bearer {key}"}
    marker = unique("aieye")
    params = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": marker}]}
    url = f"{gateway.url}/api/openai/v1/chat/completions/"
    cache_url = f"{gateway.url}/api/cache/v1/chat/completions/"
    assert httpx.post(cache_url, json=params, headers=auth).json() == []
    first = httpx.post(url, json=params, headers=auth)
    assert first.status_code == 200, first.text
    assert first.json() == {"response": f"Fake reply to: {marker}", "cache_hit": False}
    assert httpx.post(url, json=params, headers=auth).json() == {
        "response": f"Fake reply to: {marker}",
        "cache_hit": True,
    }
    assert httpx.post(cache_url, json=params, headers=auth).json() == [
        {"response": f"Fake reply to: {marker}", "cache_hit": True}
    ]
    skipped = httpx.post(url, json=params, headers={**auth, "X-Sightline-Cache": "skip"}).json()
    assert skipped["cache_hit"] is False
    assert _sent(fake, marker) == 2
    # /v1 and the AI-Eye endpoints share entries.
    via_v1 = _ask(gateway, key, marker, "use")
    assert via_v1.headers["x-sightline-cache"] == "HIT"
    gens = gateway.generations(key, 4)
    assert sorted(g["cacheHit"] for g in gens) == [False, False, True, True]
    # Errors: Sightline's in OpenAI's shape, the upstream's as they were.
    assert httpx.post(url, json=params).status_code == 401
    bad = httpx.post(url, content=b"{", headers=auth)
    assert bad.status_code == 400 and set(bad.json()["error"]) == {"message", "type", "param", "code"}
    failed = httpx.post(url, json={**params, "model": "error-429"}, headers=auth)
    assert failed.status_code == 429 and failed.json()["error"]["message"] == "Fake upstream error 429"
