"""Sending generations, runs and feedback, and reading them back, through the HTTP API on both databases."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from sightline.schema import MAX_MEASURE
from sightline.settings import Settings
from sightline.store.access.projects import create_key
from tests.conftest import Api, ServerProcess


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


@asynccontextmanager
async def app_with(database_url: str, **settings: Any) -> AsyncIterator[Api]:
    """The app over HTTP as the ``api`` fixture makes it, with some settings of the test's own."""
    from sightline.server.app import create_app

    config = Settings(database_url=database_url, key_cache_seconds=0, **settings)
    app = create_app(config)
    db = app.state.db
    async with app.router.lifespan_context(app):
        with db.transaction() as conn:
            secret, _ = create_key(conn, "demo", "dev")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://sightline.test",
            headers={"Authorization": f"Bearer {secret}"},
        ) as http:
            yield Api(http, db, secret, config)


async def test_two_projects_may_hold_the_same_id(api: Api) -> None:
    mine = generation(output={"type": "text", "content": "project A's answer"})
    assert (await api.http.post("/api/generations", json=mine)).status_code == 201
    other = api.headers(api.new_key("elsewhere", "dev"))
    theirs = {**mine, "output": {"type": "text", "content": "project B's answer"}}
    r = await api.http.post("/api/generations", json=theirs, headers=other)
    assert r.status_code == 201 and r.json() == {"id": mine["id"], "created": True}
    r = await api.http.post(
        "/api/ingest", json={"batch": [{"type": "generation", "body": theirs}]}, headers=other
    )
    assert r.json()["results"][0]["status"] == 200  # B's own record, sent again: a no-op
    await api.http.post(f"/api/generations/{mine['id']}/feedback", json={"rating": 1}, headers=other)

    a = (await api.http.get(f"/api/generations/{mine['id']}")).json()
    b = (await api.http.get(f"/api/generations/{mine['id']}", headers=other)).json()
    assert a["output"]["content"] == "project A's answer" and "feedback" not in a
    assert b["output"]["content"] == "project B's answer" and b["feedback"]["rating"] == 1
    # each project's filters see only its own copy (metadata index, feedback columns)
    by_meta = await api.http.get("/api/generations", params={"metadata.plan": "pro"}, headers=other)
    assert [g["output"]["content"] for g in by_meta.json()["data"]] == ["project B's answer"]
    assert (await api.http.get("/api/generations", params={"feedback.rating": "1"})).json()["data"] == []


@pytest.mark.parametrize("gen_id", ["generation-123", "a", "x" * 200, "run 7 / step 2", "ümlaut-ぁ"])
async def test_ids_are_any_text_of_up_to_200_characters(api: Api, gen_id: str) -> None:
    sent = generation(id=gen_id)
    r = await api.http.post("/api/ingest", json={"batch": [{"type": "generation", "body": sent}]})
    assert r.json()["results"][0] == {"index": 0, "id": gen_id, "status": 201}
    got = await api.http.get(f"/api/generations/{quote(gen_id, safe='')}")
    assert got.status_code == 200 and got.json()["id"] == gen_id
    r = await api.http.post(
        "/api/ingest",
        json={"batch": [{"type": "feedback", "body": {"generationId": gen_id, "thumbs": "up"}}]},
    )
    assert r.json()["results"][0]["status"] == 201
    found = await api.http.post("/api/generations/query", json={"filter": {"feedback.thumbs": "up"}})
    assert [g["id"] for g in found.json()["data"]] == [gen_id]


async def test_uuid_ids_are_kept_in_lower_case(api: Api) -> None:
    sent = generation(id="01A1FCB0-1B3B-7E51-BA51-58606C072D72")
    r = await api.http.post("/api/generations", json=sent)
    assert r.json() == {"id": "01a1fcb0-1b3b-7e51-ba51-58606c072d72", "created": True}
    again = await api.http.post("/api/generations", json={**sent, "id": sent["id"].lower()})
    assert again.json()["created"] is False


async def test_audio_output_is_accepted(api: Api) -> None:
    sent = generation(output={"type": "audio", "content": "https://cdn.example/a.mp3"})
    assert (await api.http.post("/api/generations", json=sent)).status_code == 201
    found = (await api.http.get("/api/generations", params={"output.type": "audio"})).json()["data"]
    assert [g["id"] for g in found] == [sent["id"]]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"performance": {"latency": 1e100}}, "performance.latency"),
        ({"performance": {"latency": 1e308}}, "performance.latency"),
        ({"performance": {"latency": 5, "timeToFirstToken": 1e100}}, "performance.timeToFirstToken"),
        ({"performance": {"latency": 5, "tokensPerSecond": 1e300}}, "performance.tokensPerSecond"),
        ({"usage": {"promptTokens": 1, "cost": 1e100}}, "usage.cost"),
        ({"usage": {"promptTokens": 1, "costSaved": 1e200}}, "usage.costSaved"),
        ({"usage": {"promptTokens": 1e100}}, "usage.promptTokens"),
    ],
)
async def test_a_number_too_big_is_refused_alone_and_its_neighbours_are_stored(
    api: Api, change: dict[str, Any], field: str
) -> None:
    before, bad, after = generation(), generation(**change), generation()
    batch = [{"type": "generation", "body": b} for b in (before, bad, after)]
    r = await api.http.post("/api/ingest", json={"batch": batch})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == [201, 400, 201]
    assert results[1]["error"]["field"] == field and field in results[1]["error"]["message"]
    listed = (await api.http.get("/api/generations")).json()["data"]
    assert {g["id"] for g in listed} == {before["id"], after["id"]}
    one = await api.http.post("/api/generations", json=bad)
    assert one.status_code == 400 and field in one.json()["error"]["message"]


async def test_the_largest_measures_are_stored_and_summed(api: Api) -> None:
    sent = generation(
        performance={"latency": MAX_MEASURE, "timeToFirstToken": MAX_MEASURE, "tokensPerSecond": MAX_MEASURE},
        usage={"promptTokens": 1, "cost": MAX_MEASURE, "costSaved": MAX_MEASURE},
    )
    assert (await api.http.post("/api/generations", json=sent)).status_code == 201
    got = (await api.http.get(f"/api/generations/{sent['id']}")).json()
    assert got["performance"]["latency"] == MAX_MEASURE and got["usage"]["cost"] == MAX_MEASURE


@pytest.mark.parametrize("kind", [{}, [], 7, None, "Generation"])
async def test_an_item_of_no_known_type_is_refused_alone(api: Api, kind: Any) -> None:
    good = generation()
    batch = [{"type": kind, "body": {}}, {"type": "generation", "body": good}]
    r = await api.http.post("/api/ingest", json={"batch": batch})
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert first["status"] == 400 and first["error"]["field"] == "batch[0].type"
    assert second["status"] == 201


@pytest.mark.parametrize("when", ["0001-01-01T00:00:01+20:00", "9999-12-31T23:59:59-20:00"])
async def test_a_timestamp_outside_years_1_to_9999_in_utc_is_refused_alone(api: Api, when: str) -> None:
    # Found by schemathesis: the instant is valid where it was written but not in UTC (was a 500).
    good = generation()
    batch = [
        {"type": "generation", "body": generation(timestamp=when, runId="r0")},
        {"type": "generation", "body": good},
    ]
    r = await api.http.post("/api/ingest", json={"batch": batch})
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert first["status"] == 400 and first["error"]["field"] == "timestamp", first
    assert second["status"] == 201


async def test_a_template_holding_an_integer_past_64_bits_is_refused_alone(api: Api) -> None:
    # Found by schemathesis: the template's content could not be written as JSON for its version (a 500).
    chat = [{"role": "user", "content": "hi", "extra": {"n": 2**70}}]
    bad = generation(template={"name": "t", "chat": chat})
    batch = [{"type": "generation", "body": bad}, {"type": "generation", "body": generation()}]
    r = await api.http.post("/api/ingest", json={"batch": batch})
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert first["status"] == 400 and first["error"]["field"] == "template", first
    assert second["status"] == 201


async def test_a_run_whose_step_failed_has_failed(api: Api) -> None:
    async def run_status(run_id: str) -> str:
        return str((await api.http.get(f"/api/runs/{run_id}")).json()["status"])

    def run(run_id: str, **body: Any) -> dict[str, Any]:
        return {"type": "run", "body": {"id": run_id, **body}}

    failed_call = generation(
        runId="calls", stepIndex=1, metadata={}, status="error", error={"message": "boom"}
    )
    batch = [generation(runId="calls", stepIndex=0, metadata={}), failed_call]
    r = await api.http.post("/api/ingest", json={"batch": [{"type": "generation", "body": g} for g in batch]})
    assert r.status_code == 200 and all(x["status"] == 201 for x in r.json()["results"]), r.text
    assert await run_status("calls") == "error"
    # The run reports itself done and fine afterwards: one of its model calls failed, so it did not.
    await api.http.post(
        "/api/ingest", json={"batch": [run("calls", status="ok", endedAt="2026-11-20T10:00:05Z")]}
    )
    assert await run_status("calls") == "error"
    # A step that is not a model call fails its run too; a run with no failed step keeps its own status.
    step = {"name": "retrieve", "status": "error", "stepIndex": 0}
    await api.http.post(
        "/api/ingest", json={"batch": [run("steps", status="ok", steps=[step]), run("fine", status="ok")]}
    )
    assert (await run_status("steps"), await run_status("fine")) == ("error", "ok")
    listed = (await api.http.get("/api/runs", params={"status": "error"})).json()["data"]
    assert sorted(r["id"] for r in listed) == ["calls", "steps"]


async def test_a_run_step_holding_an_integer_past_64_bits_is_stored(api: Api) -> None:
    # Found by schemathesis: the run's JSON could not be written (a 500); it is free-form content.
    run = {"id": "big-step", "steps": [{"name": "count", "outputs": {"n": 2**70}}]}
    r = await api.http.post("/api/ingest", json={"batch": [{"type": "run", "body": run}]})
    assert r.status_code == 200 and r.json()["results"][0]["status"] in (200, 201), r.text
    got = (await api.http.get("/api/runs/big-step")).json()
    assert got["steps"][0]["outputs"]["n"] == float(2**70)


async def test_a_request_over_the_item_limit_is_413_naming_it(database_url: str) -> None:
    async with app_with(database_url, max_ingest_items=3) as api:
        batch = [{"type": "generation", "body": generation()} for _ in range(4)]
        r = await api.http.post("/api/ingest", json={"batch": batch})
        assert r.status_code == 413, r.text
        error = r.json()["error"]
        assert error["field"] == "batch"
        assert "at most 3 items" in error["message"] and "max_ingest_items" in error["message"]
        assert (await api.http.get("/api/generations")).json()["data"] == []
        r = await api.http.post("/api/ingest", json={"batch": batch[:3]})
        assert [x["status"] for x in r.json()["results"]] == [201, 201, 201]


async def test_an_item_over_the_metadata_key_limit_is_refused_alone(database_url: str) -> None:
    async with app_with(database_url, max_metadata_keys=5) as api:
        fits = generation(metadata={f"k{i}": "v" for i in range(5)})
        too_many = generation(metadata={f"k{i}": "v" for i in range(6)})
        tagged = generation(metadata={"k": "v", "tags": ["a", "b", "c", "d", "e"]})  # 6 with the tags
        run = {"id": "r", "metadata": {f"k{i}": "v" for i in range(6)}}
        batch = [
            {"type": "generation", "body": fits},
            {"type": "generation", "body": too_many},
            {"type": "generation", "body": tagged},
            {"type": "run", "body": run},
        ]
        r = await api.http.post("/api/ingest", json={"batch": batch})
        results = r.json()["results"]
        assert [x["status"] for x in results] == [201, 400, 400, 400]
        for refused in results[1:]:
            assert refused["error"]["field"] == "metadata" and "at most 5" in refused["error"]["message"]
        one = await api.http.post("/api/generations", json=too_many)
        assert one.status_code == 400 and "at most 5 metadata keys" in one.json()["error"]["message"]


async def test_a_big_batch_is_answered_item_by_item_and_the_bad_ones_alone_are_refused(api: Api) -> None:
    # Bigger than one chunk of validation: the answer still has every item, in order.
    batch: list[dict[str, Any]] = [
        {"type": "generation", "body": generation(metadata={f"key{k}": "x" * 20 for k in range(20)})}
        for _ in range(1500)
    ]
    assert len(orjson.dumps({"batch": batch})) > 1_000_000
    bad = {1, 700, 1499}
    for i in bad:
        batch[i]["body"]["performance"] = {"latency": -1}
    run_id = "run-big"
    batch[900]["body"]["runId"] = run_id
    batch[900]["body"]["metadata"] = {"step": "one"}
    batch.append({"type": "run", "body": {"id": run_id, "userId": "dora"}})
    batch.append({"type": "feedback", "body": {"generationId": batch[0]["body"]["id"], "rating": 5}})
    r = await api.http.post("/api/ingest", json={"batch": batch})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["index"] for x in results] == list(range(len(batch)))
    assert [x["status"] for x in results[:1500]] == [400 if i in bad else 201 for i in range(1500)]
    assert results[1500]["status"] in (200, 201) and results[1501]["status"] == 201
    assert all(results[i]["error"]["field"] == "performance.latency" for i in bad)
    got = (await api.http.get(f"/api/generations/{batch[0]['body']['id']}")).json()
    assert got["feedback"]["rating"] == 5
    step = (await api.http.get(f"/api/generations/{batch[900]['body']['id']}")).json()
    assert step["metadata"]["userId"] == "dora"
    stored = await api.http.post(
        "/api/generations/aggregate", json={"pipeline": [{"$group": {"_id": None, "n": {"$sum": 1}}}]}
    )
    assert stored.json()["data"][0]["n"] == 1500 - len(bad)


def test_a_big_batch_over_real_http_is_read_whole_plain_or_gzipped(server: ServerProcess) -> None:
    # uvicorn hands a body this size over in many parts: read into one buffer of its declared length.
    headers = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"}
    for encoding in ("identity", "gzip"):
        bodies = [generation(metadata={f"k{k}": "v" * 30 for k in range(30)}) for _ in range(1200)]
        raw = orjson.dumps({"batch": [{"type": "generation", "body": b} for b in bodies]})
        assert len(raw) > 1_500_000
        if encoding == "gzip":
            raw = gzip.compress(raw)
        r = httpx.post(
            f"{server.url}/api/ingest",
            content=raw,
            headers={**headers, "Content-Encoding": encoding},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        assert [x["status"] for x in r.json()["results"]] == [201] * len(bodies)
        last = httpx.get(f"{server.url}/api/generations/{bodies[-1]['id']}", headers=headers, timeout=30)
        assert last.json()["metadata"]["k29"] == {"type": "string", "value": "v" * 30}
