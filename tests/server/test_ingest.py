"""Sending generations, runs and feedback, and reading them back, through the HTTP API on both databases."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from typing import Any

import orjson
import pytest

from tests.conftest import Api


def generation(**fields: Any) -> dict[str, Any]:
    """A full Generation record as a client sends it (every part of DESIGN.md's data model)."""
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "timestamp": "2026-11-20T10:00:00Z",
        "model": {"id": "gpt-4o", "provider": "openai"},
        "input": {
            "type": "text",
            "content": [{"role": "user", "content": "Show me an emoji for soccer"}],
            "tokens": 12,
        },
        "output": {"type": "text", "content": "⚽", "tokens": 1},
        "parameters": {"temperature": 0.2, "maxTokens": 50, "seed": 7},
        "usage": {"promptTokens": 1000, "completionTokens": 100},
        "metadata": {
            "userId": "alice",
            "sessionId": "s1",
            "tags": ["emoji"],
            "ticket": {"type": "url", "url": "https://tracker/1", "text": "Ticket 1"},
            "plan": "pro",
            "beta": True,
        },
        "performance": {"latency": 420.5, "timeToFirstToken": 120.0, "tokensPerSecond": 33.0},
        "template": {
            "name": "emoji",
            "chat": [{"role": "user", "content": "Show me an emoji for {sport}"}],
            "params": {"sport": "soccer"},
        },
        "chatId": "chat-1",
        "status": "ok",
    }
    body.update(fields)
    return body


async def test_one_generation_round_trips_with_every_part(api: Api) -> None:
    sent = generation()
    r = await api.http.post("/api/generations", json=sent)
    assert r.status_code == 201, r.text
    assert r.json() == {"id": sent["id"], "created": True}

    got = (await api.http.get(f"/api/generations/{sent['id']}")).json()
    assert got["model"] == {"id": "gpt-4o", "provider": "openai"}
    assert got["input"]["content"][0]["content"] == "Show me an emoji for soccer"
    assert got["output"] == {"type": "text", "content": "⚽", "tokens": 1}
    assert got["parameters"] == {"temperature": 0.2, "maxTokens": 50, "seed": 7}
    assert got["metadata"]["ticket"] == {"type": "url", "url": "https://tracker/1", "text": "Ticket 1"}
    assert got["metadata"]["plan"] == {"type": "string", "value": "pro"}
    assert got["metadata"]["beta"] == {"type": "boolean", "value": True}
    assert got["performance"]["timeToFirstToken"] == 120.0
    assert got["template"]["params"] == {"sport": "soccer"}
    assert len(got["template"]["version"]) == 16
    assert got["usage"]["totalTokens"] == 1100
    # priced by genai-prices from the token counts: gpt-4o is $2.50 / $10 per million tokens
    assert got["usage"]["cost"] == pytest.approx(1000 * 2.5e-6 + 100 * 10e-6)
    assert got["environment"] == "dev"


async def test_same_id_twice_is_a_no_op(api: Api) -> None:
    sent = generation()
    assert (await api.http.post("/api/generations", json=sent)).status_code == 201
    changed = {**sent, "output": {"type": "text", "content": "changed"}}
    r = await api.http.post("/api/generations", json=changed)
    assert r.status_code == 200 and r.json()["created"] is False
    got = (await api.http.get(f"/api/generations/{sent['id']}")).json()
    assert got["output"]["content"] == "⚽"


async def test_unknown_model_stays_unpriced(api: Api) -> None:
    sent = generation(model={"id": "our-own-finetune"})
    await api.http.post("/api/generations", json=sent)
    got = (await api.http.get(f"/api/generations/{sent['id']}")).json()
    assert "cost" not in got["usage"]
    page = await api.http.post("/api/generations/query", json={"filter": {"usage.cost": {"$exists": False}}})
    assert [g["id"] for g in page.json()["data"]] == [sent["id"]]


async def test_batch_reports_each_item_and_writes_only_the_good_ones(api: Api) -> None:
    good, bad = generation(), generation(metadata={"doc": {"type": "url", "url": "https://x"}})
    run_id = "run-batch"
    batch = [
        {"type": "generation", "body": good},
        {"type": "generation", "body": bad},
        {"type": "run", "body": {"id": run_id, "userId": "bob", "pipelineSlug": "compose"}},
        {"type": "feedback", "body": {"generationId": good["id"], "thumbs": "up"}},
        {"type": "mystery", "body": {}},
    ]
    r = await api.http.post("/api/ingest", json={"batch": batch})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == [201, 400, 201, 201, 400]
    assert "metadata" in results[1]["error"]["message"] and "'doc'" in results[1]["error"]["message"]
    assert "mystery" in results[4]["error"]["message"]
    assert (await api.http.get(f"/api/generations/{bad['id']}")).status_code == 404
    got = (await api.http.get(f"/api/generations/{good['id']}")).json()
    assert got["feedback"]["thumbs"] == "up"


async def test_gzip_batches_are_accepted(api: Api) -> None:
    sent = generation()
    raw = gzip.compress(orjson.dumps({"batch": [{"type": "generation", "body": sent}]}))
    r = await api.http.post(
        "/api/ingest", content=raw, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )
    assert r.status_code == 200 and r.json()["results"][0]["status"] == 201


async def test_concurrent_requests_are_all_committed(api: Api) -> None:
    bodies = [generation(metadata={"userId": f"u{i % 3}"}) for i in range(120)]
    answers = await asyncio.gather(*(api.http.post("/api/generations", json=b) for b in bodies))
    assert {a.status_code for a in answers} == {201}
    listed = (await api.http.get("/api/generations", params={"limit": 1000})).json()["data"]
    assert {g["id"] for g in listed} == {b["id"] for b in bodies}


async def test_run_owns_user_and_metadata_of_its_steps(api: Api) -> None:
    run_id = "run-1"
    steps = [generation(runId=run_id, stepIndex=i, metadata={"phase": f"p{i}"}) for i in range(3)]
    await api.http.post("/api/ingest", json={"batch": [{"type": "generation", "body": s} for s in steps]})
    # the run arrives after its steps, with a user and metadata; a later report adds more metadata
    await api.http.post(
        "/api/ingest",
        json={
            "batch": [
                {
                    "type": "run",
                    "body": {
                        "id": run_id,
                        "userId": "carol",
                        "pipelineSlug": "compose",
                        "metadata": {"plan": "free"},
                    },
                }
            ]
        },
    )
    await api.http.post(
        "/api/ingest",
        json={
            "batch": [
                {
                    "type": "run",
                    "body": {
                        "id": run_id,
                        "metadata": {"plan": "pro", "region": "eu"},
                        "status": "ok",
                        "endedAt": "2026-11-20T10:00:05Z",
                    },
                }
            ]
        },
    )

    by_user = (await api.http.get("/api/generations", params={"userId": "carol"})).json()["data"]
    assert {g["id"] for g in by_user} == {s["id"] for s in steps}
    by_meta = (await api.http.get("/api/generations", params={"metadata.plan": "pro"})).json()["data"]
    assert len(by_meta) == 3
    assert (await api.http.get("/api/generations", params={"metadata.plan": "free"})).json()["data"] == []
    assert all(g["metadata"]["userId"] == "carol" for g in by_user)

    run = (await api.http.get(f"/api/runs/{run_id}")).json()
    assert run["userId"] == "carol" and run["status"] == "ok"
    assert run["metadata"]["plan"] == {"type": "string", "value": "pro"}
    assert run["metadata"]["region"] == {"type": "string", "value": "eu"}
    assert run["metadata"]["phase"] == {"type": "string", "value": "p2"}  # step metadata merged, latest wins
    assert [s["stepIndex"] for s in run["steps"]] == [0, 1, 2]
    listed = (await api.http.get("/api/runs", params={"userId": "carol"})).json()["data"]
    assert listed[0]["id"] == run_id and listed[0]["stepCount"] == 3


async def test_a_step_that_sets_user_id_is_refused(api: Api) -> None:
    step = generation(runId="run-2", metadata={"userId": "mallory"})
    r = await api.http.post("/api/generations", json=step)
    assert r.status_code == 400
    assert "userId" in r.json()["error"]["message"] and "run" in r.json()["error"]["message"]
    r = await api.http.post(
        "/api/ingest",
        json={
            "batch": [
                {"type": "run", "body": {"id": "run-2", "steps": [{"name": "fetch", "userId": "mallory"}]}}
            ]
        },
    )
    assert r.json()["results"][0]["status"] == 400
    assert "userId" in r.json()["results"][0]["error"]["message"]


async def test_non_model_steps_come_in_order(api: Api) -> None:
    run_id = "run-3"
    await api.http.post("/api/generations", json=generation(runId=run_id, stepIndex=1, metadata={}))
    await api.http.post(
        "/api/ingest",
        json={
            "batch": [
                {
                    "type": "run",
                    "body": {
                        "id": run_id,
                        "steps": [
                            {"name": "retrieve", "stepIndex": 0, "inputs": {"q": "x"}, "outputs": ["doc"]},
                            {"name": "format", "stepIndex": 2},
                        ],
                    },
                }
            ]
        },
    )
    run = (await api.http.get(f"/api/runs/{run_id}")).json()
    assert [(s["kind"], s["stepIndex"]) for s in run["steps"]] == [
        ("step", 0),
        ("generation", 1),
        ("step", 2),
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"model.id": "gpt-4o"},
        {"output.type": "text"},
        {"userId": "alice"},
        {"metadata.userId": "alice"},
        {"chatId": "chat-1"},
        {"template.name": "emoji"},
        {"metadata.plan": "pro"},
        {"metadata.ticket": "https://tracker/1"},
        {"metadata.beta": "true"},
        {"metadata.tags": "emoji"},
        {"status": "ok"},
        {"cacheHit": "false"},
        {"from": "2026-11-20T09:00:00Z", "to": "2026-11-20T11:00:00Z"},
        {"feedback": "true"},
        {"feedback.rating": "4"},
        {"feedback.thumbs": "down"},
        {"feedback.minRating": "3"},
    ],
)
async def test_each_list_filter_narrows(api: Api, params: dict[str, str]) -> None:
    target, other = (
        generation(),
        generation(
            model={"id": "claude-3-5-sonnet"},
            output={"type": "json", "content": {"a": 1}},
            chatId="chat-2",
            metadata={
                "userId": "bob",
                "plan": "free",
                "ticket": {"type": "url", "url": "https://t/2", "text": "2"},
                "beta": False,
            },
            template={"name": "other", "text": "x"},
            status="error",
            error={"type": "rate_limit", "message": "slow down", "statusCode": 429},
            cacheHit=True,
            timestamp="2026-11-19T10:00:00Z",
        ),
    )
    await api.http.post(
        "/api/ingest",
        json={"batch": [{"type": "generation", "body": target}, {"type": "generation", "body": other}]},
    )
    await api.http.post(f"/api/generations/{target['id']}/feedback", json={"rating": 4, "thumbs": "down"})
    other_key = api.new_key("demo", "prod")
    third = generation()
    await api.http.post("/api/generations", json=third, headers=api.headers(other_key))
    params = {"environment": "dev", **params}  # the prod generation matches every other filter
    found = (await api.http.get("/api/generations", params=params)).json()["data"]
    assert [g["id"] for g in found] == [target["id"]]


async def test_cursor_pages_through_everything_newest_first(api: Api) -> None:
    bodies = [generation(timestamp=f"2026-11-20T10:00:{i:02d}Z") for i in range(25)]
    bodies += [generation(timestamp="2026-11-20T10:00:30Z") for _ in range(5)]  # ties on time
    await api.http.post("/api/ingest", json={"batch": [{"type": "generation", "body": b} for b in bodies]})
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = (await api.http.get("/api/generations", params=params)).json()
        seen += page["data"]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(seen) == 30 and len({g["id"] for g in seen}) == 30
    stamps = [g["timestamp"] for g in seen]
    assert stamps == sorted(stamps, reverse=True)


async def test_another_projects_key_sees_nothing(api: Api) -> None:
    sent = generation(runId="run-x")
    await api.http.post("/api/generations", json=sent)
    stranger = api.headers(api.new_key("elsewhere", "dev"))
    assert (await api.http.get(f"/api/generations/{sent['id']}", headers=stranger)).status_code == 404
    assert (await api.http.get("/api/runs/run-x", headers=stranger)).status_code == 404
    assert (await api.http.get("/api/generations", headers=stranger)).json()["data"] == []
    r = await api.http.post(f"/api/generations/{sent['id']}/feedback", json={"rating": 1}, headers=stranger)
    assert r.status_code == 404
