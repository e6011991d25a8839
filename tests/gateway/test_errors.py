"""Errors: the upstream's come back as they were (and are recorded); Sightline's own are OpenAI-shaped."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import free_port, stop_server
from tests.fake_openai import FakeOpenAI
from tests.gateway.conftest import GatewayServer, launch, unique

MESSAGES = [{"role": "user", "content": "hi"}]


def _openai_shape(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_upstream_error_comes_back_as_it_was_and_is_recorded(gateway: GatewayServer) -> None:
    key = gateway.new_key()
    with pytest.raises(openai.RateLimitError) as caught:
        gateway.client(key).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-fake-status": "429"}
        )
    assert caught.value.status_code == 429
    assert caught.value.body == {  # type: ignore[comparison-overlap]
        "message": "Fake upstream error 429",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    [gen] = gateway.generations(key, 1)
    assert gen["status"] == "error"
    assert gen["error"] == {
        "type": "rate_limit_error",
        "message": "Fake upstream error 429",
        "statusCode": 429,
    }


def test_unreachable_upstream_is_502_and_recorded(tmp_path: Path) -> None:
    server = launch(tmp_path, f"http://127.0.0.1:{free_port()}/v1")
    try:
        key = server.new_key()
        with pytest.raises(openai.InternalServerError) as caught:
            server.client(key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert caught.value.status_code == 502
        error = _openai_shape(caught.value.response.json())
        assert error["type"] == "api_error" and "cannot be reached" in error["message"]
        [gen] = server.generations(key, 1)
        assert gen["status"] == "error" and gen["error"]["statusCode"] == 502
    finally:
        stop_server(server.process)


def test_a_silent_upstream_is_504(gateway: GatewayServer) -> None:
    key = gateway.new_key()  # the gateway fixture waits 3 s for the upstream
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client(key).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-fake-first-delay": "5"}
        )
    assert caught.value.status_code == 504
    assert _openai_shape(caught.value.response.json())["code"] == "upstream_timeout"


def _count(fake: FakeOpenAI) -> int:
    return len(fake.requests())


def test_a_missing_or_revoked_key_is_401_before_the_upstream(
    gateway: GatewayServer, fake: FakeOpenAI
) -> None:
    before = _count(fake)
    with pytest.raises(openai.AuthenticationError):
        gateway.client("sl_not_a_key").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    r = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES})
    assert r.status_code == 401 and "missing API key" in _openai_shape(r.json())["message"]
    key = gateway.new_key()
    gateway.client(key).models.list()
    revoked = gateway.cli("token", "revoke", key[:10])
    assert revoked.returncode == 0, revoked.stderr
    with pytest.raises(openai.AuthenticationError):
        gateway.client(key).models.list()
    assert _count(fake) == before  # models.list is not recorded by the fake; nothing else went out


@pytest.mark.parametrize(
    "content, headers, status, words",
    [
        (b"{not json", {}, 400, "not valid JSON"),
        (b"x" * (21 * 1024 * 1024), {}, 413, "over the limit"),
        (gzip.compress(b"{oops"), {"content-encoding": "gzip"}, 400, "not valid JSON"),
        (b'{"model": "gpt-4o-mini"}', {"x-sightline-metadata": '{"a": {"b": {"c": 1}}}'}, 400, "'a'"),
        (b'{"model": "gpt-4o-mini"}', {"x-sightline-metadata": "nope"}, 400, "X-Sightline-Metadata"),
        (b'{"model": "gpt-4o-mini"}', {"x-sightline-cache": "sometimes"}, 400, "X-Sightline-Cache"),
        (b'{"model": "gpt-4o-mini"}', {"x-sightline-provider": "nobody"}, 400, "no provider 'nobody'"),
        (b'{"model": "gpt-4o-mini"}', {"x-sightline-run-id": "r" * 300}, 400, "X-Sightline-Run-Id"),
    ],
)
def test_bad_input_is_a_4xx_and_nothing_is_forwarded(
    gateway: GatewayServer, fake: FakeOpenAI, content: bytes, headers: dict[str, str], status: int, words: str
) -> None:
    key = gateway.new_key()
    before = _count(fake)
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=content,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers},
        timeout=30,
    )
    assert r.status_code == status, r.text
    assert words in _openai_shape(r.json())["message"]
    assert _count(fake) == before
    assert (
        httpx.get(f"{gateway.url}/api/generations", headers={"Authorization": f"Bearer {key}"}).json()["data"]
        == []
    )


def test_a_bad_request_through_the_openai_client_raises_its_usual_error(gateway: GatewayServer) -> None:
    key = gateway.new_key()
    with pytest.raises(openai.BadRequestError):
        gateway.client(key).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Sightline-Metadata": "[1, 2]"}
        )
    name = unique("gz")
    r = httpx.post(  # a gzip body is fine
        f"{gateway.url}/v1/chat/completions",
        content=gzip.compress(
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "%s"}]}' % name.encode()
        ),
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert r.status_code == 200 and name in r.json()["choices"][0]["message"]["content"]
