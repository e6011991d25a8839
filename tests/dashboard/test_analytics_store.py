"""The analytics and prompt queries on SQLite and PostgreSQL, on records sent through the ingest API."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sightline.server.filters import parse_time
from sightline.store.generations.reads.analytics import (
    distinct_models,
    latency_percentiles,
    prompt_usage,
    prompt_versions,
    recent_chats,
    top_by_cost,
    usage_by_model,
    window,
)
from tests.conftest import Api

HOUR_US = 3600 * 1_000_000
START = "2026-11-01T00:00:00Z"


def gen(minute: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "timestamp": f"2026-11-01T{minute // 60:02d}:{minute % 60:02d}:00Z",
        "model": {"id": "gpt-4o"},
        "usage": {"promptTokens": 100, "completionTokens": 10, "cost": 0.01},
        "performance": {"latency": 100.0},
        "metadata": {"userId": "alice"},
    }
    body.update(fields)
    return body


async def send(api: Api, bodies: list[dict[str, Any]]) -> None:
    r = await api.http.post(
        "/api/ingest", json={"batch": [{"type": "generation", "body": b} for b in bodies]}
    )
    assert r.status_code == 200, r.text
    assert all(item["status"] == 201 for item in r.json()["results"]), r.text


def project_id(api: Api) -> int:
    with api.db.read() as conn:
        from sightline.store.access.projects import list_projects

        return int(next(p["id"] for p in list_projects(conn) if p["name"] == "demo"))


def test_buckets_widen_with_the_range() -> None:
    start = parse_time("from", START)
    assert window(start, start + 24 * HOUR_US).bucket_us == HOUR_US
    month = window(start, start + 30 * 24 * HOUR_US)
    assert month.bucket_us == 24 * HOUR_US and month.count == 30
    assert month.start_us % month.bucket_us == 0


async def test_usage_errors_and_cache_by_bucket_and_model(api: Api) -> None:
    await send(
        api,
        [
            gen(5),
            gen(10, model={"id": "gpt-4o-mini"}, status="error", error={"type": "Timeout"}),
            gen(70, cacheHit=True, usage={"promptTokens": 100, "completionTokens": 10, "costSaved": 0.02}),
            gen(75, usage={"promptTokens": 5, "completionTokens": 5, "cost": 0.5}),
        ],
    )
    start = parse_time("from", START)
    with api.db.read() as conn:
        rows = usage_by_model(conn, project_id(api), window(start, start + 24 * HOUR_US))  # hourly
    got = {(r.bucket, r.model): r for r in rows}
    assert set(got) == {(0, "gpt-4o"), (0, "gpt-4o-mini"), (1, "gpt-4o")}
    assert got[(0, "gpt-4o-mini")].errors == 1
    hour_two = got[(1, "gpt-4o")]
    assert hour_two.requests == 2 and hour_two.cache_hits == 1
    assert hour_two.cost == pytest.approx(0.5)  # a cache hit costs nothing
    assert hour_two.cost_saved == pytest.approx(0.02)
    assert hour_two.prompt_tokens == 105


async def test_latency_percentiles_per_bucket_leave_out_cache_hits(api: Api) -> None:
    # hour 0: 1..100 ms and 1 s..10 s; hour 1: a cache hit only
    bodies = [gen(1, performance={"latency": float(ms), "timeToFirstToken": ms / 2}) for ms in range(1, 101)]
    bodies += [gen(2, performance={"latency": float(s * 1000)}) for s in range(1, 11)]
    bodies.append(gen(61, cacheHit=True, performance={"latency": 99_999.0}))
    await send(api, bodies)
    start = parse_time("from", START)
    with api.db.read() as conn:
        summary = latency_percentiles(conn, project_id(api), window(start, start + 24 * HOUR_US))
        ttft = latency_percentiles(conn, project_id(api), window(start, start + 24 * HOUR_US), measure="ttft")
    assert [p.bucket for p in summary.buckets] == [0]
    hour = summary.buckets[0]
    assert hour.count == 110
    assert hour.p50 == pytest.approx(55, abs=5)  # within half a 10 ms bin of the exact 55.5
    assert hour.p95 == pytest.approx(5000, abs=60)  # 5 s (the 105th of 110), within half a 100 ms bin
    assert summary.overall.count == 110
    assert ttft.overall.count == 100 and ttft.overall.p50 == pytest.approx(25, abs=5)


async def test_top_users_and_templates_by_cost(api: Api) -> None:
    template = {"name": "summarize", "text": "Summarize {text}", "params": {"text": "x"}}
    await send(
        api,
        [
            gen(1, metadata={"userId": "alice"}, template=template),
            gen(2, metadata={"userId": "bob"}, usage={"promptTokens": 1, "completionTokens": 1, "cost": 2.0}),
            gen(3, metadata={"userId": "bob"}, usage={"promptTokens": 1, "completionTokens": 1, "cost": 1.0}),
            gen(4, metadata={}),
        ],
    )
    start = parse_time("from", START)
    w = window(start, start + HOUR_US)
    with api.db.read() as conn:
        users = top_by_cost(conn, project_id(api), w, by="user")
        templates = top_by_cost(conn, project_id(api), w, by="template")
    assert [(u.key, u.requests, u.cost) for u in users] == [("bob", 2, 3.0), ("alice", 1, 0.01)]
    assert [(t.key, t.requests) for t in templates] == [("summarize", 1)]


async def test_prompt_versions_use_and_feedback(api: Api) -> None:
    first = {"name": "greet", "text": "Hello {name}", "params": {"name": "Ann"}}
    second = {"name": "greet", "text": "Hi there, {name}!", "params": {"name": "Bo"}}
    a, b, c = gen(1, template=first), gen(2, template=second), gen(3, template=second)
    await send(api, [a, b, c])
    r = await api.http.post(f"/api/generations/{b['id']}/feedback", json={"rating": 4, "thumbs": "up"})
    assert r.status_code == 201
    pid = project_id(api)
    with api.db.read() as conn:
        versions = prompt_versions(conn, pid, "greet")
        uses = {u.version: u for u in prompt_usage(conn, pid, name="greet")}
    assert [v.text for v in versions] == ["Hello {name}", "Hi there, {name}!"]
    assert uses[versions[0].version].requests == 1
    newest = uses[versions[1].version]
    assert newest.requests == 2 and newest.average_rating == 4 and newest.thumbs_up == 1


async def test_models_and_recent_chats(api: Api) -> None:
    await send(
        api,
        [
            gen(1, model={"id": "b-model"}, chatId="c1"),
            gen(2, model={"id": "a-model"}, chatId="c1"),
            gen(3, chatId="c2"),
            gen(4),
        ],
    )
    pid = project_id(api)
    with api.db.read() as conn:
        assert distinct_models(conn, pid) == ["a-model", "b-model", "gpt-4o"]
        chats = recent_chats(conn, pid)
    assert [(c.chat_id, c.generations) for c in chats] == [("c2", 1), ("c1", 2)]
