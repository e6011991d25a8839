"""Scores through the HTTP API: posted one at a time or in ingest batches, shown on their generation,
filtered, sorted and aggregated by ``scores.<name>``, and human feedback seen as scores."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.server.test_ingest import generation


async def _generations(api: Api, *models: str) -> list[dict[str, Any]]:
    sent = [generation(model={"id": m, "provider": "openai"}) for m in models]
    r = await api.http.post("/api/ingest", json={"batch": [{"type": "generation", "body": g} for g in sent]})
    assert r.status_code == 200, r.text
    return sent


async def test_a_score_shows_on_its_generation_with_its_history(api: Api) -> None:
    (g,) = await _generations(api, "gpt-4o")
    first = await api.http.post(
        "/api/scores", json={"generationId": g["id"], "name": "helpfulness", "value": 0.4, "comment": "meh"}
    )
    assert first.status_code == 201, first.text
    await api.http.post(
        "/api/scores",
        json={"generationId": g["id"], "name": "helpfulness", "value": 0.9, "source": "human"},
    )
    await api.http.post("/api/scores", json={"generationId": g["id"], "name": "correct", "label": "pass"})
    got = (await api.http.get(f"/api/generations/{g['id']}")).json()
    assert got["scores"]["helpfulness"]["value"] == 0.9  # the latest
    assert got["scores"]["helpfulness"]["source"] == "human"
    assert got["scores"]["correct"]["label"] == "pass"
    history = (await api.http.get("/api/scores", params={"generationId": g["id"]})).json()["data"]
    assert [(s["name"], s["value"]) for s in history] == [
        ("helpfulness", 0.4),
        ("helpfulness", 0.9),
        ("correct", None),
    ]
    listed = (await api.http.get("/api/generations")).json()["data"]
    assert listed[0]["scores"]["correct"]["label"] == "pass"


async def test_scores_in_an_ingest_batch_beside_their_generations(api: Api) -> None:
    g = generation()
    r = await api.http.post(
        "/api/ingest",
        json={
            "batch": [
                {"type": "score", "body": {"generationId": g["id"], "name": "tone", "value": 3}},
                {"type": "generation", "body": g},
                {"type": "score", "body": {"generationId": g["id"], "name": "tone", "value": 7}},
                {
                    "type": "score",
                    "body": {"generationId": g["id"], "name": "tone"},
                },  # neither value nor label
                {"type": "score", "body": {"generationId": "not-here-yet", "name": "tone", "value": 1}},
            ]
        },
    )
    results = r.json()["results"]
    assert [x["status"] for x in results] == [201, 201, 201, 400, 202], results
    assert "value" in results[3]["error"]["message"]
    got = (await api.http.get(f"/api/generations/{g['id']}")).json()
    assert got["scores"]["tone"]["value"] == 7


async def test_filters_sorts_and_aggregates_by_a_score(api: Api) -> None:
    a, b, c = await _generations(api, "gpt-4o", "gpt-4o", "gpt-4o-mini")
    for g, value, label in ((a, 0.2, "fail"), (b, 0.8, "pass"), (c, 0.6, "pass")):
        await api.http.post(
            "/api/scores",
            json={"generationId": g["id"], "name": "helpfulness", "value": value, "label": label},
        )
    query = await api.http.post(
        "/api/generations/query", json={"filter": {"scores.helpfulness": {"$lt": 0.5}}}
    )
    assert [x["id"] for x in query.json()["data"]] == [a["id"]]
    labelled = await api.http.post("/api/generations/query", json={"filter": {"scores.helpfulness": "pass"}})
    assert {x["id"] for x in labelled.json()["data"]} == {b["id"], c["id"]}
    missing = await api.http.post(
        "/api/generations/query", json={"filter": {"scores.helpfulness": {"$exists": False}}}
    )
    assert missing.json()["data"] == []
    ordered = await api.http.post(
        "/api/generations/query", json={"filter": {}, "sort": {"scores.helpfulness.value": -1}}
    )
    assert [x["id"] for x in ordered.json()["data"]] == [b["id"], c["id"], a["id"]]
    listed = await api.http.get("/api/generations", params={"scores.helpfulness.max": "0.7"})
    assert {x["id"] for x in listed.json()["data"]} == {a["id"], c["id"]}
    by_label = await api.http.get("/api/generations", params={"scores.helpfulness": "fail"})
    assert [x["id"] for x in by_label.json()["data"]] == [a["id"]]
    grouped = await api.http.post(
        "/api/generations/aggregate",
        json={
            "pipeline": [
                {"$group": {"_id": "$model.id", "avg": {"$avg": "$scores.helpfulness"}}},
                {"$sort": {"_id": 1}},
            ]
        },
    )
    assert grouped.status_code == 200, grouped.text
    assert [(x["_id"], round(x["avg"], 6)) for x in grouped.json()["data"]] == [
        ("gpt-4o", 0.5),
        ("gpt-4o-mini", 0.6),
    ]


async def test_feedback_is_seen_as_human_scores(api: Api) -> None:
    (g,) = await _generations(api, "gpt-4o")
    await api.http.post(f"/api/generations/{g['id']}/feedback", json={"rating": 4, "thumbs": "down"})
    got = (await api.http.get(f"/api/generations/{g['id']}")).json()
    assert got["scores"]["feedback.rating"]["value"] == 4
    assert got["scores"]["feedback.rating"]["source"] == "human"
    assert (
        got["scores"]["feedback.thumbs"] | {"value": 0.0, "label": "down"} == got["scores"]["feedback.thumbs"]
    )
    found = await api.http.post("/api/generations/query", json={"filter": {"scores.feedback.thumbs": "down"}})
    assert [x["id"] for x in found.json()["data"]] == [g["id"]]


async def test_a_run_has_scores(api: Api) -> None:
    await api.http.post(
        "/api/ingest", json={"batch": [{"type": "run", "body": {"id": "run-1", "status": "ok"}}]}
    )
    r = await api.http.post("/api/scores", json={"runId": "run-1", "name": "success", "label": "yes"})
    assert r.status_code == 201, r.text
    run = (await api.http.get("/api/runs/run-1")).json()
    assert run["scores"]["success"]["label"] == "yes"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "x", "value": 1}, "generationId"),
        ({"generationId": "g", "runId": "r", "name": "x", "value": 1}, "generationId"),
        ({"generationId": "g", "name": "bad name!", "value": 1}, "name"),
        ({"generationId": "g", "name": "x.value", "value": 1}, "name"),
        ({"generationId": "g", "name": "x", "value": 1e300}, "value"),
        ({"generationId": "g", "name": "x", "value": "high"}, "value"),
        ({"generationId": "g", "name": "x", "value": 1, "source": "robot"}, "source"),
        ({"generationId": "g", "name": "x"}, None),
    ],
)
async def test_bad_scores_are_refused_naming_the_field(
    api: Api, body: dict[str, Any], field: str | None
) -> None:
    r = await api.http.post("/api/scores", json=body)
    assert r.status_code == 400, r.text
    if field:
        assert field in r.json()["error"]["message"] or r.json()["error"].get("field") == field
    history = await api.http.get("/api/scores", params={"generationId": "g"})
    assert history.json()["data"] == []


async def test_a_bad_score_filter_is_a_400(api: Api) -> None:
    r = await api.http.post(
        "/api/generations/query", json={"filter": {"scores.helpfulness": {"$regex": "(a"}}}
    )
    assert r.status_code == 400
    r = await api.http.get("/api/generations", params={"scores.x.min": "high"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "scores.x.min"


async def test_scores_of_another_project_are_not_seen(api: Api) -> None:
    (g,) = await _generations(api, "gpt-4o")
    other = api.new_key("other")
    await api.http.post(
        "/api/scores",
        json={"generationId": g["id"], "name": "sneaky", "value": 1},
        headers=api.headers(other),
    )
    got = (await api.http.get(f"/api/generations/{g['id']}")).json()
    assert "scores" not in got
