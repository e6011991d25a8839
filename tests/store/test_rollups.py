"""Rollups: analytics over whole hours and days read the totals the writer keeps, and agree with the rows."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine

from sightline.schema import MAX_MEASURE, Generation, Run
from sightline.store import Scope
from sightline.store.generations.reads import analytics as a
from sightline.store.generations.ingest import InsertGenerations, UpsertRun, prepare_generation
from sightline.store.generations.records import to_us
from sightline.store.generations.rollups import latency_bin

START = datetime(2026, 11, 1, tzinfo=UTC)
SCOPE = Scope(1, "dev")


def _generations(count: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        out.append(
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "timestamp": (START + timedelta(seconds=rng.uniform(0, 4.5 * 86400))).isoformat(),
                "model": {"id": rng.choice(["gpt-4o", "claude"])},
                "usage": {
                    "promptTokens": rng.randint(1, 500),
                    "completionTokens": rng.randint(1, 50),
                    "cost": round(rng.uniform(0, 0.01), 6),
                },
                "metadata": {"userId": rng.choice(["ann", "bob", "cid"])},
                "performance": {"latency": rng.uniform(20, 3000), "timeToFirstToken": rng.uniform(5, 400)},
                "template": {"name": rng.choice(["t1", "t2"]), "text": "x"},
                "status": "error" if rng.random() < 0.1 else "ok",
                "cacheHit": rng.random() < 0.2,
            }
        )
    return out


def _write(database_url: str, bodies: list[dict[str, Any]], *ops: Any) -> Any:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        items = [prepare_generation(Generation.model_validate(b), SCOPE) for b in bodies]
        InsertGenerations(SCOPE, items).apply(conn)
    for op in ops:
        with engine.begin() as conn:
            op.apply(conn)
    return engine


def _in(w: a.Window, body: dict[str, Any]) -> bool:
    ts = to_us(datetime.fromisoformat(body["timestamp"]))
    return w.start_us <= ts < w.end_us


def test_usage_and_top_users_agree_with_the_rows(database_url: str) -> None:
    bodies = _generations(300)
    engine = _write(database_url, bodies[:150])
    _write(database_url, bodies[150:]).dispose()  # a second batch adds to the same hours
    # ragged edges: neither end on an hour or a day
    w = a.window(to_us(START + timedelta(hours=5, minutes=17)), to_us(START + timedelta(days=4, minutes=41)))
    assert w.bucket_us % a.MINUTE_US == 0 and w.bucket_us >= 3600 * 1_000_000

    expected: dict[tuple[int, str], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0, 0])
    users: dict[str, float] = defaultdict(float)
    for b in bodies:
        if not _in(w, b):
            continue
        bucket = (to_us(datetime.fromisoformat(b["timestamp"])) - w.start_us) // w.bucket_us
        e = expected[(bucket, b["model"]["id"])]
        e[0] += 1
        e[1] += b["usage"]["promptTokens"]
        e[2] += b["usage"]["cost"]  # a cost the client sent is kept, cache hit or not
        e[3] += b["status"] == "error"
        e[4] += b["cacheHit"]
        users[b["metadata"]["userId"]] += b["usage"]["cost"]
    with engine.connect() as conn:
        got = a.usage_by_model(conn, SCOPE.project_id, w)
        top = a.top_by_cost(conn, SCOPE.project_id, w, by="user")
    assert {(m.bucket, m.model) for m in got} == set(expected)
    for m in got:
        n, prompt, cost, errors, hits = expected[(m.bucket, m.model)]
        assert (m.requests, m.prompt_tokens, m.errors, m.cache_hits) == (n, prompt, errors, hits)
        assert m.cost == pytest.approx(cost)
    ranked = sorted(users.items(), key=lambda kv: -kv[1])
    assert [r.key for r in top] == [k for k, _ in ranked]
    assert [r.cost for r in top] == pytest.approx([c for _, c in ranked])
    engine.dispose()


def test_latency_percentiles_over_rollups_match_the_rows(database_url: str) -> None:
    bodies = [b for b in _generations(400, seed=9)]
    engine = _write(database_url, bodies)
    w = a.window(to_us(START), to_us(START + timedelta(days=4)))
    latencies = sorted(b["performance"]["latency"] for b in bodies if _in(w, b) and not b["cacheHit"])
    with engine.connect() as conn:
        summary = a.latency_percentiles(conn, SCOPE.project_id, w)
    assert summary.overall.count == len(latencies)
    median = latencies[len(latencies) // 2]
    assert summary.overall.p50 == pytest.approx(median, abs=100)  # within a bin of the truth
    engine.dispose()


def test_a_runs_user_arriving_later_moves_its_totals(database_url: str) -> None:
    steps = _generations(6, seed=11)
    for step in steps:
        step.update(runId="run-1", cacheHit=False, timestamp=(START + timedelta(days=1, hours=2)).isoformat())
        step["metadata"] = {}
    total = sum(s["usage"]["cost"] for s in steps)
    w = a.window(to_us(START), to_us(START + timedelta(days=4)))
    engine = _write(
        database_url, steps, UpsertRun(SCOPE, Run.model_validate({"id": "run-1", "userId": "zed"}))
    )
    with engine.connect() as conn:
        assert [(r.key, pytest.approx(r.cost)) for r in a.top_by_cost(conn, 1, w)] == [("zed", total)]
    with engine.begin() as conn:
        UpsertRun(SCOPE, Run.model_validate({"id": "run-1", "userId": "yan"})).apply(conn)
    with engine.connect() as conn:
        assert [(r.key, pytest.approx(r.cost)) for r in a.top_by_cost(conn, 1, w)] == [("yan", total)]
    engine.dispose()


def test_the_largest_latency_accepted_has_a_bin_of_a_32_bit_column() -> None:
    # schema.MAX_MEASURE bounds what reaches the rollups (1e100 overflowed them, failing whole batches)
    assert latency_bin(MAX_MEASURE) < 2**31 - 1
    with pytest.raises(ValidationError, match="performance.latency"):
        Generation.model_validate({"model": {"id": "m"}, "performance": {"latency": MAX_MEASURE * 10}})
