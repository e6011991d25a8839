"""Numbered template versions with their use, and the new analytics series, on SQLite and PostgreSQL
(records sent through the ingest API): data span, feedback and users per bucket."""

from __future__ import annotations

import pytest

from sightline.server.filters import parse_time
from sightline.store.generations.reads.analytics import data_span, feedback_by_bucket, keys_by_bucket, window
from sightline.store.prompts import numbered_versions, version_stats
from tests.conftest import Api
from tests.dashboard.test_analytics_store import HOUR_US, START, gen, project_id, send

DAY_US = 24 * HOUR_US


async def test_versions_are_numbered_in_order_with_their_use_and_scores(api: Api) -> None:
    first = {"name": "greet", "text": "Hello {name}", "params": {"name": "Ann"}}
    second = {"name": "greet", "text": "Hi there, {name}!", "params": {"name": "Bo"}}
    a = gen(1, template=first, performance={"latency": 100.0})
    b = gen(2, template=second, performance={"latency": 300.0})
    c = gen(3, template=second, performance={"latency": 500.0}, model={"id": "gpt-4o-mini"})
    c2 = gen(4, template=second, performance={"latency": 700.0}, model={"id": "gpt-4o-mini"})
    named = gen(5, template={"name": "greet"})
    await send(api, [a, b, c, c2, named])
    r = await api.http.post(f"/api/generations/{b['id']}/feedback", json={"rating": 4, "thumbs": "up"})
    assert r.status_code == 201
    for g, value in ((b, 1.0), (c, 0.5), (a, 0.25)):
        r = await api.http.post(
            "/api/scores", json={"generationId": g["id"], "name": "correct", "value": value}
        )
        assert r.status_code == 201, r.text
    pid = project_id(api)
    with api.db.read() as conn:
        versions = numbered_versions(conn, pid, "greet")
        stats, names = version_stats(conn, pid, "greet")
    assert [(v.tag, v.text) for v in versions] == [("v1", "Hello {name}"), ("v2", "Hi there, {name}!")]
    v1, v2 = stats[versions[0].version], stats[versions[1].version]
    assert (v1.requests, v2.requests, stats[None].requests) == (1, 3, 1)  # a name alone is no version
    assert v2.rating == 4 and v2.up == 1 and v2.model == "gpt-4o-mini"
    assert v2.p50 == pytest.approx(500, abs=5) and v2.p95 == pytest.approx(700, abs=5)
    assert names == ["correct"]  # feedback's own scores (feedback.rating, ...) are left out
    assert v2.scores == {"correct": pytest.approx(0.75)} and v1.scores == {"correct": 0.25}


async def test_data_span_feedback_and_users_by_bucket(api: Api) -> None:
    bodies = [
        gen(m, metadata={"userId": "alice" if i % 2 else "bob"}) for i, m in enumerate(range(0, 180, 10))
    ]
    await send(api, bodies)
    for body, thumbs in ((bodies[0], "up"), (bodies[1], "down"), (bodies[7], "up")):
        r = await api.http.post(
            f"/api/generations/{body['id']}/feedback", json={"thumbs": thumbs, "rating": 5}
        )
        assert r.status_code == 201
    start = parse_time("from", START)
    pid = project_id(api)
    with api.db.read() as conn:
        span = data_span(conn, pid)
        w = window(start, start + 24 * HOUR_US)  # hourly
        feedback = {f.bucket: f for f in feedback_by_bucket(conn, pid, w)}
        users = keys_by_bucket(conn, pid, w, ["alice"])
        # buckets of days read the daily rollups for whole days, the rows for the rest
        month = window(start - 3 * DAY_US, start + 20 * DAY_US)
        daily = keys_by_bucket(conn, pid, month, ["alice", "bob"])
        assert data_span(conn, pid + 1000) is None
    assert span == (start, start + 170 * 60_000_000)
    assert (feedback[0].up, feedback[0].down, feedback[0].rating) == (1, 1, 5)
    assert feedback[1].up == 1 and set(feedback) == {0, 1}
    assert [(u.bucket, u.key, u.requests) for u in users] == [
        (0, "alice", 3),
        (1, "alice", 3),
        (2, "alice", 3),
    ]
    assert sorted((d.key, d.requests) for d in daily) == [("alice", 9), ("bob", 9)]
