"""Feedback with an API key, and with a signed feedback key from a browser (no API key)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sightline.feedback_key import feedback_secret, hash_api_key, make_feedback_key, signing_key
from tests.conftest import Api
from tests.server.test_ingest import generation


def signed(api: Api, api_key: str, generation_id: str) -> str:
    """A feedback key as the server (or the SDK, with its fetched signing key) makes it."""
    key_hash = hash_api_key(api_key)
    own = signing_key(feedback_secret(api.settings.secret_key), key_hash)
    return make_feedback_key(own, key_hash, generation_id)


async def test_feedback_shows_on_the_generation_and_filters(api: Api) -> None:
    sent = generation()
    await api.http.post("/api/generations", json=sent)
    r = await api.http.post(
        f"/api/generations/{sent['id']}/feedback",
        json={
            "rating": 5,
            "score": 0.9,
            "thumbs": "up",
            "comment": "spot on",
            "categories": ["helpful"],
            "betterResponse": "🥅",
            "userId": "alice",
        },
    )
    assert r.status_code == 201, r.text
    got = (await api.http.get(f"/api/generations/{sent['id']}")).json()
    assert got["feedback"]["rating"] == 5 and got["feedback"]["comment"] == "spot on"
    assert got["feedback"]["categories"] == ["helpful"] and got["feedback"]["betterResponse"] == "🥅"
    found = await api.http.post("/api/generations/query", json={"filter": {"feedback.rating": {"$gte": 4}}})
    assert [g["id"] for g in found.json()["data"]] == [sent["id"]]
    # the latest feedback is the one shown
    await api.http.post(f"/api/generations/{sent['id']}/feedback", json={"thumbs": "down"})
    got = (await api.http.get(f"/api/generations/{sent['id']}")).json()
    assert got["feedback"]["thumbs"] == "down"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"rating": 6}, "rating"),
        ({"score": 1.5}, "score"),
        ({"thumbs": "sideways"}, "thumbs"),
        ({}, "feedback"),
        ({"rating": "great"}, "rating"),
    ],
)
async def test_bad_feedback_is_refused_naming_the_field(
    api: Api, body: dict[str, object], field: str
) -> None:
    sent = generation()
    await api.http.post("/api/generations", json=sent)
    r = await api.http.post(f"/api/generations/{sent['id']}/feedback", json=body)
    assert r.status_code == 400
    assert field in r.json()["error"]["message"]
    assert "feedback" not in (await api.http.get(f"/api/generations/{sent['id']}")).json()


async def test_feedback_key_needs_no_api_key(api: Api) -> None:
    sent = generation()
    await api.http.post("/api/generations", json=sent)
    fk = signed(api, api.key, sent["id"])
    r = await api.http.post(
        "/api/feedback",
        json={"feedbackKey": fk, "score": 0.2, "betterResponse": "🏟"},
        headers={"Authorization": ""},
    )
    assert r.status_code == 201, r.text
    got = (await api.http.get(f"/api/generations/{sent['id']}")).json()
    assert got["feedback"]["score"] == 0.2 and got["feedback"]["betterResponse"] == "🏟"


async def test_forged_or_altered_feedback_keys_are_refused(api: Api) -> None:
    sent = generation()
    await api.http.post("/api/generations", json=sent)
    good = signed(api, api.key, sent["id"])
    forged = signed(api, "sl_not-a-real-key", sent["id"])
    altered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    for key in (forged, altered, "slfk_garbage", "nonsense"):
        r = await api.http.post(
            "/api/feedback", json={"feedbackKey": key, "thumbs": "up"}, headers={"Authorization": ""}
        )
        assert r.status_code in (400, 401), (key, r.text)
        assert "feedbackKey" in r.json()["error"]["message"]
    assert "feedback" not in (await api.http.get(f"/api/generations/{sent['id']}")).json()


async def test_feedback_before_its_generation_waits_for_it(api: Api) -> None:
    sent = generation()
    fk = signed(api, api.key, sent["id"])
    r = await api.http.post(
        "/api/feedback", json={"feedbackKey": fk, "thumbs": "up"}, headers={"Authorization": ""}
    )
    assert r.status_code == 202
    await api.http.post("/api/generations", json=sent)
    got = (await api.http.get(f"/api/generations/{sent['id']}")).json()
    assert got["feedback"]["thumbs"] == "up"
    found = (await api.http.get("/api/generations", params={"feedback.thumbs": "up"})).json()["data"]
    assert [g["id"] for g in found] == [sent["id"]]


async def test_the_feedback_received_last_wins_whatever_its_timestamp(api: Api) -> None:
    sent = generation()
    await api.http.post("/api/generations", json=sent)
    url = f"/api/generations/{sent['id']}/feedback"
    later, earlier = "2026-12-01T00:00:00Z", "2020-01-01T00:00:00Z"
    await api.http.post(url, json={"thumbs": "up", "comment": "first", "timestamp": later})
    await api.http.post(url, json={"thumbs": "down", "comment": "second", "timestamp": earlier})
    got = (await api.http.get(f"/api/generations/{sent['id']}")).json()
    assert got["feedback"]["comment"] == "second" and got["feedback"]["thumbs"] == "down"
    found = (await api.http.get("/api/generations", params={"feedback.thumbs": "down"})).json()["data"]
    assert [g["id"] for g in found] == [sent["id"]]
    exported = await api.http.post(
        "/api/generations/export", json={"format": "jsonl", "fields": ["id", "feedback"]}
    )
    assert orjson.loads(exported.content.splitlines()[0])["feedback"]["comment"] == "second"


async def test_feedback_before_its_generation_keeps_the_order_it_came_in(api: Api) -> None:
    sent = generation()
    fk = signed(api, api.key, sent["id"])
    for thumbs, stamp in (("up", "2026-12-01T00:00:00Z"), ("down", "2020-01-01T00:00:00Z")):
        r = await api.http.post(
            "/api/feedback",
            json={"feedbackKey": fk, "thumbs": thumbs, "timestamp": stamp},
            headers={"Authorization": ""},
        )
        assert r.status_code == 202
    await api.http.post("/api/generations", json=sent)
    got = (await api.http.get(f"/api/generations/{sent['id']}")).json()
    assert got["feedback"]["thumbs"] == "down"
    found = (await api.http.get("/api/generations", params={"feedback.thumbs": "down"})).json()["data"]
    assert [g["id"] for g in found] == [sent["id"]]


@pytest.mark.parametrize("wrap", [lambda fb: {"$set": {"feedback": fb}}, lambda fb: {"feedback": fb}])
async def test_patch_sets_the_feedback_as_update_one_does(api: Api, wrap: Any) -> None:
    sent = generation(id="generation-123")
    await api.http.post("/api/generations", json=sent)
    r = await api.http.patch(
        "/api/generations/generation-123", json=wrap({"rating": 4, "comment": "good", "userId": "ann"})
    )
    assert r.status_code == 200, r.text
    assert r.json()["generationId"] == "generation-123" and r.json()["feedback"]["rating"] == 4
    got = (await api.http.get("/api/generations/generation-123")).json()
    assert got["feedback"]["rating"] == 4 and got["feedback"]["comment"] == "good"
    await api.http.patch("/api/generations/generation-123", json=wrap({"thumbs": "down"}))
    got = (await api.http.get("/api/generations/generation-123")).json()
    assert got["feedback"]["thumbs"] == "down" and "rating" not in got["feedback"]


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"$set": {"output": {"content": "changed"}}}, 400, "$set.output"),
        ({"$inc": {"feedback.rating": 1}}, 400, "$inc"),
        ({"$set": {"feedback": {"rating": 9}}}, 400, "rating"),
        ({"$set": {"feedback": "great"}}, 400, "feedback"),
        ({"$set": "x"}, 400, "$set"),
        ({}, 400, "feedback"),
        ({"feedback": {"rating": 3}, "output": {}}, 400, "output"),
    ],
)
async def test_patch_refuses_anything_but_feedback(
    api: Api, body: dict[str, Any], status: int, field: str
) -> None:
    sent = generation()
    await api.http.post("/api/generations", json=sent)
    r = await api.http.patch(f"/api/generations/{sent['id']}", json=body)
    assert r.status_code == status, r.text
    assert field in r.json()["error"]["message"]
    got = (await api.http.get(f"/api/generations/{sent['id']}")).json()
    assert "feedback" not in got and got["output"]["content"] == "⚽"


async def test_patch_of_an_unknown_or_another_projects_generation_is_404(api: Api) -> None:
    sent = generation()
    await api.http.post("/api/generations", json=sent)
    stranger = api.headers(api.new_key("elsewhere", "dev"))
    r = await api.http.patch(
        f"/api/generations/{sent['id']}", json={"$set": {"feedback": {"rating": 1}}}, headers=stranger
    )
    assert r.status_code == 404
    r = await api.http.patch("/api/generations/nope", json={"$set": {"feedback": {"rating": 1}}})
    assert r.status_code == 404
    assert "feedback" not in (await api.http.get(f"/api/generations/{sent['id']}")).json()
