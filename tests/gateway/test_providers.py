"""Stored providers: keys encrypted at rest and never shown; picked by default, header or ``openaikey_id``."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from sightline.errors import InvalidInput, NotFound, Unavailable
from sightline.store import Database
from sightline.store import tables as t
from sightline.store.access.projects import ensure_project
from sightline.store.gateway.providers import (
    add_provider,
    gateway_config,
    list_providers,
    remove_provider,
    set_cache_mode,
    set_default_provider,
)
from tests.gateway.conftest import GatewayServer, unique, wait_for
from tests.gateway.upstream import FakeUpstream

SECRET = "s3cret-for-tests"


def test_providers_in_the_store(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.transaction() as conn:
            pid = ensure_project(conn, "acme")
            first = add_provider(conn, pid, "openai", "https://api.openai.com/v1/", "sk-live-123", SECRET)
            second = add_provider(conn, pid, "local", "http://127.0.0.1:9/v1", None, SECRET)
            with pytest.raises(InvalidInput):
                add_provider(conn, pid, "openai", "https://x.test/v1", "k", SECRET)
            for bad_url in ("ftp://x", "not a url", "https://x.test/v1?q=1"):
                with pytest.raises(InvalidInput):
                    add_provider(conn, pid, "other", bad_url, "k", SECRET)
        with db.read() as conn:
            listed = list_providers(conn, pid)
            stored = conn.scalars(select(t.providers.c.api_key_encrypted).order_by(t.providers.c.id)).all()
        assert [(p["id"], p["name"], p["is_default"]) for p in listed] == [
            (first, "openai", True),
            (second, "local", False),
        ]
        assert listed[0]["base_url"] == "https://api.openai.com/v1"
        assert all(set(p) == {"id", "name", "base_url", "is_default", "created"} for p in listed)
        assert "sk-live-123" not in str(stored) and stored[1] is None  # encrypted at rest
        with db.transaction() as conn:
            config = gateway_config(conn, pid, SECRET)
            assert "sk-live-123" not in repr(config)
            assert [p.api_key for p in config.providers] == ["sk-live-123", None]
            assert config.default_id == first and config.cache_mode is None
            set_default_provider(conn, pid, second)
            set_cache_mode(conn, pid, "use")
            with pytest.raises(InvalidInput):
                set_cache_mode(conn, pid, "sometimes")
            assert gateway_config(conn, pid, SECRET).default_id == second
            remove_provider(conn, pid, second)
            config = gateway_config(conn, pid, SECRET)
            assert config.default_id is None and config.cache_mode == "use" and len(config.providers) == 1
            with pytest.raises(NotFound):
                remove_provider(conn, pid, second)
            other = ensure_project(conn, "other-project")
            with pytest.raises(NotFound):  # no reaching into another project
                set_default_provider(conn, other, first)
            with pytest.raises(Unavailable) as caught:
                gateway_config(conn, pid, "a different secret")
            assert "SIGHTLINE_SECRET_KEY" in caught.value.message
    finally:
        db.engine.dispose()


def test_requests_go_to_the_chosen_provider_with_its_key(
    gateway: GatewayServer, upstream: FakeUpstream
) -> None:
    project = unique("routed")
    key = gateway.new_key(project)
    provider_key = "sk-provider-" + unique("k")
    added = gateway.cli(
        "provider",
        "add",
        "--project",
        project,
        "--name",
        "local",
        "--base-url",
        upstream.url,
        stdin=provider_key,
    )
    assert added.returncode == 0, added.stderr
    provider_id = added.stdout.strip()
    assert provider_id.isdigit() and provider_key not in added.stdout + added.stderr
    listed = gateway.cli("provider", "list", "--project", project)
    assert "local" in listed.stdout and provider_key not in listed.stdout
    client = gateway.client(key)

    def last_auth() -> str:
        return upstream.requests[-1].headers["authorization"]

    # The project's first provider is its default.
    first = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}])
    assert first.choices[0].message.content.startswith("reply #")  # the FakeUpstream's answer
    assert last_auth() == f"Bearer {provider_key}"
    # A header picks another (here the server's own upstream settings, via a second provider) ...
    fake_url = gateway.env["SIGHTLINE_UPSTREAM_URL"]
    gateway.cli(
        "provider", "add", "--project", project, "--name", "fake", "--base-url", fake_url, "--api-key", "sk-2"
    )
    other = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "b"}],
        extra_headers={"X-Sightline-Provider": "fake"},
    )
    assert other.choices[0].message.content == "Fake reply to: b"
    # ... and so does openaikey_id on the AI-Eye endpoints.
    seen = len(upstream.requests)
    r = httpx.post(
        f"{gateway.url}/api/openai/v1/chat/completions/",
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "c"}],
            "openaikey_id": int(provider_id),
        },
        headers={"Authorization": f"Bearer {key}", "X-Sightline-Cache": "skip"},
    )
    assert r.status_code == 200 and r.json()["response"].startswith("reply #")
    assert len(upstream.requests) == seen + 1 and "openaikey_id" not in upstream.requests[-1].body
    gens = gateway.generations(key, 3)
    assert {g["model"].get("provider") for g in gens} == {"local", "fake"}
    assert provider_key not in gateway.log.read_text()


def test_a_client_leaving_mid_stream_ends_the_upstream_request(
    gateway: GatewayServer, upstream: FakeUpstream
) -> None:
    project = unique("leaving")
    key = gateway.new_key(project)
    added = gateway.cli(
        "provider",
        "add",
        "--project",
        project,
        "--name",
        "slow",
        "--base-url",
        upstream.url,
        "--api-key",
        "sk-slow",
    )
    assert added.returncode == 0, added.stderr
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
        "max_tokens": 200,
    }
    headers = {"Authorization": f"Bearer {key}", "x-fake-chunk-delay": "0.05"}
    got = b""
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, headers=headers) as response:
        for chunk in response.iter_raw():
            got += chunk
            if got.count(b"data:") >= 3:
                break
        generation_id = response.headers["x-sightline-generation-id"]
    gen = gateway.generation(key, generation_id)
    assert gen["status"] == "error" and gen["error"]["type"] == "incomplete_stream"
    assert gen["output"]["content"].startswith("reply #")  # what did arrive is kept
    assert gen["performance"]["latency"] < 5000
    # The gateway closed its upstream request too: the upstream stopped writing long before 200 words.
    assert wait_for(lambda: upstream.open_streams == 0, timeout=2)
