"""Retention policies and erasure through the HTTP API and the job's own function, over a clock the
test sets: only the project's (and environment's) old generations go, with everything that hangs on
them, nothing of another project, no orphans; anonymising keeps every figure; an end user's data is
erased on request."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from sightline.jobs.retention import apply_policy, user_reference
from sightline.store import tables as t
from sightline.store.retention import ANONYMISED, ERASED_USER, get_policies
from tests.conftest import Api
from tests.server.test_ingest import generation

NOW = datetime(2026, 12, 1, tzinfo=UTC)
NOW_US = int(NOW.timestamp() * 1_000_000)


def old(days: int, **extra: Any) -> dict[str, Any]:
    return generation(id=str(uuid.uuid4()), timestamp=(NOW - timedelta(days=days)).isoformat(), **extra)


async def _ingest(api: Api, gens: list[dict[str, Any]], key: str | None = None) -> None:
    r = await api.http.post(
        "/api/ingest",
        json={"batch": [{"type": "generation", "body": g} for g in gens]},
        headers=api.headers(key),
    )
    assert all(x["status"] == 201 for x in r.json()["results"]), r.text


def _orphans(api: Api) -> dict[str, int]:
    g = t.generations
    out = {}
    with api.db.read() as conn:
        for table, column in (
            (t.generation_metadata, t.generation_metadata.c.generation_id),
            (t.feedback, t.feedback.c.generation_id),
            (t.score_latest, t.score_latest.c.generation_id),
        ):
            exists = select(g.c.id).where(g.c.project_id == table.c.project_id, g.c.id == column).exists()
            out[table.name] = int(conn.scalar(select(func.count()).select_from(table).where(~exists)) or 0)
    return out


async def _totals(api: Api, key: str | None = None) -> list[Any]:
    r = await api.http.post(
        "/api/generations/aggregate",
        json={
            "pipeline": [
                {
                    "$group": {
                        "_id": None,
                        "n": {"$sum": 1},
                        "tokens": {"$sum": "$usage.totalTokens"},
                        "avg": {"$avg": "$scores.q"},
                    }
                }
            ]
        },
        headers=api.headers(key),
    )
    return list(r.json()["data"])


async def _policy(api: Api, key: str | None = None) -> Any:
    with api.db.read() as conn:
        project = (await api.http.get("/api/retention", headers=api.headers(key))).json()
        return project, get_policies(conn)


async def test_delete_policy_takes_only_old_generations_of_its_project(api: Api) -> None:
    other = api.new_key("other-project")
    mine_old, mine_new = [old(40), old(35, runId="run-old", metadata={})], [old(5)]
    theirs = [old(40)]
    await _ingest(api, mine_old + mine_new)
    await _ingest(api, theirs, other)
    for g in mine_old + mine_new:
        await api.http.post(f"/api/generations/{g['id']}/feedback", json={"rating": 4, "comment": "ok"})
        await api.http.post("/api/scores", json={"generationId": g["id"], "name": "q", "value": 0.5})
    r = await api.http.put("/api/retention", json={"deleteAfterDays": 30})
    assert r.status_code == 200 and r.json()["action"] == "delete", r.text
    with api.db.read() as conn:
        [policy] = [p for p in get_policies(conn) if p.after_days == 30]
    result = await apply_policy(api.db, policy, NOW_US)
    assert result["generations"] == 2 and result["feedback"] == 2 and result["runs"] == 1
    left = (await api.http.get("/api/generations")).json()["data"]
    assert [g["id"] for g in left] == [mine_new[0]["id"]]
    assert (
        await api.http.get(f"/api/generations/{theirs[0]['id']}", headers=api.headers(other))
    ).status_code == 200
    assert (await api.http.get("/api/runs/run-old")).status_code == 404
    assert _orphans(api) == {"generation_metadata": 0, "feedback": 0, "score_latest": 0}
    listed = (await api.http.get("/api/retention")).json()["data"]
    assert listed[0]["lastResult"]["generations"] == 2 and listed[0]["lastRunAt"]


async def test_anonymising_keeps_every_figure_and_takes_late_arrivals(api: Api) -> None:
    gens = [old(40), old(50), old(2)]
    await _ingest(api, gens)
    await api.http.post(f"/api/generations/{gens[0]['id']}/feedback", json={"betterResponse": "secret fix"})
    await api.http.post(
        "/api/scores",
        json={"generationId": gens[0]["id"], "name": "q", "value": 0.25, "comment": "quotes the prompt"},
    )
    before = await _totals(api)
    await api.http.put("/api/retention", json={"anonymiseAfterDays": 30, "environment": "dev"})
    with api.db.read() as conn:
        [policy] = get_policies(conn)
    assert (await apply_policy(api.db, policy, NOW_US))["generations"] == 2
    assert await _totals(api) == before
    done = (await api.http.get(f"/api/generations/{gens[0]['id']}")).json()
    assert done["input"]["content"] == ANONYMISED and done["output"]["content"] == ANONYMISED
    assert "params" not in done["template"] and done["usage"]["totalTokens"] == 1100
    assert done["scores"]["q"]["value"] == 0.25 and done["scores"]["q"]["comment"] is None
    assert "betterResponse" not in done.get("feedback", {})
    fresh = (await api.http.get(f"/api/generations/{gens[2]['id']}")).json()
    assert fresh["output"]["content"] != ANONYMISED
    # A generation that arrives late with an old time is anonymised by the next run.
    late = old(60)
    await _ingest(api, [late])
    with api.db.read() as conn:
        [policy] = get_policies(conn)
    assert (await apply_policy(api.db, policy, NOW_US))["generations"] == 1
    assert (await api.http.get(f"/api/generations/{late['id']}")).json()["output"]["content"] == ANONYMISED


async def test_erasing_an_end_user(api: Api) -> None:
    other = api.new_key("other-project")
    alice = [old(3), old(4, runId="alice-run", metadata={})]
    bob = [old(3, metadata={"userId": "bob"})]
    run = {"type": "run", "body": {"id": "alice-run", "userId": "alice", "status": "ok"}}
    await api.http.post("/api/ingest", json={"batch": [run]})
    await _ingest(api, alice + bob)
    await _ingest(api, [old(3)], other)  # another project's alice
    await api.http.post(f"/api/generations/{bob[0]['id']}/feedback", json={"thumbs": "up", "userId": "alice"})
    await api.http.post("/api/datasets", json={"name": "d", "fromFilter": {}})
    r = await api.http.delete("/api/users/alice")
    assert r.status_code == 200, r.text
    counts = r.json()
    assert (counts["generations"], counts["datasetItems"], counts["feedbackGiven"], counts["runs"]) == (
        2,
        2,
        1,
        1,
    )
    left = (await api.http.get("/api/generations")).json()["data"]
    assert [g["id"] for g in left] == [bob[0]["id"]]
    assert "scores" not in (await api.http.get(f"/api/generations/{bob[0]['id']}")).json()
    assert len((await api.http.get("/api/generations", headers=api.headers(other))).json()["data"]) == 1
    assert (await api.http.get("/api/datasets/d")).json()["items"] == 1
    with api.db.read() as conn:
        audit = conn.execute(select(t.audit_log).where(t.audit_log.c.action == "user.erase")).one()
        r = t.rollup_daily_keys
        kept: dict[tuple[int, str], int] = {}
        for x in conn.execute(select(r).where(r.c.kind == "user")):
            kept[(x.project_id, x.key)] = kept.get((x.project_id, x.key), 0) + x.requests
    assert audit.target == user_reference(audit.project_id, "alice") and "alice" not in str(audit.details)
    # The top-users totals no longer hold the id; the project's totals stay, the other project's alice too.
    mine = audit.project_id
    assert (mine, "alice") not in kept and kept[(mine, ERASED_USER)] == 2 and kept[(mine, "bob")] == 1
    assert [n for (project, key), n in kept.items() if project != mine] == [1]


async def test_bad_policies_are_refused(api: Api) -> None:
    for body, field in (
        ({}, "deleteAfterDays"),
        ({"deleteAfterDays": 3, "anonymiseAfterDays": 4}, "deleteAfterDays"),
        ({"deleteAfterDays": 0}, "deleteAfterDays"),
        ({"anonymiseAfterDays": "soon"}, "anonymiseAfterDays"),
        ({"deleteAfterDays": 3, "environment": ""}, "environment"),
        ({"deleteAfterDays": 3, "colour": 1}, "colour"),
    ):
        r = await api.http.put("/api/retention", json=body)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, (body, r.text)
    assert (await api.http.get("/api/retention")).json()["data"] == []
