"""Bad input: a 4xx in the one error shape, naming what is wrong, and nothing written. Never a 5xx."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.server.test_ingest import generation


async def _nothing_written(api: Api) -> None:
    assert (await api.http.get("/api/generations")).json()["data"] == []


def _shape(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {"error"} and {"type", "message"} <= set(body["error"])
    return body["error"]


@pytest.mark.parametrize(
    "content, words",
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "object"),
    ],
)
async def test_malformed_bodies(api: Api, content: bytes, words: str) -> None:
    r = await api.http.post("/api/generations", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert words in _shape(r.json())["message"]
    await _nothing_written(api)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"model": {}}, "model.id"),
        ({"model": {"id": "m"}, "usage": {"promptTokens": "many"}}, "usage.promptTokens"),
        ({"usage": {"promptTokens": -1}}, "usage.promptTokens"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"id": ""}, "id"),
        ({"id": "x" * 201}, "id"),
        ({"id": "a\u0000b"}, "id: must not contain NUL"),
        ({"id": 123}, "id"),
        ({"output": {"type": "video"}}, "output.type"),
        ({"performance": {"latency": 1e100}}, "performance.latency"),
        ({"usage": {"cost": 1e300}}, "usage.cost"),
        ({"metadata": {f"k{i}": "v" for i in range(101)}}, "metadata: at most 100 metadata keys"),
        ({"metadata": {"doc": {"type": "video", "value": "x"}}}, "'doc'"),
        ({"metadata": {"doc": {"type": "url", "url": "https://x"}}}, "'doc'"),
        ({"metadata": {"nested": {"a": {"b": 1}}}}, "'nested'"),
        ({"metadata": {"flag": {"type": "boolean"}}}, "'flag'"),
        ({"status": "maybe"}, "status"),
        ({"input": {"type": "smell"}}, "input.type"),
        ({"surprise": 1}, "surprise"),
        # Text also kept in an indexed column: no NUL (database text cannot hold it), at most 200 characters.
        ({"model": {"id": "m", "provider": "open\u0000ai"}}, "model.provider: must not contain NUL"),
        ({"template": {"name": "t\u0000", "text": "hi"}}, "template.name: must not contain NUL"),
        ({"error": {"type": "x\u0000"}, "status": "error"}, "error.type: must not contain NUL"),
        ({"model": {"id": "m", "provider": "p" * 201}}, "model.provider"),
        ({"metadata": {"userId": "u" * 201}}, "'userId': at most 200 characters"),
        ({"metadata": {"sessionId": "s" * 201}}, "'sessionId': at most 200 characters"),
    ],
)
async def test_wrong_fields_are_named(api: Api, change: dict[str, Any], field: str) -> None:
    r = await api.http.post("/api/generations", json=generation(**change))
    assert r.status_code == 400, r.text
    assert field in _shape(r.json())["message"]
    await _nothing_written(api)


async def test_oversized_body_is_413(api: Api) -> None:
    big = generation(output={"type": "text", "content": "x" * (3 * 1024 * 1024)})
    r = await api.http.post("/api/generations", json=big)
    assert r.status_code == 413
    assert "limit" in _shape(r.json())["message"]
    await _nothing_written(api)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"from": "last tuesday"}, "from"),
        ({"limit": "0"}, "limit"),
        ({"limit": "lots"}, "limit"),
        ({"cursor": "%%%"}, "cursor"),
        ({"cacheHit": "perhaps"}, "cacheHit"),
        ({"colour": "red"}, "colour"),
        ({"status": "fine"}, "status"),
        ({"feedback.rating": "9"}, "feedback.rating"),
    ],
)
async def test_bad_filters(api: Api, params: dict[str, str], field: str) -> None:
    r = await api.http.get("/api/generations", params=params)
    assert r.status_code == 400
    assert field in _shape(r.json())["message"]


@pytest.mark.parametrize(
    "body, words",
    [
        ({"filter": {"usage.totalTokens": {"$foo": 1}}}, "$foo"),
        ({"filter": {"$where": "1"}}, "$where"),
        ({"filter": {"model.id": {"$in": "gpt-4"}}}, "$in"),
        ({"filter": {}, "limit": 0}, "limit"),
        ({"filter": {}, "colour": 1}, "colour"),
    ],
)
async def test_bad_queries(api: Api, body: dict[str, Any], words: str) -> None:
    r = await api.http.post("/api/generations/query", json=body)
    assert r.status_code == 400, r.text
    assert words in _shape(r.json())["message"]


@pytest.mark.parametrize(
    "pipeline, words",
    [
        ([{"$explode": {}}], "$explode"),
        ([{"$group": {"_id": "$model.id", "n": {"$median": "$usage.totalTokens"}}}], "$median"),
        ("not a list", "pipeline"),
    ],
)
async def test_bad_aggregates(api: Api, pipeline: Any, words: str) -> None:
    r = await api.http.post("/api/generations/aggregate", json={"pipeline": pipeline})
    assert r.status_code == 400, r.text
    assert words in _shape(r.json())["message"]


async def test_missing_and_revoked_keys_are_401(api: Api) -> None:
    assert (await api.http.get("/api/generations", headers={"Authorization": ""})).status_code == 401
    r = await api.http.get("/api/generations", headers={"Authorization": "Bearer sl_nope"})
    assert r.status_code == 401 and _shape(r.json())["type"] == "authentication_error"
    from sightline.store.access.projects import revoke_key

    key = api.new_key()
    assert (await api.http.get("/api/generations", headers=api.headers(key))).status_code == 200
    with api.db.transaction() as conn:
        revoke_key(conn, key[:10])
    assert (await api.http.get("/api/generations", headers=api.headers(key))).status_code == 401


async def test_bad_batches(api: Api) -> None:
    for body, words in (
        ({"batch": "x"}, "batch"),
        ({}, "batch"),
        ({"batch": [1]}, "batch[0]"),
        ({"batch": [{"type": {}, "body": {}}]}, "batch[0].type"),
        ({"batch": [{"type": [], "body": {}}]}, "batch[0].type"),
        ({"batch": [{"type": "generation", "body": []}]}, "batch[0].body"),
        ({"batch": [], "extra": 1}, "extra"),
    ):
        r = await api.http.post("/api/ingest", json=body)
        if r.status_code == 200:
            assert words in r.json()["results"][0]["error"]["message"]
        else:
            assert r.status_code == 400 and words in _shape(r.json())["message"]
    await _nothing_written(api)


NASTY: list[Any] = [
    generation(usage={"promptTokens": 10**30}),
    generation(stepIndex=2**40, runId="r"),
    generation(performance={"latency": "NaN"}),
    generation(model={"id": "gpt\u0000-4"}),
    generation(chatId="a\u0000b"),
    generation(metadata={"note": "nul \u0000 inside"}),
    generation(metadata={"k\u0000": "v"}),
    generation(usage={"promptTokens": 2**31 - 1, "completionTokens": 2**31 - 1}),
    generation(error={"type": "x", "message": "y", "statusCode": 10**12}, status="error"),
    generation(timestamp="9999-99-99T00:00:00Z"),
    generation(performance={"latency": 1e100, "timeToFirstToken": 1e300}),
    generation(usage={"cost": 1e100, "costSaved": 1e100}),
    generation(model={"id": "m" * 10_000}),
    generation(input={"type": "text", "content": {"deep": [[[[[[[[[[1]]]]]]]]]]}}),
]


@pytest.mark.parametrize("index", range(len(NASTY)))
async def test_nasty_values_get_a_4xx_never_a_5xx(api: Api, index: int) -> None:
    r = await api.http.post("/api/generations", json=NASTY[index])
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        _shape(r.json())
        await _nothing_written(api)


async def test_nul_in_free_text_is_kept_readable(api: Api) -> None:
    sent = generation(output={"type": "text", "content": "before\u0000after"})
    assert (await api.http.post("/api/generations", json=sent)).status_code == 201
    got = (await api.http.get(f"/api/generations/{sent['id']}")).json()
    assert got["output"]["content"] in ("before\u0000after", "before\ufffdafter")
