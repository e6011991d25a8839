"""Totals of a filter (issue 20, item 3) through the HTTP API: how many match of how many, their cost,
tokens and latency percentiles; the same from the rollups (environment, model, time range) as from the
rows, and the same as the MongoDB-style aggregate says for the same filter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sightline.store.generations.rollups import bin_middle, latency_bin
from tests.conftest import Api
from tests.server.test_ingest import generation

START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _gen(i: int) -> dict[str, Any]:
    return generation(
        id=str(uuid.uuid4()),
        timestamp=(START + timedelta(minutes=17 * i)).isoformat().replace("+00:00", "Z"),
        model={"id": "gpt-4o" if i % 3 else "gpt-4o-mini", "provider": "openai"},
        usage={"promptTokens": 100 + i, "completionTokens": 10 + i},
        performance={"latency": 50.0 + 37 * i},
        cacheHit=i == 7,
        metadata={"userId": f"u{i % 4}", "plan": "pro" if i % 2 else "free"},
    )


@pytest.fixture
async def sent(api: Api) -> list[dict[str, Any]]:
    gens = [_gen(i) for i in range(40)]
    r = await api.http.post("/api/ingest", json={"batch": [{"type": "generation", "body": g} for g in gens]})
    assert r.status_code == 200, r.text
    return gens


async def _totals(api: Api, flt: dict[str, Any]) -> dict[str, Any]:
    r = await api.http.post("/api/generations/totals", json={"filter": flt})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _aggregate(api: Api, flt: dict[str, Any]) -> dict[str, Any]:
    group = {"_id": None, "n": {"$sum": 1}, "cost": {"$sum": "$usage.cost"}}
    r = await api.http.post(
        "/api/generations/aggregate", json={"pipeline": [{"$match": flt}, {"$group": group}]}
    )
    assert r.status_code == 200, r.text
    return dict(r.json()["data"][0])


def _expected_percentiles(gens: list[dict[str, Any]]) -> tuple[float, float]:
    bins = sorted(latency_bin(g["performance"]["latency"]) for g in gens if not g.get("cacheHit"))
    rank = lambda q: bins[max(0, -(-int(q * len(bins) * 1000) // 1000) - 1)]  # noqa: E731
    return bin_middle(rank(0.5)), bin_middle(rank(0.95))


async def test_totals_match_the_aggregate_and_the_rows(api: Api, sent: list[dict[str, Any]]) -> None:
    everything = await _totals(api, {})
    assert (everything["matched"], everything["of"]) == (40, 40)
    assert everything["tokens"] == sum(
        g["usage"]["promptTokens"] + g["usage"]["completionTokens"] for g in sent
    )
    assert everything["cost"] == pytest.approx((await _aggregate(api, {}))["cost"])
    assert (everything["latency"]["p50"], everything["latency"]["p95"]) == _expected_percentiles(sent)

    # A model and a ragged time range: whole hours from the rollups, the edges from rows; the same as
    # the rows alone (a status condition that every row meets sends it all through the rows).
    ranged = {
        "model.id": "gpt-4o",
        "timestamp": {"$gte": "2026-11-20T08:20:00Z", "$lte": "2026-11-20T15:40:00Z"},
    }
    from_rollups = await _totals(api, ranged)
    from_rows = await _totals(api, {**ranged, "status": {"$in": ["ok", "error"]}})
    assert from_rollups["cost"] == pytest.approx(from_rows["cost"])
    assert {k: v for k, v in from_rollups.items() if k != "cost"} == {
        k: v for k, v in from_rows.items() if k != "cost"
    }
    inside = [
        g
        for g in sent
        if g["model"]["id"] == "gpt-4o" and "2026-11-20T08:20:00Z" <= g["timestamp"] <= "2026-11-20T15:40:00Z"
    ]
    assert from_rollups["matched"] == len(inside) == (await _aggregate(api, ranged))["n"]
    assert (from_rollups["latency"]["p50"], from_rollups["latency"]["p95"]) == _expected_percentiles(inside)

    # Any other filter goes through the query compiler over the rows.
    pro = await _totals(api, {"metadata.plan": "pro", "usage.totalTokens": {"$gt": 120}})
    assert (
        pro["matched"]
        == (await _aggregate(api, {"metadata.plan": "pro", "usage.totalTokens": {"$gt": 120}}))["n"]
    )
    assert (await _totals(api, {"model.id": "none-such"}))["latency"] == {"p50": None, "p95": None}


async def test_bad_totals_requests_are_refused(api: Api) -> None:
    for body, field in (
        ({"filter": {"usage.cost": {"$bogus": 1}}}, "usage.cost"),
        ({"filter": []}, "filter"),
        ({"filter": {}, "limit": 3}, "limit"),
    ):
        r = await api.http.post("/api/generations/totals", json=body)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, (body, r.text)
