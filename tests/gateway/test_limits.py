"""Rate limits and budgets through real ``sightline serve`` processes: the real ``openai`` client gets
``RateLimitError`` with its retry-after before anything reaches the provider; two processes over one
database (or Redis) together admit exactly the limit; budgets of cost; ingest answers 429 too."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sightline.store import Database
from sightline.store.access.projects import find_key
from tests.conftest import stop_server
from tests.fake_openai import FakeOpenAI
from tests.gateway.conftest import GatewayServer, launch, unique
from tests.gateway.test_shared_cache import REDIS_URL, _pair, _redis_running
from tests.server.test_ingest import generation


def _key_id(server: GatewayServer, secret: str) -> int:
    db = Database(server.database_url)
    try:
        with db.read() as conn:
            found = find_key(conn, secret)
    finally:
        db.engine.dispose()
    assert found is not None
    return found.id


def _limits(server: GatewayServer, key: str, **body: Any) -> httpx.Response:
    return httpx.put(
        f"{server.url}/api/limits", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _ask(server: GatewayServer, key: str) -> int:
    r = httpx.post(
        f"{server.base_url}/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    return r.status_code


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, fake: FakeOpenAI) -> Iterator[GatewayServer]:
    server = launch(tmp_path_factory.mktemp("limits"), fake.base_url)
    try:
        yield server
    finally:
        stop_server(server.process)


def test_over_the_limit_the_openai_client_gets_a_rate_limit_error(
    single: GatewayServer, fake: FakeOpenAI
) -> None:
    key = single.new_key()
    assert _limits(single, key, requestsPerMinute=3).status_code == 200
    client = single.client(key)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    fake.clear()
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    headers = refused.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60 and headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert "3 requests per minute" in refused.value.message
    assert fake.requests() == []  # refused before anything reached the provider
    # Ingest with the same key is refused too, and another project is not limited.
    r = httpx.post(
        f"{single.url}/api/ingest",
        json={"batch": [{"type": "generation", "body": generation()}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 429 and r.headers["retry-after"]
    assert _ask(single, single.new_key()) == 200


def test_a_cost_budget_stops_calls_once_spent(single: GatewayServer) -> None:
    key = single.new_key()
    assert _limits(single, key, costPerDay=0.000001).status_code == 200
    assert _ask(single, key) == 200  # priced once recorded: this one crosses the budget
    single.generations(key, 1)
    time.sleep(1.2)  # the spend is read at most once a second
    assert _ask(single, key) == 429
    spent = httpx.get(f"{single.url}/api/limits", headers={"Authorization": f"Bearer {key}"}).json()
    assert spent["spent"]["costToday"] > 0.000001 and spent["data"][0]["costPerDay"] == 0.000001


def test_a_key_is_stopped_by_its_own_budget_and_its_spend_is_shown(single: GatewayServer) -> None:
    project = unique()
    spender, other = single.new_key(project), single.new_key(project)
    spender_id = _key_id(single, spender)
    assert _limits(single, other, keyId=spender_id, costPerDay=0.000001).status_code == 200
    assert _ask(single, spender) == 200  # priced once recorded: this one crosses the key's budget
    single.generations(spender, 1)
    time.sleep(1.2)  # the spend is read at most once a second
    assert _ask(single, spender) == 429
    assert _ask(single, other) == 200  # the project's other key has no budget of its own
    single.generations(other, 2)
    body = httpx.get(f"{single.url}/api/limits", headers={"Authorization": f"Bearer {other}"}).json()
    spent = {k["keyId"]: k for k in body["keys"]}
    assert len(spent) == 2 and spent[spender_id]["today"]["requests"] == 1
    assert spent[spender_id]["today"]["cost"] > 0.000001
    assert spent[spender_id]["thisMonth"] == spent[spender_id]["today"]
    assert body["spent"]["costToday"] == pytest.approx(sum(k["today"]["cost"] for k in spent.values()))


def test_bad_limits_are_refused(single: GatewayServer) -> None:
    key = single.new_key()
    for body, field in (
        ({"requestsPerMinute": 0}, "requestsPerMinute"),
        ({"requestsPerMinute": 2.5}, "requestsPerMinute"),
        ({"costPerDay": "lots"}, "costPerDay"),
        ({"speed": 3}, "speed"),
        ({"keyId": 999999, "requestsPerMinute": 3}, "keyId"),
        ({"keyId": 1, "tokensPerMinute": 3}, "tokensPerMinute"),
        ({"keyId": 1, "userRequestsPerMinute": 3}, "userRequestsPerMinute"),
    ):
        r = _limits(single, key, **body)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, (body, r.text)


def _exact(first: GatewayServer, second: GatewayServer, limit: int) -> None:
    key = first.new_key()
    if time.time() % 60 > 40:  # counts are per calendar minute: keep the burst inside one
        time.sleep(60.5 - time.time() % 60)
    assert _limits(first, key, requestsPerMinute=limit).status_code == 200
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda i: _ask(first if i % 2 else second, key), range(limit * 2 + 20)))
    assert statuses.count(200) == limit, statuses
    assert statuses.count(429) == limit + 20


def test_two_processes_together_admit_exactly_the_limit(tmp_path: Path, fake: FakeOpenAI) -> None:
    first, second = _pair(tmp_path, fake.base_url)
    try:
        _exact(first, second, 40)
    finally:
        stop_server(first.process)
        stop_server(second.process)


@pytest.mark.skipif(not _redis_running(), reason="Redis is not running on 127.0.0.1:6379")
def test_two_processes_share_their_counts_through_redis(tmp_path: Path, fake: FakeOpenAI) -> None:
    first, second = _pair(tmp_path, fake.base_url, SIGHTLINE_REDIS_URL=REDIS_URL)
    try:
        _exact(first, second, 40)
    finally:
        stop_server(first.process)
        stop_server(second.process)
