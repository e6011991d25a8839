"""Feedback with an API key, and with a signed feedback key from a browser (no API key)."""

from __future__ import annotations

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
