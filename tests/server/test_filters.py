"""The list filter of query strings: parsed in server/, written back to the same parameters, and
handed to the store as the MongoDB-style filter of /api/generations/query."""

from __future__ import annotations

import pytest

from sightline.errors import InvalidInput
from sightline.server.filters import GenerationFilter
from tests.conftest import Api
from tests.server.test_ingest import generation

PARAMS = {
    "model.id": "gpt-4o",
    "output.type": "json",
    "userId": "ann",
    "sessionId": "s1",
    "runId": "r1",
    "chatId": "c1",
    "template.name": "emoji",
    "status": "error",
    "environment": "prod",
    "feedback.thumbs": "up",
    "cacheHit": "true",
    "feedback": "false",
    "feedback.rating": "4",
    "feedback.minRating": "2",
    "from": "2026-11-01T00:00:00Z",
    "to": "2026-11-02T00:00:00Z",
    "metadata.plan": "pro",
}


def test_a_filter_round_trips_through_its_parameters() -> None:
    f, limit, cursor = GenerationFilter.from_params(PARAMS.items())
    assert f.as_params() == PARAMS and (limit, cursor) == (50, None)
    again, _, _ = GenerationFilter.from_params(f.as_params().items())
    assert again == f


def test_aliases_are_written_back_canonically() -> None:
    f, _, _ = GenerationFilter.from_params([("model", "m"), ("metadata.userId", "u"), ("template", "t")])
    assert f.as_params() == {"model.id": "m", "userId": "u", "template.name": "t"}


def test_unknown_and_malformed_parameters_are_refused() -> None:
    for params, field in (
        ([("colour", "red")], "colour"),
        ([("from", "99999999999999999")], "from"),
        ([("to", "yesterday")], "to"),
        ([("feedback.rating", "6")], "feedback.rating"),
    ):
        with pytest.raises(InvalidInput) as caught:
            GenerationFilter.from_params(params)
            GenerationFilter.from_params(params)[0].to_mongo()
            raise AssertionError("not refused")
        assert caught.value.field == field or field in caught.value.message


def test_the_list_filter_is_a_mongodb_style_filter() -> None:
    f, _, _ = GenerationFilter.from_params(PARAMS.items())
    assert f.to_mongo() == {
        "model.id": "gpt-4o",
        "output.type": "json",
        "metadata.userId": "ann",
        "metadata.sessionId": "s1",
        "runId": "r1",
        "chatId": "c1",
        "template.name": "emoji",
        "status": "error",
        "environment": "prod",
        "feedback.thumbs": "up",
        "cacheHit": True,
        "feedback.rating": {"$eq": 4, "$gte": 2},
        "$nor": [
            {"feedback.rating": {"$exists": True}},
            {"feedback.score": {"$exists": True}},
            {"feedback.thumbs": {"$exists": True}},
        ],
        "timestamp": {"$gte": "2026-11-01T00:00:00Z", "$lte": "2026-11-02T00:00:00Z"},
        "metadata.plan": "pro",
    }


async def test_list_and_query_answer_the_same_records(api: Api) -> None:
    """Each list parameter, through GET /api/generations, selects what its MongoDB-style filter selects
    through POST /api/generations/query: one compiler."""
    gens = [
        generation(timestamp="2026-11-20T10:00:00Z"),
        generation(
            timestamp="2026-11-20T11:00:00Z",
            model={"id": "o3-mini"},
            status="error",
            error={"type": "rate_limit", "message": "slow down"},
            cacheHit=True,
            metadata={"plan": "free", "tags": ["beta"], "userId": "bob", "my key": "v w", "a.b": "c"},
        ),
        generation(timestamp="2026-11-20T12:00:00Z", runId="run-1", metadata={"plan": "team"}),
        generation(timestamp="2026-11-20T13:00:00Z", chatId="chat-1", template={"name": "emoji"}),
    ]
    batch = [{"type": "generation", "body": g} for g in gens]
    batch += [
        {"type": "run", "body": {"id": "run-1", "userId": "carol"}},
        {"type": "feedback", "body": {"generationId": gens[0]["id"], "rating": 4, "thumbs": "up"}},
        {"type": "feedback", "body": {"generationId": gens[1]["id"], "rating": 2}},
    ]
    assert (await api.http.post("/api/ingest", json={"batch": batch})).status_code == 200
    cases = [
        {"model.id": "o3-mini"},
        {"model": "gpt-4o"},
        {"userId": "carol"},
        {"metadata.userId": "bob"},
        {"status": "error"},
        {"cacheHit": "true"},
        {"cacheHit": "false"},
        {"feedback": "true"},
        {"feedback": "false"},
        {"feedback.rating": "4"},
        {"feedback.minRating": "3"},
        {"feedback.thumbs": "up"},
        {"from": "2026-11-20T11:00:00Z", "to": "2026-11-20T12:00:00Z"},
        {"metadata.plan": "free"},
        {"metadata.tags": "beta"},
        {"metadata.my key": "v w"},
        {"metadata.a.b": "c"},
        {"runId": "run-1"},
        {"chatId": "chat-1"},
        {"template.name": "emoji"},
        {"environment": "dev"},
    ]
    for params in cases:
        listed = await api.http.get("/api/generations", params=params)
        assert listed.status_code == 200, (params, listed.text)
        f, _, _ = GenerationFilter.from_params(params.items())
        queried = await api.http.post("/api/generations/query", json={"filter": f.to_mongo()})
        ids = [g["id"] for g in listed.json()["data"]]
        assert ids == [g["id"] for g in queried.json()["data"]] and ids, params
