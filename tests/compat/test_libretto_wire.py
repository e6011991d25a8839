"""``/compat/libretto/*``: libretto-openai's events, feedback (before or after its event) and chain results,
with the API key in the body; bad input refused naming the field, nothing stored."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Api


def _event(api: Api, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiName": "sport-emoji",
        "params": {"sport": "soccer"},
        "prompt": {},
        "promptEventId": str(uuid.uuid4()),
        "modelParameters": {
            "modelProvider": "openai",
            "model": "gpt-4o-mini",
            "modelType": "chat",
            "temperature": 0.2,
        },
        "apiKey": api.key,
        "feedbackKey": str(uuid.uuid4()),
        "promptTemplateChat": [
            {"role": "user", "content": "Show me an emoji that matches the sport: {sport}"}
        ],
        "response": "⚽",
        "responseTime": 123.4,
        "rawResponse": {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "⚽"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22},
        },
    }
    body.update(fields)
    return body


async def test_an_event_is_a_priced_generation_under_its_template(api: Api) -> None:
    sent = _event(api, chatId="chat-1", chainId="chain-1")
    r = await api.http.post("/compat/libretto/event", json=sent, headers={"Authorization": ""})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": sent["promptEventId"], "api_name": "sport-emoji"}
    got = (await api.http.get(f"/api/generations/{sent['promptEventId']}")).json()
    assert got["template"]["name"] == "sport-emoji"
    assert got["template"]["chat"] == sent["promptTemplateChat"] and got["template"]["params"] == {
        "sport": "soccer"
    }
    assert got["input"]["content"] == [
        {"role": "user", "content": "Show me an emoji that matches the sport: soccer"}
    ]
    assert got["output"]["content"] == "⚽" and got["model"]["id"] == "gpt-4o-mini"
    assert got["parameters"]["temperature"] == 0.2 and got["model"]["provider"] == "openai"
    assert got["usage"]["promptTokens"] == 20 and got["usage"]["cost"] > 0
    assert got["performance"]["latency"] == pytest.approx(123.4)
    assert got["chatId"] == "chat-1" and got["runId"] == "chain-1"
    run = (await api.http.get("/api/runs/chain-1")).json()
    assert run["id"] == "chain-1"
    # Unnamed prompts: api_name null; a completion with a text template and no raw response.
    text = _event(
        api,
        apiName=None,
        promptTemplateChat=None,
        promptTemplateText="Welcome to {place}!",
        params={"place": "Sightline"},
        modelParameters={
            "modelProvider": "openai",
            "model": "gpt-3.5-turbo-instruct",
            "modelType": "completion",
        },
        rawResponse=None,
        response="Hello!",
    )
    r = await api.http.post("/compat/libretto/event", json=text)
    assert r.json()["api_name"] is None
    got = (await api.http.get(f"/api/generations/{text['promptEventId']}")).json()
    assert got["input"]["content"] == "Welcome to Sightline!" and got["output"]["content"] == "Hello!"


async def test_feedback_before_or_after_its_event_lands_on_the_generation(api: Api) -> None:
    first = _event(api)
    r = await api.http.post(
        "/compat/libretto/feedback",
        json={
            "feedback_key": first["feedbackKey"],
            "apiKey": api.key,
            "rating": 0.2,
            "better_response": "🏀",
        },
    )
    assert r.status_code == 200 and r.json()["joined"] is False
    await api.http.post("/compat/libretto/event", json=first)
    got = (await api.http.get(f"/api/generations/{first['promptEventId']}")).json()
    assert got["feedback"]["score"] == 0.2 and got["feedback"]["betterResponse"] == "🏀"
    second = _event(api)
    await api.http.post("/compat/libretto/event", json=second)
    r = await api.http.post(
        "/compat/libretto/feedback",
        json={"feedback_key": second["feedbackKey"], "apiKey": api.key, "rating": 1},
    )
    assert r.json()["joined"] is True
    got = (await api.http.get(f"/api/generations/{second['promptEventId']}")).json()
    assert got["feedback"]["score"] == 1


async def test_update_chain_sets_the_runs_result(api: Api) -> None:
    await api.http.post("/compat/libretto/event", json=_event(api, chainId="chain-9"))
    r = await api.http.post(
        "/compat/libretto/v1/updateChain", json={"id": "chain-9", "apiKey": api.key, "result": "done"}
    )
    assert r.status_code == 200
    run = (await api.http.get("/api/runs/chain-9")).json()
    assert run["output"] == "done" and run["status"] == "ok"


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"apiKey": "sl_wrong"}, 401, None),
        ({"apiKey": None}, 400, "apiKey"),
        ({"modelParameters": {"modelType": "chat"}}, 400, "modelParameters.model"),
        ({"modelParameters": {"model": "m", "modelType": "image"}}, 400, "modelParameters.modelType"),
        ({"modelParameters": "gpt"}, 400, "modelParameters"),
        ({"promptTemplateChat": "hi"}, 400, "promptTemplateChat"),
        ({"responseTime": "fast"}, 400, "responseTime"),
        ({"response": 7, "rawResponse": None}, 400, "response"),
        ({"promptEventId": "x" * 300}, 400, "promptEventId"),
        ({"chatId": {"a": 1}}, 400, "chatId"),
    ],
)
async def test_bad_events_are_refused_naming_the_field_and_store_nothing(
    api: Api, change: dict[str, Any], status: int, field: str | None
) -> None:
    sent = _event(api, **change)
    r = await api.http.post("/compat/libretto/event", json=sent)
    assert r.status_code == status, r.text
    if field:
        assert r.json()["error"]["field"] == field
    assert (await api.http.get("/api/generations")).json()["data"] == []


async def test_bad_feedback_and_chain_updates_are_refused(api: Api) -> None:
    for body, field in [
        ({"apiKey": api.key, "rating": 0.5}, "feedback_key"),
        ({"apiKey": api.key, "feedback_key": "k", "rating": 2}, "rating"),
        ({"apiKey": api.key, "feedback_key": "k"}, "rating"),
        ({"apiKey": api.key, "feedback_key": "k", "better_response": 3}, "better_response"),
    ]:
        r = await api.http.post("/compat/libretto/feedback", json=body)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, body
    r = await api.http.post("/compat/libretto/v1/updateChain", json={"apiKey": api.key, "result": "x"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "id"
    r = await api.http.post(
        "/compat/libretto/feedback", json={"feedback_key": "k", "apiKey": "nope", "rating": 1}
    )
    assert r.status_code == 401
